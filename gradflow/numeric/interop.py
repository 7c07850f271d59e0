r"""PyTorch interop: a trained ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` as a gradflow cell and parameters.

:func:`from_torch` reads a module into the matching built-in cell
(:func:`~gradflow.cells.elman`, :func:`~gradflow.cells.lstm`,
:func:`~gradflow.cells.gru` with ``reset_after=True``), stacked with
:func:`~gradflow.cells.stack` for ``num_layers > 1`` and doubled with
:func:`~gradflow.cells.bidirectional`; ``nn.RNNCell``, ``nn.LSTMCell`` and
``nn.GRUCell`` give the plain cell. The other functions translate what goes
in and out of a module:

* :func:`sequence_from_torch` -- an input (or a gradient of ``output``) as gradflow's time-major (T, B, size);
* :func:`initial_from_torch` -- ``h0``, ``c0`` as the ``initial`` of ``simulate`` and ``bptt``;
* :func:`output_to_torch`, :func:`final_states`, :func:`states_to_torch` -- ``output``, ``h_n``, ``c_n``;
* :func:`upstream_from_torch` -- a loss's gradients at ``output``, ``h_n``, ``c_n`` as ``bptt``'s ``upstream``;
* :func:`gradients_to_torch` -- parameter gradients keyed like ``module.named_parameters()``.

PyTorch keeps two biases per gate, ``bias_ih`` and ``bias_hh``. The cell
depends on their sum only (but in the GRU's candidate, where ``bias_hh`` sits
inside the reset and becomes ``b_Wh``), so gradflow's one bias is their sum,
and both get its gradient.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradflow.cells import Cell, bidirectional, elman, gru, lstm, stack
from gradflow.errors import BackendUnavailableError, GradflowError, ShapeError
from gradflow.numeric.backend import dtype_of, namespace, to_numpy
from gradflow.numeric.simulate import Trajectory

__all__ = [
    "UnsupportedModuleError",
    "final_states",
    "from_torch",
    "gradients_to_torch",
    "initial_from_torch",
    "output_to_torch",
    "sequence_from_torch",
    "states_to_torch",
    "upstream_from_torch",
]


class UnsupportedModuleError(GradflowError, ValueError):
    """A PyTorch module, or an option of one, that gradflow has no cell for.

    Raised by :func:`from_torch` and the other interop functions for anything
    but ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their single-step ``*Cell``
    forms, and for an LSTM with ``proj_size > 0``. The message names the
    module and says what is supported.
    """


#: Row blocks of PyTorch's stacked gate weights, in PyTorch's gate order:
#: (recurrent matrix, input matrix, bias taking ``bias_ih``, bias taking ``bias_hh``).
_BLOCKS = {
    "rnn": (("W_h", "W_x", "b", "b"),),
    "lstm": tuple((f"W_{g}", f"U_{g}", f"b_{g}", f"b_{g}") for g in "ifco"),
    "gru": (("W_r", "U_r", "b_r", "b_r"), ("W_z", "U_z", "b_z", "b_z"), ("W_h", "U_h", "b_h", "b_Wh")),
}
_MODES = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise BackendUnavailableError(
            'PyTorch is needed to read torch modules; pip install "gradflow[torch]" (torch==2.13.0)'
        ) from err
    return torch


@dataclass(frozen=True)
class _Layout:
    """What gradflow needs to know of a recurrent module."""

    kind: str  # "rnn", "lstm" or "gru"
    activation: str  # of the Elman cell: "tanh" or "relu"
    layers: int
    directions: int
    input_size: int
    hidden_size: int
    bias: bool
    batch_first: bool
    single_step: bool  # an nn.*Cell: parameters without suffix, states without the layer axis

    def slots(self) -> Iterator[tuple[str, str]]:
        """``(gradflow prefix, PyTorch suffix)`` in PyTorch's order: layer by layer, forward first."""
        for layer in range(self.layers):
            for direction in range(self.directions):
                prefix = f"layer{layer + 1}." if self.layers > 1 else ""
                prefix += ("fwd.", "bwd.")[direction] if self.directions == 2 else ""
                yield prefix, "" if self.single_step else f"_l{layer}" + ("_reverse" if direction else "")

    @property
    def states(self) -> tuple[str, ...]:
        return ("h", "c") if self.kind == "lstm" else ("h",)


def _layout(module: Any) -> _Layout:
    nn = _torch().nn
    name = type(module).__name__
    mode, single_step = None, isinstance(module, nn.RNNCellBase)
    if isinstance(module, nn.RNNBase):
        mode = module.mode
        if getattr(module, "proj_size", 0) > 0:
            raise UnsupportedModuleError(
                f"{name} has proj_size={module.proj_size}: gradflow's lstm cell has no projection of h; "
                "use a module with proj_size=0"
            )
    elif single_step:
        lstm_or_gru = {nn.LSTMCell: "LSTM", nn.GRUCell: "GRU"}
        mode = next((v for k, v in lstm_or_gru.items() if isinstance(module, k)), None)
        mode = mode or f"RNN_{getattr(module, 'nonlinearity', '')}".upper()
    if mode not in _MODES:
        raise UnsupportedModuleError(
            f"cannot read a {name}: gradflow maps torch.nn.RNN (tanh or relu), LSTM and GRU "
            "(any num_layers, bidirectional, bias, batch_first) and RNNCell, LSTMCell, GRUCell"
        )
    return _Layout(
        kind=_MODES[mode],
        activation="relu" if mode == "RNN_RELU" else "tanh",
        layers=1 if single_step else int(module.num_layers),
        directions=2 if getattr(module, "bidirectional", False) else 1,
        input_size=int(module.input_size),
        hidden_size=int(module.hidden_size),
        bias=bool(module.bias),
        batch_first=bool(getattr(module, "batch_first", False)),
        single_step=single_step,
    )


def _cell(layout: _Layout) -> Cell:
    n, layers = layout.hidden_size, []
    for layer in range(layout.layers):
        m = layout.input_size if layer == 0 else n * layout.directions
        if layout.kind == "rnn":
            cell = elman(layout.activation, n=n, m=m)
        else:
            cell = lstm(n=n, m=m) if layout.kind == "lstm" else gru(reset_after=True, n=n, m=m)
        layers.append(bidirectional(cell) if layout.directions == 2 else cell)
    return stack(layers) if len(layers) > 1 else layers[0]


def _numpy(value: Any, dtype: Any, what: str) -> np.ndarray:
    """A NumPy copy of a tensor (detached, on the CPU) or of an array."""
    if type(value).__module__.split(".")[0] == "torch":
        value = value.detach().cpu().double().numpy()
    try:
        return np.array(to_numpy(value), dtype=dtype_of(namespace("numpy"), dtype))
    except (TypeError, ValueError) as err:
        raise ShapeError(
            f"{what} must be a tensor or an array of numbers, got {type(value).__name__}"
        ) from err


def from_torch(module: Any, *, dtype: Any = None) -> tuple[Cell, dict[str, np.ndarray]]:
    r"""The gradflow cell and parameters of a PyTorch recurrent module.

    Parameters
    ----------
    module : torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell or GRUCell
        Any ``num_layers`` (a :func:`~gradflow.cells.stack`: ``layer1.W_h``,
        ...), ``bidirectional`` (a :func:`~gradflow.cells.bidirectional`
        layer: ``fwd.W_h``, ``bwd.W_h``), ``bias``, ``batch_first``; weights of
        any float dtype on any device. ``dropout`` is accepted and ignored:
        gradflow's cells have no dropout, so they match the module in ``eval()`` mode.
    dtype : None, "float32" or "float64"
        Of the returned arrays; float64 by default.

    Returns
    -------
    cell : Cell
        ``elman(nonlinearity)``, ``lstm()`` or ``gru(reset_after=True)`` with
        the module's sizes; ``cell.emits`` (``"h"``, or ``"layer2.h"`` ...) is
        PyTorch's ``output``.
    params : dict of str to numpy.ndarray
        Copies, with the cell's names and shapes: ``W_g`` (n, n) from
        ``weight_hh``, ``U_g`` (n, m) from ``weight_ih``, ``b_g`` (n,) =
        ``bias_ih + bias_hh`` (the GRU candidate's ``b_h`` = ``bias_ih``,
        ``b_Wh`` = ``bias_hh``). With ``bias=False`` the biases are zero
        arrays: gradflow's cells always have them.

    Raises
    ------
    UnsupportedModuleError
        For any other module, or an LSTM with ``proj_size > 0``.
    BackendUnavailableError
        When PyTorch is not installed (``pip install "gradflow[torch]"``).

    Notes
    -----
    gradflow's arrays are time-major, (T, B, m): :func:`sequence_from_torch`
    converts a ``batch_first`` module's (B, T, m) (as does ``x.transpose(0, 1)``).

    Examples
    --------
    >>> import torch, gradflow as gf
    >>> gru = torch.nn.GRU(input_size=3, hidden_size=4, num_layers=2, bidirectional=True).double()
    >>> cell, params = from_torch(gru)
    >>> cell.emits, params["layer2.fwd.U_z"].shape
    ('layer2.h', (4, 8))
    >>> x = torch.randn(5, 2, 3, dtype=torch.float64)
    >>> output, h_n = gru(x)
    >>> traj = gf.simulate(cell, params, sequence_from_torch(gru, x))
    >>> bool(np.allclose(output_to_torch(gru, traj), output.detach().numpy()))
    True
    >>> bool(np.allclose(states_to_torch(gru, final_states(traj))[0], h_n.detach().numpy()))
    True
    """
    layout = _layout(module)
    n = layout.hidden_size
    params: dict[str, np.ndarray] = {}
    for prefix, suffix in layout.slots():
        names = (
            ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if layout.bias else ("weight_ih", "weight_hh")
        )
        weights = {k: _numpy(getattr(module, k + suffix), None, k + suffix) for k in names}
        for k, (W, U, b_ih, b_hh) in enumerate(_BLOCKS[layout.kind]):
            rows = slice(k * n, (k + 1) * n)
            params[prefix + W], params[prefix + U] = weights["weight_hh"][rows], weights["weight_ih"][rows]
            ih, hh = (weights[b][rows] if layout.bias else np.zeros(n) for b in ("bias_ih", "bias_hh"))
            if b_ih == b_hh:
                params[prefix + b_ih] = ih + hh
            else:
                params[prefix + b_ih], params[prefix + b_hh] = ih, hh
    cell = _cell(layout)
    return cell, {name: _numpy(params[name], dtype, name) for name in cell.params}


def sequence_from_torch(module: Any, sequence: Any, *, dtype: Any = None) -> np.ndarray:
    """A PyTorch sequence (an input, a gradient of ``output``) as gradflow's (T, B, size) NumPy array.

    A ``batch_first`` module's (B, T, size) is transposed; an unbatched
    (T, size) becomes (T, 1, size). float64 by default.

    Examples
    --------
    >>> import torch
    >>> sequence_from_torch(torch.nn.GRU(3, 4, batch_first=True), torch.zeros(2, 5, 3)).shape
    (5, 2, 3)
    """
    layout = _layout(module)
    array = _numpy(sequence, dtype, "sequence")
    if array.ndim == 2:
        return array[:, None, :]
    if array.ndim != 3:
        raise ShapeError(f"a sequence must be (T, B, size), (B, T, size) or (T, size); got {array.shape}")
    return np.ascontiguousarray(np.swapaxes(array, 0, 1)) if layout.batch_first else array


def output_to_torch(module: Any, trajectory: Trajectory) -> np.ndarray:
    """PyTorch's ``output``: what the cell emits at t = 1..T, (T, B, D·n), or (B, T, D·n) if ``batch_first``.

    Examples
    --------
    >>> import torch, gradflow as gf
    >>> rnn = torch.nn.RNN(3, 4, batch_first=True)
    >>> cell, params = from_torch(rnn)
    >>> output_to_torch(rnn, gf.simulate(cell, params, np.zeros((5, 2, 3)))).shape
    (2, 5, 4)
    """
    layout = _layout(module)
    cell, name = trajectory.cell, trajectory.cell.emits
    series = to_numpy(trajectory[name])
    if name in cell.states:
        series = series[:-1] if name in cell.backward else series[1:]
    return np.swapaxes(series, 0, 1) if layout.batch_first else series


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
    emitted = sequence_from_torch(module, output_grad, dtype=dtype)
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
        When a parameter of the module's cell is missing from ``grads``.

    Examples
    --------
    >>> import torch, gradflow as gf
    >>> rnn = torch.nn.RNN(3, 4)
    >>> cell, params = from_torch(rnn)
    >>> grads = gf.bptt(cell, params, np.ones((5, 2, 3)), {"h": np.ones((5, 2, 4))})
    >>> {name: g.shape for name, g in gradients_to_torch(rnn, grads).items()}
    {'weight_ih_l0': (4, 3), 'weight_hh_l0': (4, 4), 'bias_ih_l0': (4,), 'bias_hh_l0': (4,)}
    """
    layout = _layout(module)
    missing = [name for name in _cell(layout).params if name not in grads]
    if missing:
        raise ShapeError(
            f"no gradient for {', '.join(missing)}: pass the Gradients of gf.bptt on the cell "
            f"that from_torch({type(module).__name__}) returned"
        )
    columns = {"weight_ih": 1, "weight_hh": 0, **({"bias_ih": 2, "bias_hh": 3} if layout.bias else {})}
    result: dict[str, np.ndarray] = {}
    for prefix, suffix in layout.slots():
        for key, column in columns.items():
            names = [prefix + entry[column] for entry in _BLOCKS[layout.kind]]
            result[key + suffix] = np.concatenate([to_numpy(grads[name]) for name in names], axis=0)
    return result
