"""What goes in and out of a PyTorch recurrent module, as gradflow's arrays (see :mod:`gradflow.numeric.interop`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gradflow.errors import ShapeError
from gradflow.numeric._torch_layout import _BLOCKS, _cell, _Layout, _layout, _numpy
from gradflow.numeric.backend import to_numpy
from gradflow.numeric.simulate import Trajectory

__all__ = [
    "final_states",
    "gradients_to_torch",
    "initial_from_torch",
    "output_to_torch",
    "sequence_from_torch",
    "states_to_torch",
    "upstream_from_torch",
]


def sequence_from_torch(module: Any, sequence: Any, *, dtype: Any = None) -> np.ndarray:
    """A PyTorch sequence (an input, a gradient of ``output``) as gradflow's (T, B, size) NumPy array.

    A ``batch_first`` module's (B, T, size) is transposed; an unbatched
    (T, size) becomes (T, 1, size). float64 by default. ``size`` is the
    module's ``input_size`` for an input, or the size of its ``output``
    (num_directions·hidden_size) for a gradient of ``output``.

    Raises
    ------
    ShapeError
        For a sequence that is not 2-D or 3-D, one whose feature size is
        neither the module's ``input_size`` nor its output size (both named
        in the message), a ``PackedSequence`` (unpack it with
        ``torch.nn.utils.rnn.pad_packed_sequence``), or anything that is not
        an array of numbers.

    Examples
    --------
    >>> import torch
    >>> sequence_from_torch(torch.nn.GRU(3, 4, batch_first=True), torch.zeros(2, 5, 3)).shape
    (5, 2, 3)
    """
    layout = _layout(module)
    sizes = {layout.input_size, layout.directions * layout.hidden_size}
    return _sequence(module, layout, sequence, dtype, "sequence", sizes)


def _sequence(
    module: Any, layout: _Layout, sequence: Any, dtype: Any, what: str, sizes: set[int]
) -> np.ndarray:
    """``sequence`` as (T, B, size), its feature size one of ``sizes`` (see :func:`sequence_from_torch`)."""
    array = _numpy(sequence, dtype, what)
    if array.ndim not in (2, 3):
        raise ShapeError(f"{what} must be (T, B, size), (B, T, size) or (T, size); got {array.shape}")
    if array.shape[-1] not in sizes:
        output = layout.directions * layout.hidden_size
        raise ShapeError(
            f"{what} has feature size {array.shape[-1]} (shape {array.shape}), but this "
            f"{type(module).__name__} reads inputs of input_size={layout.input_size} and its output "
            f"(num_directions*hidden_size) has size {output}; "
            + (
                f"pass a {what} whose last axis has size {output}"
                if sizes == {output}
                else "pass an input of the module (or a gradient of its output)"
            )
        )
    if array.ndim == 2:
        return array[:, None, :]
    return np.ascontiguousarray(np.swapaxes(array, 0, 1)) if layout.batch_first else array


def output_to_torch(module: Any, trajectory: Trajectory) -> np.ndarray:
    """PyTorch's ``output``: what the cell emits at t = 1..T, (T, B, D·n), or (B, T, D·n) if ``batch_first``.

    Raises
    ------
    ShapeError
        For something other than a :class:`~gradflow.numeric.simulate.Trajectory`,
        or the trajectory of a cell other than the one ``from_torch(module)``
        gives (another kind of cell, other sizes).

    Examples
    --------
    >>> import torch, gradflow as gf
    >>> rnn = torch.nn.RNN(3, 4, batch_first=True)
    >>> cell, params = gf.from_torch(rnn)
    >>> output_to_torch(rnn, gf.simulate(cell, params, np.zeros((5, 2, 3)))).shape
    (2, 5, 4)
    """
    layout = _layout(module)
    if not isinstance(trajectory, Trajectory):
        raise ShapeError(
            f"output_to_torch needs the Trajectory that gf.simulate returns, got {type(trajectory).__name__}"
        )
    cell, name = trajectory.cell, trajectory.cell.emits
    expected = _cell(layout)
    if _signature(cell) != _signature(expected):
        raise ShapeError(
            f"the trajectory is of cell {cell.name!r} with parameters {_shapes(cell)}, but this "
            f"{type(module).__name__} is cell {expected.name!r} with parameters {_shapes(expected)}; "
            "simulate the cell that gf.from_torch(module) returns"
        )
    series = to_numpy(trajectory[name])
    if name in cell.states:
        series = series[:-1] if name in cell.backward else series[1:]
    return np.swapaxes(series, 0, 1) if layout.batch_first else series


def _shapes(cell: Any) -> dict[str, tuple[int, ...]]:
    return {name: tuple(int(d) for d in shape) for name, shape in cell.params.items()}


def _signature(cell: Any) -> tuple[Any, ...]:
    """What must agree between a module's cell and a trajectory's: what it emits, its states, its parameters."""
    return cell.emits, tuple(sorted(cell.states)), _shapes(cell)


def final_states(trajectory: Trajectory) -> dict[str, np.ndarray]:
    """Each state where its run ends, (B, n): time T for a forward state, time 1 for a backward one.

    ``states_to_torch(module, final_states(traj))`` is PyTorch's ``(h_n, c_n)``.
    """
    cell = trajectory.cell
    return {s: to_numpy(trajectory.at(s, 1 if s in cell.backward else trajectory.T)) for s in cell.states}


def initial_from_torch(module: Any, h0: Any, c0: Any = None, *, dtype: Any = None) -> dict[str, np.ndarray]:
    """PyTorch's initial states as the ``initial`` of ``simulate`` and ``bptt``: state name -> (B, n).

    Parameters
    ----------
    module : torch.nn.RNN, LSTM, GRU or a single-step cell
    h0, c0 : tensor or array, optional
        (num_layers·num_directions, B, n), or unbatched (num_layers·num_directions, n);
        (B, n) or (n,) for a single-step cell. ``c0`` for an LSTM only.
    dtype : None, "float32" or "float64"

    Raises
    ------
    ShapeError
        For a state of the wrong shape, or ``c0`` for a module without a cell state.

    Examples
    --------
    >>> import torch
    >>> initial = initial_from_torch(torch.nn.GRU(3, 4, num_layers=2), torch.ones(2, 7, 4))
    >>> {name: value.shape for name, value in initial.items()}
    {'layer1.h': (7, 4), 'layer2.h': (7, 4)}
    """
    layout = _layout(module)
    if c0 is not None and layout.kind != "lstm":
        raise ShapeError(f"c0 was given, but a {type(module).__name__} has no cell state c; pass h0 only")
    slots = list(layout.slots())
    initial: dict[str, np.ndarray] = {}
    for state, value in (("h", h0), ("c", c0)):
        if value is None:
            continue
        array = _numpy(value, dtype, f"{state}0")
        array = array[None] if layout.single_step else array
        if array.ndim not in (2, 3) or array.shape[0] != len(slots) or array.shape[-1] != layout.hidden_size:
            expected = "(B, n) or (n,)" if layout.single_step else "(num_layers*num_directions, B, n)"
            raise ShapeError(
                f"{state}0 has shape {np.shape(value)}; a {type(module).__name__} needs {expected} "
                f"with n = {layout.hidden_size}, num_layers*num_directions = {len(slots)}"
            )
        initial.update({prefix + state: array[k] for k, (prefix, _) in enumerate(slots)})
    return initial


def states_to_torch(module: Any, states: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-state arrays (B, n) in PyTorch's layout: ``(h, c)``, each (num_layers·num_directions, B, n).

    The inverse of :func:`initial_from_torch`: turns :func:`final_states` into
    ``(h_n, c_n)`` and ``bptt``'s ``grads.initial`` into ``(h0.grad,
    c0.grad)``. ``c`` is ``None`` but for an LSTM; a single-step cell gives (B, n).

    Raises
    ------
    ShapeError
        When a state of the module's cell is missing from ``states``.

    Examples
    --------
    >>> import torch
    >>> h, c = states_to_torch(torch.nn.RNN(3, 4, bidirectional=True), {"fwd.h": np.zeros(4), "bwd.h": np.ones(4)})
    >>> h.shape, h[:, 0].tolist(), c
    ((2, 4), [0.0, 1.0], None)
    """
    layout = _layout(module)
    names = [prefix + state for state in layout.states for prefix, _ in layout.slots()]
    missing = [name for name in names if name not in states]
    if missing:
        raise ShapeError(
            f"no value of state {', '.join(missing)}; the cell of this {type(module).__name__} "
            f"has states {', '.join(names)}"
        )
    stacked = []
    for state in layout.states:
        parts = [to_numpy(states[prefix + state]) for prefix, _ in layout.slots()]
        stacked.append(parts[0] if layout.single_step else np.stack(parts, axis=0))
    return stacked[0], stacked[1] if len(stacked) > 1 else None


def upstream_from_torch(
    module: Any, output_grad: Any, h_n_grad: Any = None, c_n_grad: Any = None, *, dtype: Any = None
) -> dict[str, np.ndarray]:
    r"""The ``upstream`` of ``bptt`` for a loss of PyTorch's ``output``, ``h_n`` and ``c_n``.

    Parameters
    ----------
    module : torch.nn.RNN, LSTM, GRU or a single-step cell
    output_grad : tensor or array
        :math:`\partial L/\partial\,\mathrm{output}`, laid out like ``output``
        (zeros when the loss reads only ``h_n``); for a single-step cell, of
        its h at every step, (T, B, n).
    h_n_grad, c_n_grad : tensor or array, optional
        :math:`\partial L/\partial h_n`, :math:`\partial L/\partial c_n`, laid
        out like ``h_n``, ``c_n``: they seed each state where its run ends.
    dtype : None, "float32" or "float64"

    Returns
    -------
    dict of str to numpy.ndarray
        Node name -> (T, B, size).

    Raises
    ------
    ShapeError
        For an ``output_grad`` whose feature size is not the module's output
        size (num_directions·hidden_size), or an ``h_n_grad``/``c_n_grad`` of
        the wrong shape (as for :func:`initial_from_torch`).

    Examples
    --------
    >>> import torch
    >>> lstm = torch.nn.LSTM(3, 4)
    >>> upstream = upstream_from_torch(lstm, torch.ones(5, 2, 4), c_n_grad=torch.ones(1, 2, 4))
    >>> float(upstream["h"].sum()), float(upstream["c"][-1].sum()), float(upstream["c"][:-1].sum())
    (40.0, 8.0, 0.0)
    """
    layout = _layout(module)
    cell = _cell(layout)
    output = layout.directions * layout.hidden_size
    emitted = _sequence(module, layout, output_grad, dtype, "output_grad", {output})
    upstream = {cell.emits: emitted}
    T, B = emitted.shape[:2]
    for name, value in initial_from_torch(module, h_n_grad, c_n_grad, dtype=dtype).items():
        series = upstream.setdefault(name, np.zeros((T, B, layout.hidden_size), dtype=emitted.dtype))
        series[0 if name in cell.backward else T - 1] += value
    return upstream


def gradients_to_torch(module: Any, grads: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Parameter gradients from ``bptt``, keyed and shaped like ``module.named_parameters()``.

    ``bias_ih`` and ``bias_hh`` both get the gradient of gradflow's summed
    bias (exact: the cell depends on their sum; the GRU candidate's
    ``bias_hh`` rows get ``b_Wh``'s). Compare with ``param.grad``.

    Raises
    ------
    ShapeError
        When a parameter of the module's cell is missing from ``grads``, has a
        gradient of another shape than the parameter, or ``grads`` holds names
        the cell does not have (each named in the message).

    Examples
    --------
    >>> import torch, gradflow as gf
    >>> rnn = torch.nn.RNN(3, 4)
    >>> cell, params = gf.from_torch(rnn)
    >>> grads = gf.bptt(cell, params, np.ones((5, 2, 3)), {"h": np.ones((5, 2, 4))})
    >>> {name: g.shape for name, g in gradients_to_torch(rnn, grads).items()}
    {'weight_ih_l0': (4, 3), 'weight_hh_l0': (4, 4), 'bias_ih_l0': (4,), 'bias_hh_l0': (4,)}
    """
    layout = _layout(module)
    shapes = _shapes(_cell(layout))
    missing = [name for name in shapes if name not in grads]
    if missing:
        raise ShapeError(
            f"no gradient for {', '.join(missing)}: pass the Gradients of gf.bptt on the cell "
            f"that from_torch({type(module).__name__}) returned"
        )
    extra = [name for name in grads if name not in shapes]
    if extra:
        raise ShapeError(
            f"gradients for {', '.join(map(repr, extra))}, which the cell of this {type(module).__name__} "
            f"does not have (its parameters are {', '.join(shapes)}); pass the Gradients of gf.bptt on the "
            "cell that from_torch(module) returned"
        )
    arrays = {name: to_numpy(grads[name]) for name in shapes}
    wrong = [
        f"{name!r} has shape {tuple(np.shape(arrays[name]))}, expected {shape}"
        for name, shape in shapes.items()
        if tuple(np.shape(arrays[name])) != shape
    ]
    if wrong:
        raise ShapeError(
            f"gradients of the wrong shape for this {type(module).__name__}: {'; '.join(wrong)}; "
            "each gradient must have its parameter's shape"
        )
    columns = {"weight_ih": 1, "weight_hh": 0, **({"bias_ih": 2, "bias_hh": 3} if layout.bias else {})}
    result: dict[str, np.ndarray] = {}
    for prefix, suffix in layout.slots():
        for key, column in columns.items():
            names = [prefix + entry[column] for entry in _BLOCKS[layout.kind]]
            result[key + suffix] = np.concatenate([arrays[name] for name in names], axis=0)
    return result
