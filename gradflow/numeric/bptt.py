r"""Backpropagation through time on arrays: Full, Truncated(tau) and Randomized(pi).

Reverse mode over the schedule of :mod:`gradflow.numeric.compiled`: every
node at every time pulls its cotangent back to what it read, with the
vector--Jacobian products printed from :func:`gradflow.symbolic.vjp.pullback`.
The weight gradients of all steps are gathered and formed at the end, one
large product per term: :math:`\partial L/\partial W = \sum_t \ell_t r_t^\top
= L^\top R` with :math:`L, R` stacked over time and batch.

Strategies mean what they mean in :mod:`gradflow.symbolic.bptt` (d2l §9.7):

* ``Truncated(tau)`` -- the adjoint at step :math:`t` collects the direct
  gradients of the loss steps :math:`t \le i \le t + \tau` only. Cotangents
  carry a *budget* axis (how many steps they may still travel), so one pass
  computes it exactly; :math:`\tau \ge T` is the full gradient (for a cell
  that mixes directions, as a stack on a bidirectional layer, a path may run
  back :math:`T-1` steps in one layer and forward :math:`T-1` in another:
  there :math:`\tau \ge 2T-2` is).
* ``Randomized(pi, seed)`` -- each step's Jacobian is multiplied by
  :math:`\xi_t` with :math:`P(\xi_t = 1/\pi) = \pi`, else 0, drawn
  independently for every step, every sequence of the batch and every sweep
  of the schedule (the two directions of a bidirectional layer): an unbiased
  estimate of the full gradient (Tallec & Ollivier 2017).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gradflow.cells.cell import Cell
from gradflow.errors import GradflowError, ShapeError
from gradflow.numeric.simulate import Problem, Trajectory, Values, _shape, prepare, run_forward
from gradflow.symbolic.strategies import Randomized, Truncated, as_strategy

__all__ = ["Gradients", "bptt", "clip_by_norm", "clip_by_value", "global_norm"]


class Gradients(Mapping[str, Any]):
    r"""Gradients of the loss: a mapping parameter name -> array shaped like the parameter.

    Attributes
    ----------
    inputs : dict of str to array
        :math:`\\partial L/\\partial x^{(t)}`, laid out like the inputs (T, B, m).
    initial : dict of str to array
        :math:`\\partial L/\\partial s^{(0)}` per state, (B, n) (or (d, B, n),
        oldest first, for a state read d > 1 steps back).
    trajectory : Trajectory
        The forward pass the gradients were computed on.
    norm : float
        The global norm of the parameter gradients before any clipping.
    clipped : bool
        Whether clipping changed them.
    """

    def __init__(
        self, params: dict[str, Any], inputs: dict[str, Any], initial: dict[str, Any], trajectory: Trajectory
    ) -> None:
        self._params = params
        self.inputs = inputs
        self.initial = initial
        self.trajectory = trajectory
        self.norm = global_norm(params)
        self.clipped = False

    def __getitem__(self, name: str) -> Any:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Gradients({', '.join(self._params)}; norm={self.norm:.6g})"


def global_norm(grads: Mapping[str, Any]) -> float:
    r""":math:`\sqrt{\sum_\theta \lVert \partial L/\partial\theta \rVert_F^2}` over every gradient."""
    total = 0.0
    for value in grads.values():
        xp = _namespace_of(value)
        total += float(xp.sum(value * value)) if hasattr(value, "shape") else float(value) ** 2
    return total**0.5


def _namespace_of(value: Any) -> Any:
    import array_api_compat

    return array_api_compat.array_namespace(value)


def clip_by_norm(grads: Mapping[str, Any], threshold: float) -> tuple[dict[str, Any], bool]:
    r"""Pascanu et al.'s rescaling: if :math:`\lVert g \rVert > \theta`, :math:`g \leftarrow \theta g / \lVert g \rVert`.

    Returns
    -------
    (dict, bool)
        The (possibly rescaled) gradients and whether they were rescaled.

    Raises
    ------
    GradflowError
        For a threshold that is not a positive finite number.

    References
    ----------
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent
    neural networks", ICML 2013, algorithm 1.
    """
    if not (isinstance(threshold, int | float) and 0 < threshold < float("inf")):
        raise GradflowError(f"clip norm threshold must be a positive number, got {threshold!r}")
    norm = global_norm(grads)
    if norm <= threshold:
        return dict(grads), False
    scale = threshold / norm
    return {name: value * scale for name, value in grads.items()}, True


def clip_by_value(grads: Mapping[str, Any], limit: float) -> tuple[dict[str, Any], bool]:
    """Clamp every component to ``[-limit, limit]``; returns the gradients and whether any changed.

    Raises
    ------
    GradflowError
        For a limit that is not a positive finite number.
    """
    if not (isinstance(limit, int | float) and 0 < limit < float("inf")):
        raise GradflowError(f"clip value limit must be a positive number, got {limit!r}")
    clipped, changed = {}, False
    for name, value in grads.items():
        xp = _namespace_of(value)
        bounded = xp.clip(value, -limit, limit)
        changed = changed or bool(xp.any(bounded != value))
        clipped[name] = bounded
    return clipped, changed


class _Reverse:
    """State of one reverse pass: pending cotangents and accumulated gradients."""

    def __init__(self, problem: Problem, values: Values, strategy: Any) -> None:
        self.problem, self.values = problem, values
        self.xp = problem.xp
        self.budget = strategy.tau + 1 if isinstance(strategy, Truncated) else 0
        self.xi = self._draw(strategy) if isinstance(strategy, Randomized) else None
        self.pending: dict[tuple[str, int], Any] = {}
        self.param_sums: dict[str, Any] = {}
        self.outer: dict[str, list[tuple[list[Any], list[Any]]]] = {}
        self.input_grads: dict[tuple[str, int], Any] = {}
        self.initial_grads: dict[tuple[str, int], Any] = {}

    def _draw(self, strategy: Randomized) -> Any:
        import numpy as np

        pi = float(strategy.pi) if strategy.pi.is_number else None
        if pi is None:
            raise GradflowError(f"Randomized(pi) needs a numeric pi for numbers, got {strategy.pi}")
        rng = np.random.default_rng(strategy.seed)
        sweeps = len(self.problem.compiled.program.sweeps)
        # one draw per step and sequence for each sweep: a path that goes back through step t of one
        # sweep and forward through step t of another must not meet the same xi twice (E[xi^2] != 1)
        keep = rng.random((sweeps, self.problem.T, self.problem.B)) < pi
        weights = np.where(keep, 1.0 / pi, 0.0)
        return self.xp.asarray(weights[..., None], dtype=self.problem.compiled.dtype)

    def add(self, key: tuple[str, int], value: Any) -> None:
        found = self.pending.get(key)
        self.pending[key] = value if found is None else found + value

    def seed(self, name: str, time: int, value: Any) -> None:
        """The direct gradient of the loss at ``(name, time)``: it may still travel ``tau`` steps."""
        if self.budget:
            xp = self.xp
            zeros = xp.zeros((self.budget - 1, *value.shape), dtype=value.dtype)
            value = xp.concat([zeros, xp.expand_dims(value, axis=0)], axis=0)
        self.add((name, time), value)

    def total(self, value: Any) -> Any:
        return self.xp.sum(value, axis=0) if self.budget else value

    def travel(self, value: Any, lag: int, time: int, sweep: int = 0) -> Any | None:
        """A cotangent sent ``lag`` steps through time by the step at ``time`` of sweep ``sweep``."""
        if self.xi is not None:
            return value * self.xi[sweep, time - 1, ...]
        if self.budget:
            steps = abs(lag)
            if steps >= self.budget:
                return None
            xp = self.xp
            zeros = xp.zeros((steps, *value.shape[1:]), dtype=value.dtype)
            return xp.concat([value[steps:, ...], zeros], axis=0)
        return value

    def run(self) -> None:
        problem = self.problem
        program = problem.compiled.program
        inputs, states = problem.inputs, problem.cell.states
        xp, P, dtype = self.xp, problem.params, problem.compiled.dtype
        for index in reversed(range(len(program.sweeps))):
            sweep = program.sweeps[index]
            times = range(problem.T, 0, -1) if sweep.direction > 0 else range(1, problem.T + 1)
            kernels = [(name, program.vjp(name, bool(self.budget))) for _, name in reversed(sweep.nodes)]
            for time in times:
                for name, vjp in kernels:
                    G = self.pending.pop((name, time), None)
                    if G is None:
                        continue
                    Gs = self.total(G)
                    F = self.values.saved[(name, time)]
                    reads, terms = vjp.function(xp, P, self.values.reads(vjp.reads, time), F, G, Gs, dtype)
                    for (source, lag), back in zip(vjp.reads, reads, strict=True):
                        if back is None:
                            continue
                        target = time + lag
                        if source in inputs:
                            self._accumulate(self.input_grads, (source, target), self.total(back))
                        elif source in states and not 1 <= target <= problem.T:
                            moved = self.travel(back, lag, time, index)
                            if moved is not None:
                                self._accumulate(self.initial_grads, (source, target), self.total(moved))
                        elif lag == 0:
                            self.add((source, target), back)
                        else:
                            moved = self.travel(back, lag, time, index)
                            if moved is not None:
                                self.add((source, target), moved)
                    for spec, value in zip(vjp.terms, terms, strict=True):
                        self._param(spec, value, time)

    def _accumulate(self, store: dict[tuple[str, int], Any], key: tuple[str, int], value: Any) -> None:
        found = store.get(key)
        store[key] = value if found is None else found + value

    def _param(self, spec: Any, value: Any, time: int) -> None:
        xp, B = self.xp, self.problem.B
        if spec.kind == "outer":
            left, right = value
            if right is None:
                right = self.values(spec.right[0], time + spec.right[1])
            if tuple(left.shape) != (B, left.shape[-1]):
                left = xp.broadcast_to(left, (B, left.shape[-1]))
            if tuple(right.shape) != (B, right.shape[-1]):
                right = xp.broadcast_to(right, (B, right.shape[-1]))
            lists = self.outer.setdefault(spec.param, [])
            lists.append(([left], [right]))
            return
        if spec.kind == "vector":
            value = xp.reshape(value, (-1, value.shape[-1]))
            total = xp.sum(value, axis=0)
        else:
            total = xp.sum(value)
        found = self.param_sums.get(spec.param)
        self.param_sums[spec.param] = total if found is None else found + total

    def parameter_gradients(self) -> dict[str, Any]:
        problem, xp = self.problem, self.xp
        grads: dict[str, Any] = {}
        stacked: dict[tuple[int, ...], Any] = {}
        for name, value in problem.params.items():
            total = self.param_sums.get(name)
            pairs = self.outer.get(name, [])
            if pairs:
                total = (
                    self._outer_sum(pairs, stacked)
                    if total is None
                    else total + self._outer_sum(pairs, stacked)
                )
            if total is None:
                total = xp.zeros(value.shape, dtype=value.dtype)
            grads[name] = xp.reshape(total, value.shape)
        return grads

    def _outer_sum(
        self, pairs: list[tuple[list[Any], list[Any]]], stacked: dict[tuple[int, ...], Any]
    ) -> Any:
        r""":math:`\sum_t \ell_t r_t^\top = L^\top R` with the factors stacked over time and batch: one product.

        ``stacked`` caches stacks by the identity of their pieces: the gates' shared factors
        (:math:`h^{(t-1)}` for every :math:`W_g`) are stacked once.
        """
        xp = self.xp
        lefts = [left for ls, _ in pairs for left in ls]
        rights = [right for _, rs in pairs for right in rs]
        factors = []
        for pieces in (lefts, rights):
            key = tuple(id(p) for p in pieces)
            if key not in stacked:
                stacked[key] = xp.concat(pieces, axis=0)
            factors.append(stacked[key])
        return xp.matmul(factors[0].T, factors[1])


def bptt(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    upstream: Mapping[str, Any],
    truncation: Any = None,
    initial: Mapping[str, Any] | None = None,
    *,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    backend: Any = None,
    dtype: Any = None,
) -> Gradients:
    r"""Gradients of a loss through time, from its direct gradients :math:`\partial^{+} L/\partial s^{(t)}`.

    Parameters
    ----------
    cell : Cell
    params : dict of str to array
    inputs : array (T, B, m) or dict
    upstream : dict of str to array (T, B, size)
        :math:`\partial^{+} L/\partial s^{(t)}`, :math:`t = 1..T`, for states
        (or intermediates and outputs) by name; a missing name means zero.
    truncation : None, Full(), Truncated(tau), Randomized(pi, seed) or int
        The same strategy objects as the symbolic layer (an int is ``Truncated``).
    initial : dict, optional
        Initial states, as for :func:`~gradflow.numeric.simulate.simulate`.
    clip_norm : float, optional
        Rescale the parameter gradients to this global norm when they exceed it (Pascanu et al.).
    clip_value : float, optional
        Clamp each component of the parameter gradients to ``[-clip_value, clip_value]``.

    Returns
    -------
    Gradients
        Parameter name -> gradient shaped like the parameter, with
        ``.inputs`` and ``.initial`` (gradients with respect to the inputs and
        initial states), ``.norm`` (before clipping) and ``.trajectory``.

    Raises
    ------
    ShapeError
        For an upstream array that is not (T, B, size), or a name the cell lacks.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> cell = gf.cells.elman()
    >>> params = {"W_h": np.eye(2) * 0.5, "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    >>> x = np.ones((3, 1, 1))
    >>> upstream = {"h": np.ones((3, 1, 2))}
    >>> full = bptt(cell, params, x, upstream)
    >>> cut = bptt(cell, params, x, upstream, truncation=gf.Truncated(3))
    >>> bool(np.allclose(full["W_h"], cut["W_h"]))
    True
    """
    strategy = as_strategy(truncation)
    problem = prepare(cell, params, inputs, initial, backend=backend, dtype=dtype)
    values = run_forward(problem, keep=True)
    reverse = _Reverse(problem, values, strategy)
    xp = problem.xp
    names = {name for _, name in problem.cell.order}
    for name, array in upstream.items():
        if name not in names:
            raise ShapeError(
                f"upstream gradient for {name!r}, which cell {cell.name!r} does not compute; "
                f"it computes {', '.join(sorted(names))}"
            )
        array = xp.asarray(array, dtype=problem.compiled.dtype)
        size = int(problem.cell.expression(*_kind(problem.cell, name)).shape[0])
        if tuple(_shape(array)) != (problem.T, problem.B, size):
            raise ShapeError(
                f"upstream gradient of {name!r} has shape {_shape(array)}; expected (T, B, size) = "
                f"({problem.T}, {problem.B}, {size})"
            )
        for time in range(1, problem.T + 1):
            reverse.seed(name, time, array[time - 1, ...])
    reverse.run()
    grads = reverse.parameter_gradients()
    trajectory = Trajectory(problem, values)
    input_grads = {}
    for name, steps in problem.inputs.items():
        zero = xp.zeros(steps[0].shape, dtype=problem.compiled.dtype)
        series = [reverse.input_grads.get((name, time), zero) for time in range(1, problem.T + 1)]
        input_grads[name] = xp.stack([xp.broadcast_to(s, zero.shape) for s in series], axis=0)
    initial_grads = {}
    for state, history in problem.initial.items():
        backward = state in problem.cell.backward
        times = [problem.T + 1 + k if backward else -k for k in range(len(history))]
        zero = xp.zeros(history[0].shape, dtype=problem.compiled.dtype)
        series = [
            xp.broadcast_to(reverse.initial_grads.get((state, time), zero), zero.shape) for time in times
        ]
        initial_grads[state] = series[0] if len(series) == 1 else xp.stack(series[::-1], axis=0)
    result = Gradients(grads, input_grads, initial_grads, trajectory)
    if clip_norm is not None:
        clipped, changed = clip_by_norm(grads, clip_norm)
        result._params, result.clipped = clipped, changed
    if clip_value is not None:
        clipped, changed = clip_by_value(result._params, clip_value)
        result._params, result.clipped = clipped, result.clipped or changed
    return result


def _kind(cell: Cell, name: str) -> tuple[str, str]:
    for kind, node in cell.order:
        if node == name:
            return kind, node
    raise GradflowError(f"{name!r} is not a node of cell {cell.name!r}")
