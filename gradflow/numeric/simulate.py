r"""Forward simulation: every state, intermediate (gate) and output of a cell over time.

Layout (docs/architecture.md): inputs ``(T, B, m)``; a forward state's trajectory is
``(T+1, B, n)`` with index 0 the initial value; a state running backwards in
time (the ``bwd`` half of a bidirectional layer) is ``(T+1, B, n)`` with
index ``t - 1`` for time ``t`` and its initial value (at time ``T + 1``) last;
intermediates and outputs are ``(T, B, size)``, index ``t - 1`` for time ``t``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Collection, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from gradflow.cells.cell import Cell
from gradflow.errors import GradflowError, NonFiniteError, ShapeError
from gradflow.numeric._problem import Problem
from gradflow.numeric._values import Values
from gradflow.numeric.backend import dtype_of, namespace
from gradflow.numeric.compiled import compile, infer_sizes

__all__ = ["Problem", "Trajectory", "Values", "prepare", "simulate"]


def _shape(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    if shape is None:
        return ()
    return tuple(int(d) for d in shape)


def _finite(xp: Any, value: Any, dtype: Any, what: str) -> Any:
    """``value`` as an array of ``dtype``; a NaN or infinity in it is an error, not a silent NaN later.

    Complex numbers, strings and ``None`` are errors too (a cast would drop the imaginary part, or
    read "1" as 1.0).
    """
    if value is None:
        raise ShapeError(f"{what} is None; expected an array of real numbers")
    if getattr(value, "requires_grad", False):  # a torch tensor in a graph: gradflow reads its numbers
        value = value.detach()
    kind = _kind_of(value)
    if kind in _NOT_REAL:
        raise ShapeError(f"{what} holds {_NOT_REAL[kind]} values; gradflow computes with real numbers")
    try:
        array = xp.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ShapeError(f"{what} is not an array of numbers ({err})") from err
    if not bool(xp.all(xp.isfinite(array))):
        raise ShapeError(f"{what} holds NaN or infinite entries; gradflow needs finite numbers")
    return array


#: NumPy dtype kinds that are not real numbers.
_NOT_REAL = {"c": "complex", "U": "text", "S": "bytes"}


def _kind_of(value: Any) -> str:
    """The NumPy dtype kind of ``value`` as far as it tells: "c" complex, "U" text, "f" otherwise."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        kind = getattr(dtype, "kind", None)
        if kind is None:  # torch, array_api_strict: by the dtype's name
            return "c" if "complex" in str(dtype) else "f"
        if kind != "O":
            return str(kind)
    elif not isinstance(value, list | tuple | complex | str | bytes):
        return "f"
    import numpy as np

    if dtype is None:  # numbers, lists: NumPy's own reading first (one pass in C)
        try:
            kind = np.asarray(value).dtype.kind
        except (TypeError, ValueError):
            kind = "O"  # ragged: item by item below
        if kind != "O":
            return str(kind)
    try:
        items = np.asarray(value, dtype=object).ravel()
    except (TypeError, ValueError):
        return "O"
    kinds = {np.asarray(item).dtype.kind for item in items}
    return next((k for k in _NOT_REAL if k in kinds), "f")


@functools.lru_cache(maxsize=64)
def _depths(cell: Cell) -> Mapping[str, int]:
    """How many steps of history each state of ``cell`` needs (its longest delay; 1 at least).

    Remembered per cell (``delays`` walks every equation) and read-only, since it is shared.
    """
    return MappingProxyType({state: max(cell.delays(state), default=1) for state in cell.states})


def prepare(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    initial: Mapping[str, Any] | None = None,
    *,
    backend: Any = None,
    dtype: Any = None,
) -> Problem:
    """Check and convert the arrays of a numeric call; compile the cell for their sizes.

    Raises
    ------
    ShapeError
        For a missing or extra parameter, an array of the wrong shape, inputs
        that are not (T, B, m) with T, B >= 1, arguments that are not dicts where
        dicts are expected, and arrays that are None, complex, text, NaN or infinite.
    """
    if not isinstance(params, Mapping):
        raise ShapeError(
            f"params must be a dict {{name: array}} of the parameters of cell {cell.name!r}, got "
            f"{type(params).__name__}"
        )
    if initial is not None and not isinstance(initial, Mapping):
        raise ShapeError(
            f"initial must be a dict {{state name: array}}, got {type(initial).__name__}; e.g. "
            f"initial={{{next(iter(cell.states))!r}: h0}}"
        )
    if inputs is None:
        raise ShapeError(f"inputs is None; cell {cell.name!r} needs (T, B, size) arrays")
    if backend is None:
        for value in (*params.values(), *(inputs.values() if isinstance(inputs, Mapping) else [inputs])):
            if hasattr(value, "shape") and type(value).__module__.split(".")[0] not in ("numpy", "builtins"):
                backend = value
                break
    xp = namespace(backend)
    real = dtype_of(xp, dtype)
    missing = sorted(set(cell.params) - set(params))
    extra = sorted(set(params) - set(cell.params))
    if missing or extra:
        raise ShapeError(
            f"cell {cell.name!r} needs parameters {', '.join(cell.params)}; "
            + (f"missing {', '.join(missing)}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unknown {', '.join(extra)}" if extra else "")
        )
    if not isinstance(inputs, Mapping):
        if len(cell.inputs) != 1:
            raise ShapeError(
                f"cell {cell.name!r} has inputs {', '.join(cell.inputs) or 'none'}: pass a dict name -> (T, B, size)"
            )
        inputs = {next(iter(cell.inputs)): inputs}
    if set(inputs) != set(cell.inputs):
        raise ShapeError(f"cell {cell.name!r} has inputs {', '.join(cell.inputs)}; got {', '.join(inputs)}")
    arrays = {name: _finite(xp, value, real, f"parameter {name!r}") for name, value in params.items()}
    xs = {name: _finite(xp, value, real, f"input {name!r}") for name, value in inputs.items()}
    for name, x in xs.items():
        if x.ndim != 3:
            raise ShapeError(f"input {name!r} must be laid out (T, B, size); got shape {_shape(x)}")
    if not xs:
        raise ShapeError(
            f"cell {cell.name!r} has no inputs: the numeric functions read T and B from the input arrays, "
            "so a cell needs at least one input (it may be a constant one)"
        )
    times = {x.shape[0] for x in xs.values()}
    batches = {x.shape[1] for x in xs.values()}
    if len(times) != 1 or len(batches) != 1:
        raise ShapeError(
            f"inputs disagree on T or B: {', '.join(f'{k}: {_shape(v)}' for k, v in xs.items())}"
        )
    T, B = int(times.pop()), int(batches.pop())
    if T < 1:
        raise ShapeError("inputs have T = 0 steps; give at least one")
    if B < 1:
        raise ShapeError("inputs have a batch of B = 0 sequences; give at least one")
    shapes: dict[str, tuple[int, ...]] = {name: _shape(a) for name, a in arrays.items()}
    shapes.update({name: (int(x.shape[2]),) for name, x in xs.items()})
    sizes = infer_sizes(cell, shapes) if not cell.is_concrete else {}
    compiled = compile(cell, xp, real, **sizes)
    concrete = compiled.cell
    for name, expected in concrete.params.items():
        wanted = tuple(int(d) for d in expected)
        if _shape(arrays[name]) != wanted:
            raise ShapeError(
                f"parameter {name!r} has shape {_shape(arrays[name])} but cell {cell.name!r} needs {wanted}"
            )
    for name, x in xs.items():
        if int(x.shape[2]) != int(concrete.inputs[name]):
            raise ShapeError(
                f"input {name!r} has size {x.shape[2]} but cell {cell.name!r} needs {concrete.inputs[name]}"
            )
    history = {}
    given = dict(initial or {})
    unknown = sorted(set(given) - set(concrete.states))
    if unknown:
        raise ShapeError(
            f"initial values for {', '.join(unknown)}, which are not states of cell {cell.name!r}"
        )
    depths = _depths(concrete)
    for state, state_size in concrete.states.items():
        n, depth = int(state_size), depths[state]
        value = given.get(state)
        if value is None:
            history[state] = [xp.zeros((B, n), dtype=real)] * depth
            continue
        value = _finite(xp, value, real, f"initial value of state {state!r}")
        if value.ndim == 3 and value.shape[0] == depth and tuple(value.shape[1:]) == (B, n):
            history[state] = [value[depth - 1 - k, ...] for k in range(depth)]
        elif tuple(value.shape) in ((B, n), (n,)):
            history[state] = [xp.broadcast_to(value, (B, n))] * depth
        else:
            allowed = f"({B}, {n}) or ({n},)" + (f" or ({depth}, {B}, {n})" if depth > 1 else "")
            raise ShapeError(
                f"initial value of state {state!r} has shape {_shape(value)}; expected {allowed}"
            )
    unbound = {name: [x[k, ...] for k in range(T)] for name, x in xs.items()}
    return Problem(compiled, arrays, unbound, history, T, B, xs)


def run_forward(problem: Problem, keep: Mapping[str, Collection[int]] | None = None) -> Values:
    """Evaluate every node of every sweep at every time.

    ``keep``: by node, the indices of the forward kernel's saved values that its VJP reads
    (:attr:`~gradflow.numeric._pullbacks.VJP.uses`); these are kept for the backward pass, and
    the other entries are ``None``, so that no step holds a subtree nobody reads again.
    """
    with _quiet(problem.xp):  # an overflow is reported once, below, as a NonFiniteError
        values = _forward(problem, keep)
    _check_finite(problem, values)
    return values


def _quiet(xp: Any) -> Any:
    """NumPy's floating-point warnings off (NumPy-backed namespaces); nothing to do for others."""
    import array_api_compat

    if array_api_compat.is_numpy_namespace(xp) or array_api_compat.is_array_api_strict_namespace(xp):
        import numpy as np

        return np.errstate(over="ignore", invalid="ignore", divide="ignore")
    return contextlib.nullcontext()


def _check_finite(problem: Problem, values: Values) -> None:
    """Every node's series finite, or a :class:`NonFiniteError` naming the node and the first step."""
    xp = problem.xp
    for name, series in values.series.items():
        if bool(xp.all(xp.isfinite(series))):
            continue
        bad = xp.any(xp.logical_not(xp.isfinite(series)), axis=(1, 2))
        rows = [k for k in range(int(series.shape[0])) if bool(bad[k])]
        state = name in problem.cell.states
        backward = name in problem.cell.backward
        steps = [(k if not backward else k + 1) if state else k + 1 for k in rows]
        step = max(steps) if backward else min(steps)
        row = series[rows[-1] if backward else rows[0], ...]
        what = "became NaN" if not bool(xp.any(xp.isinf(row))) else "overflowed to inf"
        info = xp.finfo(series.dtype)
        wider = " or compute in float64" if int(info.bits) < 64 else ""
        raise NonFiniteError(
            f"{'state' if state else 'node'} {name!r} of cell {problem.cell.name!r} {what} at step {step} "
            f"of {problem.T}: its values left the float{int(info.bits)} range (±{float(info.max):.1e}), "
            f"or a parameter divides by zero; shorten T, scale the weights or inputs down{wider}, or "
            "check the parameters"
        )


def _forward(problem: Problem, keep: Mapping[str, Collection[int]] | None) -> Values:
    values = Values(problem)
    program = problem.compiled.program
    xp, P, dtype = problem.xp, problem.params, problem.compiled.dtype
    hoisted: dict[str, list[tuple[Any, ...]]] = {}
    T, B = problem.T, problem.B
    for name, forward in program.forward.items():
        if forward.static is not None:  # products with the inputs, for every step at once
            # as (T B, m) matrices: one large product, not T small ones (NumPy loops a stacked
            # matmul over its leading axis; the flat product ran twice as fast for an LSTM)
            whole = {key: xp.reshape(problem.sequences[key[0]], (T * B, -1)) for key in forward.static_reads}
            arrays = [
                xp.reshape(xp.broadcast_to(a, (T * B, a.shape[-1])), (T, B, a.shape[-1]))
                for a in forward.static(xp, P, whole, dtype)
            ]
            hoisted[name] = [tuple(a[k, ...] for a in arrays) for k in range(T)]
    for index, sweep in enumerate(program.sweeps):
        times = range(1, problem.T + 1) if sweep.direction > 0 else range(problem.T, 0, -1)
        kernels = [(name, program.forward[name], hoisted.get(name)) for _, name in sweep.nodes]
        fused = program.fused[index] if program.fused else ()
        # [W_1; W_2; ...]^T, built as one array laid out for the product (a transposed view is slower)
        stacked = [xp.concat([P[param].T for param in group.params], axis=1) for group in fused]
        for time in times:
            blocks = []  # [W_1; W_2; ...] s, one product per group, cut into W_k s
            for group, matrix in zip(fused, stacked, strict=True):
                product = xp.matmul(values(group.read[0], time + group.read[1]), matrix)
                blocks.append([product[..., a:b] for a, b in group.spans])
            for name, forward, steps in kernels:
                H = steps[time - 1] if steps is not None else ()
                if forward.given:
                    H = (*H, *(blocks[g][p] for g, p in forward.given))
                value, saved = forward.function(xp, P, values.reads(forward.reads, time), H, dtype)
                row = values.store(name, time, value)
                if keep is not None:
                    used = keep.get(name, ())
                    values.saved[(name, time)] = tuple(
                        (row if v is value else v) if k in used else None for k, v in enumerate(saved)
                    )
    return values


class Trajectory(Mapping[str, Any]):
    """Every signal of a simulation by name (see the module docstring for the layout).

    Attributes
    ----------
    cell : Cell
        The concrete cell.
    T, B : int
    """

    def __init__(self, problem: Problem, values: Values) -> None:
        self.cell = problem.cell
        self.T, self.B = problem.T, problem.B
        self._problem, self._values = problem, values
        self._arrays: dict[str, Any] = {}
        self._kinds = {name: kind for kind, name in self.cell.order}

    def _build(self, name: str) -> Any:
        """Stack one signal over time (on first access: a BPTT caller may never look)."""
        problem, values, xp = self._problem, self._values, self._problem.xp
        if name in values.series:
            return values.series[name]
        series = []
        for time in range(1, problem.T + 1):
            value = values(name, time)
            series.append(xp.broadcast_to(value, (problem.B, value.shape[-1])))
        if self._kinds[name] == "state":
            backward = name in self.cell.backward
            start = values(name, problem.T + 1 if backward else 0)
            series = [*series, start] if backward else [start, *series]
        return xp.stack(series, axis=0)

    def __getitem__(self, name: str) -> Any:
        if name not in self._arrays:
            if name not in self._kinds:
                raise KeyError(
                    f"{name!r} is not a signal of cell {self.cell.name!r}; it has {', '.join(self)}"
                )
            self._arrays[name] = self._build(name)
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def at(self, name: str, time: int) -> Any:
        """The value of ``name`` at ``time`` (``0`` is a forward state's initial value), shape (B, size)."""
        array = self[name]
        index = time if name in self.cell.states and name not in self.cell.backward else time - 1
        if not 0 <= index < array.shape[0]:
            raise GradflowError(f"{name!r} has no value at time {time} (T = {self.T})")
        return array[index, ...]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(self[k].shape)}" for k in self._kinds)
        return f"Trajectory({self.cell.name}, T={self.T}, B={self.B}; {shapes})"


def simulate(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    initial: Mapping[str, Any] | None = None,
    *,
    backend: Any = None,
    dtype: Any = None,
) -> Trajectory:
    r"""Run ``cell`` over a batch of input sequences.

    Parameters
    ----------
    cell : Cell
        Symbolic sizes are read off the arrays.
    params : dict of str to array
        Every parameter of the cell (matrices (p, q), vectors (p,), scalars ()).
    inputs : array (T, B, m), or dict of name to array
        The input sequence(s).
    initial : dict of str to array, optional
        Initial states, (B, n) or (n,) (zero by default); a state read
        ``d > 1`` steps back takes its history as (d, B, n), oldest first.
    backend : None, str or namespace
        Default: the namespace of the arrays (NumPy for lists and NumPy arrays).
    dtype : None, "float32", "float64"
        float64 by default.

    Returns
    -------
    Trajectory
        ``traj["h"]`` is (T+1, B, n) with index 0 the initial value; gates
        and outputs are (T, B, size).

    Raises
    ------
    ShapeError
        For arrays that do not fit the cell (see :func:`prepare`).
    NonFiniteError
        When a node overflows to inf or becomes NaN during the simulation (an exploding network
        over many steps); the message names the node and the first step. The same holds for
        every analysis that simulates: ``jacobian_chain``, ``bptt``, ``regime``,
        ``lyapunov_spectrum``, ``bound_vs_measured``.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> cell = gf.cells.elman()
    >>> params = {"W_h": np.eye(2) * 0.5, "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    >>> traj = simulate(cell, params, np.ones((3, 1, 1)))
    >>> traj["h"].shape
    (4, 1, 2)
    >>> float(traj["h"][1, 0, 0]) == float(np.tanh(1.0))
    True
    """
    problem = prepare(cell, params, inputs, initial, backend=backend, dtype=dtype)
    return Trajectory(problem, run_forward(problem))
