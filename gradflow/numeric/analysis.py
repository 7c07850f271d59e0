r"""Theory next to measurement: the symbolic bound evaluated beside the actual chain norms, and regimes.

The bound of one step Jacobian, :math:`B_t` (e.g. Pascanu's
:math:`\lVert\operatorname{diag}\sigma'(\cdot)\rVert_2 \lVert W_h\rVert_2`), and its
:math:`\gamma` form :math:`B_\gamma` come from
:func:`gradflow.symbolic.bounds.chain_bound`; here they are lowered to arrays
(norms of parameters and of the simulated gates) and multiplied along the
chain, in log space: :math:`\log\lVert\partial s^{(a)}/\partial s^{(a-k)}\rVert_2
\le \sum_{a-k<t\le a}\log B_t \le k \log B_\gamma`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp

from gradflow._checks import is_int
from gradflow.cells.cell import Cell
from gradflow.errors import GradflowError
from gradflow.numeric._bound_kernels import lower_bound
from gradflow.numeric.chain import ChainResult, _select, chain_of
from gradflow.numeric.simulate import Problem, Trajectory, Values, prepare, run_forward
from gradflow.symbolic.bounds import ChainBound, chain_bound

__all__ = ["BoundComparison", "Regime", "bound_vs_measured", "regime"]

#: A bound's kernel ``f(xp, P, R, dtype)`` and the signals it reads.
BoundKernel = tuple[Any, frozenset[tuple[str, int]]]


@functools.lru_cache(maxsize=64)
def _bound_kernels(cell: Cell) -> tuple[ChainBound, BoundKernel, BoundKernel]:
    r"""The chain bound of a concrete cell and the kernels of its :math:`B_t` and :math:`B_\gamma`.

    Remembered per cell, like the cell's own kernels (:func:`gradflow.numeric.compile`): a
    sweep calls :func:`regime` at many points of one cell, and deriving the bound (sympy) and
    compiling its two kernels cost more than the measurement of a small cell.
    """
    bound = chain_bound(cell, gamma_mode="value")
    return bound, lower_bound(cell, bound.step), lower_bound(cell, bound.step_gamma)


@dataclass
class BoundComparison:
    r"""The bound beside the actual norms of :math:`D_k = \partial s^{(a)}/\partial s^{(a-k)}`.

    Attributes
    ----------
    lags : array (K,)
    log_actual : array (K, B)
        :math:`\log\lVert D_k\rVert_2`.
    log_bound : array (K, B)
        :math:`\sum \log B_t`: the bound with the actual :math:`\lVert\operatorname{diag}\sigma'\rVert`.
    log_bound_gamma : array (K, B)
        :math:`\sum \log B_\gamma` (:math:`k\log\gamma\lVert W_h\rVert` for Elman).
    step, step_gamma : sympy expressions
        The symbolic :math:`B_t` and :math:`B_\gamma` that were evaluated.
    """

    lags: Any
    log_actual: Any
    log_bound: Any
    log_bound_gamma: Any
    step: sp.Expr
    step_gamma: sp.Expr

    @property
    def slack(self) -> Any:
        """``log_bound - log_actual`` (natural log): how loose the bound is, per lag."""
        return self.log_bound - self.log_actual

    @property
    def holds(self) -> bool:
        """Whether actual <= bound <= gamma bound at every lag (to 1e-9 relative)."""
        xp = _xp(self.log_actual)
        tight = bool(xp.all(self.log_actual <= self.log_bound + 1e-9))
        return tight and bool(xp.all(self.log_bound <= self.log_bound_gamma + 1e-9))


def _xp(array: Any) -> Any:
    import array_api_compat

    return array_api_compat.array_namespace(array)


def bound_vs_measured(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    initial: Mapping[str, Any] | None = None,
    *,
    chain: ChainResult | None = None,
    backend: Any = None,
    dtype: Any = None,
) -> BoundComparison:
    r"""Evaluate the symbolic chain bound along a simulation and put it beside the actual norms.

    Raises
    ------
    GradflowError
        For a cell without a chain bound (delays, mixed directions).

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> rng = np.random.default_rng(0)
    >>> params = {"W_h": rng.normal(size=(3, 3)), "W_x": rng.normal(size=(3, 1)), "b": np.zeros(3)}
    >>> comparison = bound_vs_measured(gf.cells.elman(), params, rng.normal(size=(20, 2, 1)))
    >>> comparison.holds
    True
    """
    if chain is not None and not isinstance(chain, ChainResult):
        raise GradflowError(f"chain must be a jacobian_chain result, got {type(chain).__name__}")
    problem = prepare(cell, params, inputs, initial, backend=backend, dtype=dtype)
    values = run_forward(problem)
    bound, (step_kernel, step_reads), (gamma_kernel, gamma_reads) = _bound_kernels(problem.cell)
    if chain is None:
        chain = chain_of(problem, values)
    else:
        _check_chain(problem, values, chain)
    xp = problem.xp
    P, dtype_ = problem.params, problem.compiled.dtype
    a = chain.anchor
    backward = chain.states[0] in problem.cell.backward
    logs_step, logs_gamma = [xp.zeros((problem.B,), dtype=dtype_)], [xp.zeros((problem.B,), dtype=dtype_)]
    for k in range(1, int(chain.lags.shape[0])):
        step = a + k - 1 if backward else a - k + 1
        b = step_kernel(xp, P, values.reads(step_reads, step), dtype_)
        g = gamma_kernel(xp, P, values.reads(gamma_reads, step), dtype_)
        logs_step.append(logs_step[-1] + _log(xp, xp.broadcast_to(xp.asarray(b, dtype=dtype_), (problem.B,))))
        logs_gamma.append(
            logs_gamma[-1] + _log(xp, xp.broadcast_to(xp.asarray(g, dtype=dtype_), (problem.B,)))
        )
    if chain.log_spectral is None:
        raise GradflowError("the chain result has no spectral norms; compute it with spectral='power'")
    return BoundComparison(
        chain.lags,
        chain.log_spectral,
        xp.stack(logs_step),
        xp.stack(logs_gamma),
        bound.step,
        bound.step_gamma,
    )


def _check_chain(problem: Problem, values: Values, chain: ChainResult) -> None:
    """A chain handed to :func:`bound_vs_measured` must be of this cell's simulation: same states, T, B."""
    expected = _select(problem.cell, None)
    if tuple(chain.states) != expected:
        raise GradflowError(
            f"the chain follows states {list(chain.states)} but the bound of cell {problem.cell.name!r} "
            f"is over {list(expected)}; compute it with jacobian_chain(cell, params, inputs) (all states)"
        )
    if chain.trajectory is None:
        raise GradflowError("the chain has no trajectory to check it against this simulation")
    xp, trajectory = problem.xp, Trajectory(problem, values)
    for state in expected:
        theirs = chain.trajectory[state]
        ours = trajectory[state]
        if tuple(theirs.shape) != tuple(ours.shape):
            raise GradflowError(
                f"the chain was computed on a simulation of shape {tuple(theirs.shape)} for state "
                f"{state!r}, but these inputs give {tuple(ours.shape)} (T + 1, B, size)"
            )
        if not bool(xp.all(xp.asarray(theirs) == ours)):
            raise GradflowError(
                f"the chain was computed on another simulation (state {state!r} differs): pass the same "
                "cell, params, inputs and initial state as to jacobian_chain, or leave chain= out"
            )


def _log(xp: Any, values: Any) -> Any:
    """Natural log with log 0 = -inf and no floating-point warning (a bound of 0: dead ReLU units)."""
    positive = values > 0
    return xp.where(positive, xp.log(xp.where(positive, values, xp.ones_like(values))), -math.inf)


@dataclass
class Regime:
    r"""The fitted exponential rate of :math:`\lVert\partial s^{(a)}/\partial s^{(a-k)}\rVert_2` against the lag.

    Attributes
    ----------
    rate : float
        Least-squares slope of :math:`\log\lVert D_k\rVert_2` in :math:`k` (per step,
        natural log), averaged over the batch.
    standard_error : float
        Its standard error from the fit's residuals.
    predicted_rate : float
        :math:`\log B_\gamma` averaged over the steps: the theory's upper bound on the rate
        (Pascanu: :math:`\log\gamma\lVert W_h\rVert_2`); negative means vanishing is guaranteed.
    label : {"vanishing", "neutral", "exploding"}
    confidence : float
        Normal-approximation probability that the label is right, given the fit.
    consistent : bool
        False when the measurement contradicts the bound (a rate above the predicted one).
    dead : int
        Sequences of the batch whose chain became exactly zero (log :math:`-\infty`: a zero
        recurrent matrix, dead ReLU units); their gradient has vanished, and the rate is fitted over
        the others. When every sequence is dead the rate is :math:`-\infty`, the label
        ``"vanishing"`` and the confidence 1.
    """

    rate: float
    standard_error: float
    predicted_rate: float
    label: str
    confidence: float
    consistent: bool
    dead: int = 0


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def regime(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    initial: Mapping[str, Any] | None = None,
    *,
    tolerance: float = 1e-3,
    skip: int = 1,
    chain: ChainResult | None = None,
    backend: Any = None,
    dtype: Any = None,
) -> Regime:
    r"""Classify a simulated cell as vanishing, neutral or exploding, and compare with the bound.

    Parameters
    ----------
    tolerance : float
        Rates within ``±tolerance`` per step count as neutral (finite, >= 0).
    skip : int
        Lags below ``skip`` are left out of the fit (the identity at lag 0); needs ``T >= skip + 2``.
    chain : ChainResult, optional
        :func:`~gradflow.numeric.chain.jacobian_chain` of the same simulation, when it is at hand:
        it is checked and used instead of computing the chain again (as for :func:`bound_vs_measured`).

    Raises
    ------
    GradflowError
        For a bad ``tolerance`` or ``skip``, too few steps, log norms that are NaN or +inf, and
        what :func:`bound_vs_measured` raises.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": 0.5 * np.eye(3), "W_x": np.ones((3, 1)), "b": np.zeros(3)}
    >>> found = regime(gf.cells.elman(), params, np.zeros((50, 1, 1)))
    >>> found.label, round(found.rate, 6) == round(float(np.log(0.5)), 6)
    ('vanishing', True)
    """
    import numbers

    import numpy as np

    from gradflow.numeric.backend import to_numpy

    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, numbers.Real)
        or not 0 <= tolerance < math.inf
    ):
        raise GradflowError(f"tolerance must be a finite number >= 0 (a rate per step), got {tolerance!r}")
    if not is_int(skip) or skip < 0:
        raise GradflowError(f"skip must be an int >= 0 (lags left out of the fit), got {skip!r}")
    comparison = bound_vs_measured(cell, params, inputs, initial, chain=chain, backend=backend, dtype=dtype)
    all_logs = to_numpy(comparison.log_actual)
    logs = all_logs[skip:]
    lags = to_numpy(comparison.lags)[skip:].astype(float)
    if logs.shape[0] < 3:
        T = all_logs.shape[0] - 1
        raise GradflowError(
            f"a regime fits a rate over the lags {skip}..T and needs 3 of them (T >= {skip + 2} steps); "
            f"got T = {T}"
        )
    if np.isnan(logs).any() or np.isposinf(logs).any():
        raise GradflowError("the chain's log norms are not finite (NaN or +inf): no rate can be fitted")
    # a chain that reaches exactly 0 (log -inf: a zero recurrent matrix, dead units) stays 0: that
    # sequence's gradient has vanished; the rate is fitted over the other sequences
    alive = ~np.isneginf(logs).any(axis=0)
    dead = int((~alive).sum())
    gamma_logs = to_numpy(comparison.log_bound_gamma)
    predicted = float((gamma_logs[-1] / max(gamma_logs.shape[0] - 1, 1)).mean())
    if not alive.any():
        return Regime(-math.inf, 0.0, predicted, "vanishing", 1.0, True, dead)
    logs = logs[:, alive]
    centered = lags - lags.mean()
    slopes = (centered @ (logs - logs.mean(axis=0))) / (centered @ centered)
    residuals = logs - logs.mean(axis=0) - np.outer(centered, slopes)
    dof = max(len(lags) - 2, 1)
    errors = np.sqrt((residuals**2).sum(axis=0) / dof / (centered @ centered))
    rate, error = float(slopes.mean()), float(np.sqrt((errors**2).mean()) / np.sqrt(len(slopes)))
    spread = max(error, 1e-300)
    if rate < -tolerance:
        label, confidence = "vanishing", _phi((-tolerance - rate) / spread)
    elif rate > tolerance:
        label, confidence = "exploding", _phi((rate - tolerance) / spread)
    else:
        label, confidence = "neutral", _phi((tolerance - abs(rate)) / spread)
    # rounding of the log norms: a few ulp of the working precision per lag (float32: ~1e-7)
    rounding = max(1e-12, 64 * float(np.finfo(all_logs.dtype).eps))
    consistent = bool(rate <= predicted + 3 * error + rounding)
    return Regime(rate, error, predicted, label, float(confidence), consistent, dead)
