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
  computes it exactly. :math:`\tau \ge T - 1` gives the full gradients of
  the parameters and inputs; the gradient of an initial state read :math:`d`
  steps back needs :math:`\tau \ge T + d - 1` (:math:`\tau \ge T` when
  :math:`d = 1`), so :math:`\tau \ge T + d - 1` is the full gradient. For a cell
  that runs both ways (a bidirectional layer, a stack over one) the count is
  per *direction group*, as in the symbolic layer: a path may take at most
  :math:`\tau` steps among the forward states and at most :math:`\tau` among
  the backward ones; what one group sends the other within a step is that
  group's truncated adjoint, and it starts the other group's count afresh
  (as when each direction runs its own truncated backpropagation).
* ``Randomized(pi, seed)`` -- each step's Jacobian is multiplied by
  :math:`\xi_t` with :math:`P(\xi_t = 1/\pi) = \pi`, else 0, drawn
  independently for every step and every sequence of the batch: one draw
  :math:`\xi_t` for the forward group's step :math:`t` and, for a cell running
  both ways, an independent :math:`\bar\xi_t` for the backward group's
  (:data:`gradflow.symbolic.bptt.xi_backward`), so that a path through both
  groups never meets the same draw twice: an unbiased estimate of the full
  gradient (Tallec & Ollivier 2017).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradflow.cells.cell import Cell
from gradflow.errors import GradflowError, ShapeError, StrategyError
from gradflow.numeric._factors import Factors
from gradflow.numeric._runtime import _concat
from gradflow.numeric.gradients import Gradients, clip_by_norm, clip_by_value, global_norm
from gradflow.numeric.simulate import Problem, Trajectory, Values, _finite, _shape, prepare, run_forward
from gradflow.symbolic.strategies import Randomized, Truncated, as_strategy

__all__ = ["Gradients", "bptt", "clip_by_norm", "clip_by_value", "global_norm"]

#: The tag of a cotangent that has not passed through a state yet (a direct gradient of the loss).
FRESH = -1


class _Reverse:
    """State of one reverse pass: pending cotangents and accumulated gradients."""

    def __init__(self, problem: Problem, values: Values, strategy: Any) -> None:
        self.problem, self.values = problem, values
        self.xp = problem.xp
        sweeps = problem.compiled.program.sweeps
        #: the direction groups (+1 forward, -1 backward; an index into this list names one)
        self.groups = sorted({sweep.direction for sweep in sweeps}, reverse=True)
        self.sweep_group = [self.groups.index(sweep.direction) for sweep in sweeps]
        self.budget = strategy.tau + 1 if isinstance(strategy, Truncated) else 0
        self.xi = self._draw(strategy) if isinstance(strategy, Randomized) else None
        #: the direction group of each state; truncation of a cell running both ways counts per group, so a
        #: cotangent is tagged with the group of the last state it came through (intermediates are crossed
        #: within a step and may hold cotangents of both groups)
        self.state_group = {
            name: self.sweep_group[k]
            for k, sweep in enumerate(sweeps)
            for kind, name in sweep.nodes
            if kind == "state"
        }
        self.tagged = bool(self.budget) and len(self.groups) > 1
        self.pending: dict[tuple[str, int], dict[int, Any]] = {}
        self.param_sums: dict[str, Any] = {}
        self.factors = Factors(problem, values)
        self.input_grads: dict[tuple[str, int], Any] = {}
        self.input_lefts: dict[tuple[str, str], dict[Any, None]] = {}  # (input, W) -> rows of L in L W
        self.stacked_weights: dict[tuple[str, ...], Any] = {}
        self.initial_grads: dict[tuple[str, int], Any] = {}
        self.batch = (problem.B,)

    def _draw(self, strategy: Randomized) -> Any:
        import numpy as np

        pi = float(strategy.pi) if strategy.pi.is_number else None
        if pi is None:
            raise StrategyError(
                f"gf.bptt computes with numbers: Randomized(pi) needs a number in (0, 1] here, got the "
                f"symbol {strategy.pi} (symbolic pi is for gf.symbolic formulas); e.g. Randomized(0.5)"
            )
        rng = np.random.default_rng(strategy.seed)
        # one draw per step and sequence for each direction group: a path that goes back through step t
        # of one group and forward through step t of the other must not meet the same xi twice
        keep = rng.random((len(self.groups), self.problem.T, self.problem.B)) < pi
        weights = np.where(keep, 1.0 / pi, 0.0)
        return self.xp.asarray(weights[..., None], dtype=self.problem.compiled.dtype)

    def add(self, key: tuple[str, int], value: Any, tag: int = FRESH) -> None:
        """Add a cotangent to ``(name, time)``; ``tag``: the group of the last state on its paths."""
        if not self.tagged:
            tag = FRESH
        elif key[0] in self.state_group:
            tag = self.state_group[key[0]]
        entries = self.pending.setdefault(key, {})
        # an untagged cotangent has its whole budget: it may join any group's (a reset would not change it)
        if tag == FRESH and entries:
            tag = next(iter(entries))
        elif tag != FRESH and FRESH in entries:
            entries[tag] = entries.pop(FRESH) + entries[tag] if tag in entries else entries.pop(FRESH)
        found = entries.get(tag)
        entries[tag] = value if found is None else found + value

    def seed(self, name: str, time: int, value: Any) -> None:
        """The direct gradient of the loss at ``(name, time)``: it may still travel ``tau`` steps."""
        self.add((name, time), self._whole(value))

    def fresh(self, value: Any) -> Any:
        """A cotangent with its budget summed and given whole again: it enters the other direction group."""
        return self._whole(self.total(value)) if self.budget else value

    def _whole(self, value: Any) -> Any:
        """A cotangent without a budget axis, given the whole budget (the last slot: ``tau`` steps left)."""
        if not self.budget:
            return value
        zeros = self.xp.zeros((self.budget - 1, *value.shape), dtype=value.dtype)
        return self.xp.concat([zeros, self.xp.expand_dims(value, axis=0)], axis=0)

    def total(self, value: Any) -> Any:
        return self.xp.sum(value, axis=0) if self.budget else value

    def travel(self, value: Any, lag: int, time: int, sweep: int = 0) -> Any | None:
        """A cotangent sent ``lag`` steps through time by the step at ``time`` of sweep ``sweep``."""
        if self.xi is not None:
            return value * self.xi[self.sweep_group[sweep], time - 1, ...]
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
        for index in reversed(range(len(program.sweeps))):
            sweep = program.sweeps[index]
            times = range(problem.T, 0, -1) if sweep.direction > 0 else range(1, problem.T + 1)
            kernels = [(name, program.vjp(name, bool(self.budget))) for _, name in reversed(sweep.nodes)]
            for time in times:
                # W^T ell terms, formed at the step's end: (source, lag, tag) -> W -> ell
                products: dict[tuple[str, int, int], dict[str, Any]] = {}
                for name, vjp in kernels:
                    for tag, G in self.pending.pop((name, time), {}).items():
                        self._pull(name, vjp, time, index, tag, G, products)
                for (source, lag, tag), lefts in products.items():
                    self._send((source, lag), self._product(lefts), time, index, tag)

    def _pull(
        self, name: str, vjp: Any, time: int, index: int, tag: int, G: Any, products: dict[Any, Any]
    ) -> None:
        """Run the VJP kernel of ``name`` at ``time`` on the cotangent ``G`` and pass the results on."""
        problem, xp = self.problem, self.xp
        tag = self.state_group.get(name, tag) if self.tagged else FRESH
        Gs = self.total(G)
        F = self.values.saved[(name, time)]
        reads, terms, lefts = vjp.function(
            xp, problem.params, self.values.reads(vjp.needs, time), F, G, Gs, problem.compiled.dtype
        )
        for key, back in zip(vjp.reads, reads, strict=True):
            if back is not None:
                self._send(key, back, time, index, tag)
        kept: dict[int, Any] = {}  # id of a factor kept this step -> its rows (each factor is kept once)
        for j, (spec, value) in enumerate(zip(vjp.terms, terms, strict=True)):
            if spec.kind == "vector" and tuple(value.shape[:-1]) == self.batch:
                # a bias: its rows are summed once at the end (often the rows of W_g's ell_g, kept already)
                key = kept.get(id(value))
                if key is None:
                    key = kept[id(value)] = ("factor", name, 2 * j)
                    self.factors.put(key, time, value)
                self.factors.vector.setdefault(spec.param, {})[key] = None
                continue
            if spec.kind != "outer":
                self._param(spec, value)
                continue
            keys = []
            for side, factor in enumerate(value):
                if factor is None:  # a signal the forward pass holds
                    keys.append(("signal", *spec.right))
                elif id(factor) in kept:  # shared: h for every W_g, ell_g for W_g and U_g
                    keys.append(kept[id(factor)])
                else:
                    keys.append(kept.setdefault(id(factor), ("factor", name, 2 * j + side)))
                    # the left factor is linear in the cotangent: what each direction group's
                    # cotangent brings adds up; the right one is a forward value, the same each time
                    self.factors.put(keys[-1], time, factor, add=side == 0)
            self.factors.outer.setdefault(spec.param, {})[(keys[0], keys[1])] = None
        for (k, param), left in zip(vjp.deferred, lefts, strict=True):
            source, lag = vjp.reads[k]
            if source not in problem.inputs:
                self._accumulate(products.setdefault((source, lag, tag), {}), param, left)
            elif 1 <= time + lag <= problem.T:
                left = self.total(left)
                key = kept.get(id(left)) if lag == 0 else None  # the rows of U_g's ell_g hold it already
                if key is None:
                    key = ("input", name, source, param, lag)
                    self.factors.put(key, time + lag, left)
                self.input_lefts.setdefault((source, param), {})[key] = None

    def _send(self, key: tuple[str, int], back: Any, time: int, index: int, tag: int = FRESH) -> None:
        """Pass the pullback ``back`` of the step at ``time`` of sweep ``index`` to the read ``key``."""
        problem = self.problem
        source, lag = key
        target = time + lag
        if source in problem.inputs:
            self._accumulate(self.input_grads, (source, target), self.total(back))
            return
        if self.tagged and tag not in (FRESH, self.state_group.get(source, tag)):
            back = self.fresh(back)  # it enters the other direction group: its count of steps starts again
        moved = back if lag == 0 else self.travel(back, lag, time, index)
        if moved is None:
            return
        if source in problem.cell.states and not 1 <= target <= problem.T:
            self._accumulate(self.initial_grads, (source, target), self.total(moved))
            return
        self.add((source, target), moved, tag)

    def _product(self, lefts: dict[str, Any]) -> Any:
        r""":math:`\sum_W W^\top \ell_W` as one product :math:`[\ell_1, \ell_2, \ldots] [W_1; W_2; \ldots]`."""
        xp, P = self.xp, self.problem.params
        if len(lefts) == 1:
            ((param, left),) = lefts.items()
            return xp.matmul(left, P[param])
        names = tuple(lefts)
        stacked = self.stacked_weights.get(names)
        if stacked is None:
            stacked = self.stacked_weights[names] = xp.concat([P[name] for name in names], axis=0)
        return xp.matmul(_concat(xp, list(lefts.values())), stacked)

    def input_gradient(self, name: str) -> Any:
        r""":math:`\partial L/\partial x^{(t)}` for every step, (T, B, m): the direct terms, then :math:`L_W W` per matrix."""
        problem, xp = self.problem, self.xp
        dtype = problem.compiled.dtype
        zero = xp.zeros(problem.inputs[name][0].shape, dtype=dtype)
        series = [self.input_grads.get((name, time), zero) for time in range(1, problem.T + 1)]
        total = xp.stack([xp.broadcast_to(s, zero.shape) for s in series], axis=0)
        for (source, param), keys in self.input_lefts.items():
            for key in keys if source == name else ():
                total = total + xp.matmul(self.factors.rows(key), problem.params[param])
        return total

    def _accumulate(self, store: dict[Any, Any], key: Any, value: Any) -> None:
        found = store.get(key)
        store[key] = value if found is None else found + value

    def _param(self, spec: Any, value: Any) -> None:
        """Add one step's vector or scalar parameter term (outer terms are kept as rows: see ``_pull``)."""
        xp = self.xp
        if spec.kind == "vector":
            value = xp.reshape(value, (-1, value.shape[-1]))
            total = xp.sum(value, axis=0)
        else:
            total = xp.sum(value)
        found = self.param_sums.get(spec.param)
        self.param_sums[spec.param] = total if found is None else found + total

    def parameter_gradients(self) -> dict[str, Any]:
        xp = self.xp
        grads: dict[str, Any] = {}
        for name, value in self.problem.params.items():
            total = self.param_sums.get(name)
            summed = self.factors.total(name)
            if summed is not None:
                total = summed if total is None else total + summed
            if total is None:
                total = xp.zeros(value.shape, dtype=value.dtype)
            grads[name] = xp.reshape(total, value.shape)
        return grads


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
    if not isinstance(upstream, Mapping):
        raise ShapeError(
            f"upstream must be a dict {{node name: (T, B, size) array of dL/ds}}, got {type(upstream).__name__}"
        )
    problem = prepare(cell, params, inputs, initial, backend=backend, dtype=dtype)
    program = problem.compiled.program
    xp = problem.xp
    names = {name for _, name in problem.cell.order}
    seeds = {}
    for name, array in upstream.items():
        if name not in names:
            raise ShapeError(
                f"upstream gradient for {name!r}, which cell {cell.name!r} does not compute; "
                f"it computes {', '.join(sorted(names))}"
            )
        array = _finite(xp, array, problem.compiled.dtype, f"upstream gradient of {name!r}")
        size = int(problem.cell.expression(*_kind(problem.cell, name)).shape[0])
        if tuple(_shape(array)) != (problem.T, problem.B, size):
            raise ShapeError(
                f"upstream gradient of {name!r} has shape {_shape(array)}; expected (T, B, size) = "
                f"({problem.T}, {problem.B}, {size})"
            )
        seeds[name] = array
    budget = isinstance(strategy, Truncated)
    values = run_forward(
        problem, keep={name: program.vjp(name, budget).uses for _, name in problem.cell.order}
    )
    reverse = _Reverse(problem, values, strategy)
    for name, array in seeds.items():
        for time in range(1, problem.T + 1):
            reverse.seed(name, time, array[time - 1, ...])
    reverse.run()
    grads = reverse.parameter_gradients()
    trajectory = Trajectory(problem, values)
    input_grads = lambda: {name: reverse.input_gradient(name) for name in problem.inputs}  # noqa: E731
    initial_grads = {}
    for state, history in problem.initial.items():
        backward = state in problem.cell.backward
        times = [problem.T + 1 + k if backward else -k for k in range(len(history))]
        zero = xp.zeros(history[0].shape, dtype=problem.compiled.dtype)
        series = [
            xp.broadcast_to(reverse.initial_grads.get((state, time), zero), zero.shape) for time in times
        ]
        initial_grads[state] = series[0] if len(series) == 1 else xp.stack(series[::-1], axis=0)
    result = Gradients(grads, input_grads, initial_grads, trajectory, strategy)
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
