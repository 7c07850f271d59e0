r"""Check a cell against independent referees: what gradflow derives and computes for it.

:func:`check_cell` runs, at small integer sizes and on random numbers,

* **step Jacobians** -- every structured :math:`\partial s^{(t)}/\partial s'^{(t-k)}` of the
  symbolic layer against sympy's componentwise differentiation of the expanded step (30 digits);
* **forward** -- the compiled kernels' first step against the expanded step evaluated by sympy;
* **gradients** -- :func:`~gradflow.numeric.bptt` against central finite differences of
  :math:`L = \sum_t \langle u_t, s^{(t)}\rangle`, for every parameter, input and initial state;
* **chain** -- :func:`~gradflow.numeric.jacobian_chain`'s :math:`\partial s^{(T)}/\partial s^{(0)}`
  against central finite differences of the unrolled map;
* **truncation** -- ``Truncated(T + d - 1)`` against ``Full()`` (they must agree);
* **bound** -- the actual norms never above the chain bound (where the cell has one).

A researcher's new cell is checked in one call, or with ``gradflow check file.py:cell``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from gradflow._checks import is_int
from gradflow.cells.cell import Cell
from gradflow.cells.expr import t
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.jacobian import step_jacobian
from gradflow.symbolic.strategies import Truncated

__all__ = ["Check", "check_cell"]

#: Central-difference step: truncation error ~ STEP^2, rounding ~ 1e-16 |L| / STEP.
STEP = 1e-6
#: Entries of each parameter, input and initial state compared with central differences.
SAMPLES = 8
#: Central differences resolve a derivative to about 1e-10 absolute (rounding / STEP): errors are
#: relative to the largest entry, or to this floor when every entry is smaller (a vanishing chain).
FLOOR = 1e-3
#: Above this size the componentwise sympy check is skipped (it expands every component).
LARGEST_EXPLICIT = 8


@dataclass(frozen=True)
class Check:
    """One referee comparison.

    Attributes
    ----------
    name : str
        What was compared, e.g. ``"gradients vs central differences"``.
    error : float or None
        The worst relative error found (``None`` when skipped).
    tolerance : float
        The largest error that passes.
    passed : bool or None
        ``None`` when the check does not apply to the cell (see ``note``).
    note : str
        Where the worst error is, or why the check was skipped.
    """

    name: str
    error: float | None
    tolerance: float
    passed: bool | None
    note: str = ""


def check_cell(
    cell: Cell,
    sizes: Mapping[str, int] | None = None,
    *,
    T: int = 4,
    B: int = 2,
    seed: int = 0,
) -> list[Check]:
    r"""Check ``cell``'s derivation and kernels against independent referees (see the module docstring).

    Parameters
    ----------
    cell : Cell
    sizes : dict of str to int, optional
        Integer sizes for the symbolic ones (default 2 each; explicit mode expands every component).
    T, B : int
        Steps and batch of the numeric checks.
    seed : int
        Seed of the random parameters, inputs, initial states and upstream gradients.

    Returns
    -------
    list of Check

    Raises
    ------
    GradflowError
        For a cell that cannot be computed numerically (a generic activation), a size the cell
        does not have, or a bad ``T`` or ``B``.

    Examples
    --------
    >>> import gradflow as gf
    >>> checks = check_cell(gf.cells.gru())
    >>> [(c.name, c.passed) for c in checks][:3]
    [('step Jacobians vs sympy componentwise', True), ('forward step vs sympy', True), ('gradients vs central differences', True)]
    """
    import numpy as np

    from gradflow.numeric.compiled import compile
    from gradflow.numeric.init import init_params

    if not isinstance(cell, Cell):
        raise GradflowError(f"check_cell needs a gradflow Cell, got {type(cell).__name__} {cell!r:.60}")
    if sizes is not None and not isinstance(sizes, Mapping):
        raise GradflowError(f"sizes must be a dict {{name: int}}, e.g. {{'n': 3}}; got {sizes!r}")
    if not is_int(seed) or seed < 0:
        raise GradflowError(f"seed must be a non-negative int, got {seed!r}")
    if not is_int(T) or T < 1:
        raise GradflowError(f"T must be a positive int, got {T!r}")
    if not is_int(B) or B < 1:
        raise GradflowError(f"B must be a positive int, got {B!r}")
    seed, T, B = int(seed), int(T), int(B)
    fixed = {s.name: 2 for s in cell.size_symbols}
    unknown = sorted(set(sizes or {}) - set(fixed))
    if unknown:
        raise GradflowError(
            f"cell {cell.name!r} has no symbolic size {', '.join(unknown)} "
            f"(its sizes: {', '.join(sorted(fixed)) or 'none'})"
        )
    fixed.update(sizes or {})
    small = cell.with_sizes(**fixed) if fixed else cell
    compile(small)  # a generic activation has no numbers: NotDifferentiableError, before any check
    rng = np.random.default_rng(seed)
    params = init_params(small, seed=seed, gain=1.2)
    params = {k: v + 0.1 * rng.standard_normal(np.shape(v)) for k, v in params.items()}
    depths = {s: max(small.delays(s), default=1) for s in small.states}
    inputs = {name: rng.standard_normal((T, B, int(size))) for name, size in small.inputs.items()}
    initial = {s: rng.standard_normal((depths[s], B, int(n))) for s, n in small.states.items()}
    # dL/d(every state and output): output equations are checked too
    upstream = {s: rng.standard_normal((T, B, int(n))) for s, n in small.states.items()}
    for output in small.outputs:
        size = int(small.expression("output", output).shape[0])
        upstream[output] = rng.standard_normal((T, B, size))
    problem = _Problem(small, params, inputs, initial, upstream, B)
    expanded = _expanded(small)  # the one componentwise expansion both sympy checks read
    return [
        _step_jacobians(small, expanded, seed),
        _forward(problem, expanded),
        _gradients(problem, rng),
        _chain(problem),
        _truncation(problem, max(depths.values())),
        _bound(problem),
    ]


@dataclass
class _Problem:
    cell: Cell
    params: dict[str, Any]
    inputs: dict[str, Any]
    initial: dict[str, Any]
    upstream: dict[str, Any]
    B: int

    def loss(self, **changed: Any) -> float:
        r""":math:`\sum_t \langle u_t, s^{(t)}\rangle` with some arguments replaced."""
        import numpy as np

        from gradflow.numeric.simulate import simulate

        arguments = {"params": self.params, "inputs": self.inputs, "initial": self.initial, **changed}
        trajectory = simulate(self.cell, arguments["params"], arguments["inputs"], arguments["initial"])
        total = 0.0
        for node, u in self.upstream.items():
            values = np.asarray(trajectory[node])
            if node in self.cell.states:  # (T + 1, B, n) with the initial value: drop it
                values = values[:-1] if node in self.cell.backward else values[1:]
            total += float(np.sum(values * u))
        return total


def _relative(ours: Any, theirs: Any) -> float:
    import numpy as np

    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-300)
    return float(np.max(np.abs(ours - theirs), initial=0.0)) / scale


def _point(rng: random.Random, atoms: list[sp.Basic]) -> dict[sp.Basic, sp.Float]:
    """Random values away from 0 and +-1 (the kinks of piecewise activations)."""
    point = {}
    for atom in atoms:
        value = rng.randint(-150, 150) / 97
        while abs(value) < 0.05 or abs(abs(value) - 1) < 0.05:
            value = rng.randint(-150, 150) / 97
        point[atom] = sp.Float(value, 30)
    return point


def _largest_size(cell: Cell) -> int:
    return max([int(n) for n in cell.states.values()] + [int(m) for m in cell.inputs.values()])


def _expanded(cell: Cell) -> dict[tuple[str, str], sp.ImmutableMatrix] | str:
    """The step expanded into components (:func:`explicit_step`), or why it is not."""
    if _largest_size(cell) > LARGEST_EXPLICIT:
        return f"sizes above {LARGEST_EXPLICIT}: expanding every component is slow"
    try:
        return explicit_step(cell)
    except GradflowError as err:
        return f"not expandable: {err}"


def _step_jacobians(cell: Cell, step: dict[tuple[str, str], sp.ImmutableMatrix] | str, seed: int) -> Check:
    name, tolerance = "step Jacobians vs sympy componentwise", 1e-15
    if isinstance(step, str):
        return Check(name, None, tolerance, None, step)
    rng = random.Random(seed)
    worst, where = 0.0, ""
    atoms: set[sp.Basic] = set()
    scalars: set[sp.Basic] = set()
    for matrix in step.values():
        atoms |= matrix.atoms(MatrixElement)
        scalars |= {s for s in matrix.free_symbols if not isinstance(s, MatrixElement) and s != t}
    point = _point(rng, [*sorted(atoms, key=str), *sorted(scalars, key=str)])
    numeric_step = {node: m.xreplace(point).evalf(30) for node, m in step.items()}
    real = {atom: sp.Symbol(str(atom), real=True) for atom in atoms}  # so that Abs and sign differentiate
    for state in cell.states:
        for wrt in cell.states:
            for lag in cell.delays(wrt) or (1,):
                structured = step_jacobian(cell, state, wrt, lag)
                offset = lag if wrt in cell.backward else -lag
                signal = cell.signal(wrt, t + offset)
                variables = [MatrixElement(signal, i, 0) for i in range(int(cell.states[wrt]))]
                real.update({v: sp.Symbol(str(v), real=True) for v in variables if v not in real})
                reference = step[("state", state)].xreplace(real).jacobian([real[v] for v in variables])
                theirs = reference.xreplace({real.get(k, k): v for k, v in point.items()}).evalf(30)
                ours = explicit(structured, cell, numeric_step).xreplace(point).evalf(30)
                scale = max([abs(v) for v in theirs] + [sp.Float(1e-300)])
                error = float(max([abs(v) for v in ours - theirs] + [0]) / scale)
                if error >= worst:
                    worst, where = error, f"d{state}(t)/d{wrt}(t-{lag})"
    return Check(name, worst, tolerance, worst <= tolerance, f"worst at {where}")


def _forward(problem: _Problem, step: dict[tuple[str, str], sp.ImmutableMatrix] | str) -> Check:
    """The first step of the compiled forward pass against the expanded step, evaluated by sympy."""
    import numpy as np

    from gradflow.numeric.simulate import simulate

    name, tolerance = "forward step vs sympy", 1e-12
    cell = problem.cell
    if isinstance(step, str):
        return Check(name, None, tolerance, None, step)
    trajectory = simulate(cell, problem.params, problem.inputs, problem.initial)
    values: dict[sp.Basic, Any] = {}
    for pname in cell.params:
        symbol, array = cell.parameter(pname), np.asarray(problem.params[pname], dtype=float)
        if array.ndim == 0:
            values[symbol] = sp.Float(float(array), 30)
        else:
            matrix = array.reshape(array.shape[0], -1)
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    values[MatrixElement(symbol, i, j)] = sp.Float(float(matrix[i, j]), 30)
    worst, where = 0.0, ""
    for b in range(problem.B):
        point = dict(values)
        for iname in cell.inputs:
            for i, v in enumerate(problem.inputs[iname][0, b]):
                point[MatrixElement(cell.signal(iname, t), i, 0)] = sp.Float(float(v), 30)
        for state, history in problem.initial.items():
            depth = history.shape[0]
            for lag in range(1, depth + 1):
                for i, v in enumerate(history[depth - lag, b]):
                    point[MatrixElement(cell.signal(state, t - lag), i, 0)] = sp.Float(float(v), 30)
        for state in cell.states:
            if state in cell.backward:
                continue  # the first step of a backward state is at time T; the forward ones suffice
            theirs = np.array([float(v) for v in step[("state", state)].xreplace(point).evalf(30)])
            ours = np.asarray(trajectory[state])[1, b]
            error = _relative(ours, theirs)
            if error >= worst:
                worst, where = error, f"state {state!r}, sequence {b}"
    return Check(name, worst, tolerance, worst <= tolerance, f"worst at {where}")


def _central(f: Callable[[Any], float], array: Any, index: tuple[int, ...]) -> float:
    import numpy as np

    plus, minus = np.array(array, dtype=float), np.array(array, dtype=float)
    plus[index] += STEP
    minus[index] -= STEP
    return (f(plus) - f(minus)) / (2 * STEP)


def _replaced(problem: _Problem, argument: str, arrays: dict[str, Any], key: str, value: Any) -> float:
    """The loss with ``arrays[key]`` (the ``argument`` params, inputs or initial) replaced by ``value``."""
    return problem.loss(**{argument: {**arrays, key: value}})


def _gradients(problem: _Problem, rng: Any) -> Check:
    import numpy as np

    from gradflow.numeric.bptt import bptt

    name, tolerance = "gradients vs central differences", 1e-6
    grads = bptt(problem.cell, problem.params, problem.inputs, problem.upstream, initial=problem.initial)
    pairs: list[tuple[str, float, float]] = []

    def sample(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        every = list(np.ndindex(*shape))
        chosen = rng.choice(len(every), size=min(SAMPLES, len(every)), replace=False)
        return [every[k] for k in sorted(chosen)]

    groups = (
        ("parameter", "params", problem.params, lambda k: grads[k]),
        ("input", "inputs", problem.inputs, lambda k: grads.inputs[k]),
        ("initial", "initial", problem.initial, lambda k: grads.initial[k]),
    )
    for label, argument, arrays, gradient in groups:
        for key, value in arrays.items():
            found = np.asarray(gradient(key))
            if label == "initial" and found.ndim == 2:  # a state read one step back: (B, n)
                found = found[None, ...]
            vary = functools.partial(_replaced, problem, argument, arrays, key)
            for index in sample(np.shape(value)):
                fd = _central(vary, value, index)
                pairs.append((f"{label} {key}{list(index)}", fd, float(found[index])))
    scale = max(max(abs(fd) for _, fd, _ in pairs), 1.0)
    errors = [(abs(fd - g) / max(abs(g), scale * 1e-3), what) for what, fd, g in pairs]
    worst, where = max(errors)
    return Check(name, worst, tolerance, worst <= tolerance, f"worst at {where} ({len(pairs)} entries)")


def _chain(problem: _Problem) -> Check:
    import numpy as np

    from gradflow.errors import ChainError
    from gradflow.numeric.chain import jacobian_chain
    from gradflow.numeric.simulate import simulate

    name, tolerance = "jacobian_chain vs central differences", 1e-6
    cell = problem.cell
    forward = [s for s in cell.states if s not in cell.backward]
    if any(max(cell.delays(s), default=1) > 1 for s in forward):
        return Check(name, None, tolerance, None, "a state read more than one step back: no single chain")
    try:
        chain = jacobian_chain(
            cell, problem.params, problem.inputs, problem.initial, states=forward, full=True
        )
    except ChainError as err:
        return Check(name, None, tolerance, None, str(err))
    T = int(chain.lags.shape[0]) - 1
    sizes = [int(cell.states[s]) for s in forward]
    ours = np.asarray(chain.matrix(T))[0]  # dS(T)/dS(0), sequence 0

    def final(flat: Any) -> Any:
        initial, start = dict(problem.initial), 0
        for s, size in zip(forward, sizes, strict=True):
            history = np.array(initial[s], dtype=float)
            history[-1, 0] = flat[start : start + size]
            initial[s], start = history, start + size
        trajectory = simulate(cell, problem.params, problem.inputs, initial)
        return np.concatenate([np.asarray(trajectory[s])[-1, 0] for s in forward])

    start = np.concatenate([np.asarray(problem.initial[s])[-1, 0] for s in forward])
    columns = []
    for j in range(start.shape[0]):
        step = np.zeros_like(start)
        step[j] = STEP
        columns.append((final(start + step) - final(start - step)) / (2 * STEP))
    reference = np.stack(columns, axis=1)
    error = float(np.max(np.abs(ours - reference))) / max(float(np.max(np.abs(reference))), FLOOR)
    return Check(name, error, tolerance, error <= tolerance, f"d{'+'.join(forward)}(T)/d(0), T = {T}")


def _truncation(problem: _Problem, depth: int) -> Check:
    from gradflow.numeric.bptt import bptt

    name, tolerance = "Truncated(T + d - 1) vs Full()", 1e-12
    T = next(iter(problem.upstream.values())).shape[0]
    arguments = (problem.cell, problem.params, problem.inputs, problem.upstream)
    full = bptt(*arguments, initial=problem.initial)
    cut = bptt(*arguments, initial=problem.initial, truncation=Truncated(T + depth - 1))
    errors = [(_relative(cut[k], full[k]), f"parameter {k}") for k in problem.params]
    errors += [(_relative(cut.initial[k], full.initial[k]), f"initial {k}") for k in problem.initial]
    worst, where = max(errors)
    return Check(name, worst, tolerance, worst <= tolerance, f"tau = {T + depth - 1}; worst at {where}")


def _bound(problem: _Problem) -> Check:
    import numpy as np

    from gradflow.numeric.analysis import bound_vs_measured

    name = "actual norms never above the bound"
    try:
        comparison = bound_vs_measured(problem.cell, problem.params, problem.inputs, problem.initial)
    except (UnsupportedCellError, GradflowError) as err:
        return Check(name, None, 0.0, None, f"no chain bound: {err}")
    excesses = []
    for lower, upper in (
        (comparison.log_actual, comparison.log_bound),
        (comparison.log_bound, comparison.log_bound_gamma),
    ):
        low, high = np.asarray(lower)[1:], np.asarray(upper)[1:]  # lag 0 is the identity for both
        both_zero = np.isneginf(low) & np.isneginf(high)  # a zero chain under a zero bound (dead units)
        excesses.append(float(np.max(np.where(both_zero, -np.inf, low - np.where(both_zero, 0.0, high)))))
    worst = max(excesses)
    return Check(
        name,
        max(worst, 0.0),
        1e-9,
        worst <= 1e-9,
        f"lags 1..T: largest log(actual / bound) = {excesses[0]:+.3g}, log(bound / gamma bound) = "
        f"{excesses[1]:+.3g}",
    )
