r"""Jacobian chains :math:`\partial s^{(a)}/\partial s^{(t)}` for every lag, in log space.

The chain is streamed backwards from the anchor :math:`a` (``T`` by
default): :math:`D_0 = I` and

.. math::
    D_k = \frac{\partial s^{(a)}}{\partial s^{(a-k)}}
        = \sum_{d} D_{k-d}\, J^{[d]}_{a-k+d},
    \qquad J^{[d]}_\tau = \frac{\partial s^{(\tau)}}{\partial s^{(\tau-d)}},

with the step Jacobians applied as operators :math:`M \mapsto M J` printed
from the structured symbolic ones (diagonal factors are broadcasts). Only
the last few :math:`D_k` are held (O(n²) memory per batch element), each as a
mantissa and a running log-scale; the mantissa is divided by its Frobenius
norm whenever that norm leaves :math:`[2^{-32}, 2^{32}]` (not at every step:
the division is a pass over :math:`n^2` numbers, the norm a dot product), so
a chain of :math:`10^4` exploding steps has finite logs. The spectral norm of every
:math:`D_k` comes from Rayleigh--Ritz steps of subspace iteration on
:math:`D_k D_k^\top` against a block :math:`U` whose :math:`U^\top D_k` the
chain carries as a few extra rows, so one step costs one pass over
:math:`D_k`; a lag stops at a rigorous error bound (the residual of the top
Ritz vector against what the trace :math:`\lVert D_k\rVert_F^2` leaves for the
other eigenvalues, or bounds from the entries of a nearly diagonal :math:`D_k`:
:mod:`gradflow.numeric._spectral`), with Gram eigenvalues as the fallback, or the
norm comes exactly from singular values on request.
Lyapunov spectra are in :mod:`gradflow.numeric.lyapunov`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gradflow._checks import is_int
from gradflow.cells.cell import Cell
from gradflow.errors import ChainError
from gradflow.numeric._logscale import combine, log_norm, normalise
from gradflow.numeric._spectral import WINDOW, SpectralNorms
from gradflow.numeric.simulate import Problem, Trajectory, Values, prepare, run_forward

__all__ = ["ChainError", "ChainResult", "chain_of", "jacobian_chain"]


@dataclass
class ChainResult:
    r"""Norms of :math:`D_k = \partial s^{(a)}/\partial s^{(t)}` for :math:`k = |a - t| = 0, 1, \ldots`.

    Attributes
    ----------
    states : tuple of str
        The states stacked into :math:`s` (in this order).
    anchor : int
        :math:`a`.
    times : array (K,)
        :math:`t` for each lag (``a - k``, or ``a + k`` for states running backwards).
    lags : array (K,)
        :math:`k`.
    log_frobenius : array (K, B)
        :math:`\log \lVert D_k \rVert_F` (natural log).
    log_spectral : array (K, B) or None
        :math:`\log \lVert D_k \rVert_2`.
    log_singular_values : array (K, B, N) or None
        Every :math:`\log \sigma_i(D_k)`, descending (on request).
    mantissas, log_scales : arrays (K, B, N, N) and (K, B), or None
        :math:`D_k = e^{\text{scale}} \cdot \text{mantissa}` (on request: ``full=True``).
    power_iterations : list of int
        Products with :math:`D_k D_k^\top` (of an 8-column block) each lag took: 1 when the block the
        chain carries passed the test, more when block Krylov steps followed (0 where it fell back
        to Gram eigenvalues, and for :math:`D_0 = I`, whose norm is 1). The lags are tested in windows (1, 2, 4, then 8 lags); those of a
        window that need more than one step are iterated together and share a count.
    trajectory : Trajectory
    """

    states: tuple[str, ...]
    anchor: int
    times: Any
    lags: Any
    log_frobenius: Any
    log_spectral: Any | None
    log_singular_values: Any | None = None
    mantissas: Any | None = None
    log_scales: Any | None = None
    power_iterations: list[int] = field(default_factory=list)
    trajectory: Trajectory | None = None

    def matrix(self, k: int) -> Any:
        """:math:`D_k` itself (may overflow for long exploding chains; needs ``full=True``)."""
        if self.mantissas is None or self.log_scales is None:
            raise ChainError("jacobian_chain(..., full=True) keeps the matrices; this result did not")
        count = int(self.mantissas.shape[0])
        if not is_int(k):
            raise ChainError(f"matrix(k) takes a lag k, an int in 0..{count - 1}; got {k!r}")
        if not 0 <= k < count:
            raise ChainError(f"lag k={k} is outside this chain's lags 0..{count - 1}")
        xp = _xp(self.mantissas)
        return self.mantissas[k, ...] * xp.exp(self.log_scales[k, ...])[:, None, None]


def _xp(array: Any) -> Any:
    import array_api_compat

    return array_api_compat.array_namespace(array)


class _Stepper:
    r"""Applies :math:`M \mapsto \sum_d M_{(k-d)} J^{[d]}` over the selected states."""

    def __init__(self, problem: Problem, values: Values, states: Sequence[str]) -> None:
        cell = problem.cell
        self.problem, self.values, self.states = problem, values, tuple(states)
        self.sizes = [int(cell.states[s]) for s in self.states]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.N = sum(self.sizes)
        self.lags = sorted({d for s in self.states for d in (cell.delays(s) or (1,))})
        self.sign = -1 if self.states[0] in cell.backward else 1
        program = problem.compiled.program
        self.ops = {
            (a, b, d): program.jacobian(a, b, d) for a in self.states for b in self.states for d in self.lags
        }

    def block(self, M: Any, index: int) -> Any:
        start = self.offsets[index]
        return M[..., start : start + self.sizes[index]]

    def apply(self, M: Any, lag: int, step: int) -> Any | None:
        r""":math:`M J^{[\text{lag}]}_{\text{step}}` for M (B, R, N); None when that Jacobian is zero."""
        xp, P, dtype = self.problem.xp, self.problem.params, self.problem.compiled.dtype
        if len(self.states) == 1:  # one block: the kernel's product is the result (the common case)
            op = self.ops[(self.states[0], self.states[0], lag)]
            if op is None:
                return None
            function, _, reads = op
            result = function(xp, P, self.values.reads(reads, step), M, dtype)
            if result is None or tuple(result.shape) == tuple(M.shape):
                return result
            return xp.broadcast_to(result, tuple(M.shape))
        columns, any_term = [], False
        for j, b in enumerate(self.states):
            terms = []
            for i, a in enumerate(self.states):
                op = self.ops[(a, b, lag)]
                if op is None:
                    continue
                function, _, reads = op
                result = function(xp, P, self.values.reads(reads, step), self.block(M, i), dtype)
                if result is not None:
                    terms.append(xp.broadcast_to(result, (*M.shape[:-1], self.sizes[j])))
            if terms:
                any_term = True
                total = terms[0]
                for term in terms[1:]:
                    total = total + term
                columns.append(total)
            else:
                columns.append(xp.zeros((*M.shape[:-1], self.sizes[j]), dtype=M.dtype))
        if not any_term:
            return None
        return columns[0] if len(columns) == 1 else xp.concat(columns, axis=-1)


def _select(cell: Cell, states: Sequence[str] | None) -> tuple[str, ...]:
    if isinstance(states, str):
        states = [states]
    if states is not None and not isinstance(states, Sequence | set | frozenset):
        raise ChainError(f"states must be a list of state names, got {type(states).__name__} {states!r}")
    chosen = tuple(cell.states) if states is None else tuple(states)
    repeated = sorted({s for s in chosen if chosen.count(s) > 1}, key=str)
    if repeated:
        raise ChainError(f"states lists {', '.join(map(repr, repeated))} more than once: {list(chosen)!r}")
    unknown = [repr(s) if not isinstance(s, str) else s for s in chosen if s not in cell.states]
    if unknown or not chosen:
        raise ChainError(
            f"cell {cell.name!r} has states {', '.join(cell.states)}; got {', '.join(unknown) or 'none'}"
        )
    directions = {s: ("backward" if s in cell.backward else "forward") for s in chosen}
    if len(set(directions.values())) > 1:
        forward = [s for s, d in directions.items() if d == "forward"]
        backward = [s for s, d in directions.items() if d == "backward"]
        raise ChainError(
            f"cell {cell.name!r} has states running forwards ({', '.join(forward)}) and backwards "
            f"({', '.join(backward)}) in time; a chain follows one direction: pass states={forward!r} "
            f"or states={backward!r}"
        )
    return chosen


def _check_options(anchor: Any, tol: Any, max_iter: Any) -> None:
    """``anchor`` an int, ``tol`` in (0, 1), ``max_iter`` a positive int (NumPy integers count as ints)."""
    if anchor is not None and not is_int(anchor):
        raise ChainError(f"anchor must be an int (a time step), got {type(anchor).__name__} {anchor!r}")
    if not (isinstance(tol, numbers.Real) and not isinstance(tol, bool) and 0 < float(tol) < 1):
        raise ChainError(
            f"tol must be a number in (0, 1), the relative accuracy of the spectral norms (default 1e-8); "
            f"got {tol!r}"
        )
    if not is_int(max_iter) or max_iter < 1:
        raise ChainError(f"max_iter must be a positive int (default 100), got {max_iter!r}")


def jacobian_chain(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    initial: Mapping[str, Any] | None = None,
    *,
    anchor: int | None = None,
    states: Sequence[str] | None = None,
    spectral: str | None = "power",
    singular_values: bool = False,
    full: bool = False,
    tol: float = 1e-8,
    max_iter: int = 100,
    backend: Any = None,
    dtype: Any = None,
) -> ChainResult:
    r"""All-lag Jacobians :math:`\partial s^{(a)}/\partial s^{(t)}` of a simulated cell, as log norms.

    Parameters
    ----------
    cell, params, inputs, initial
        As for :func:`~gradflow.numeric.simulate.simulate`.
    anchor : int, optional
        :math:`a`: ``T`` by default (1 for states running backwards in time).
    states : sequence of str, optional
        The states stacked into :math:`s` (default: all). They must run in one
        direction; the others are held as inputs (exact when no path leaves
        the selection and comes back, as in a stack or a bidirectional layer).
    spectral : {"power", "gram", "svd", None}
        How to compute :math:`\lVert D_k \rVert_2`: warm-started block
        iteration (a carried block, then block Krylov steps where it does not
        pass) with a residual test (Gram fallback), Gram eigenvalues,
        singular values, or not at all.
    singular_values : bool
        Also return every log singular value of every :math:`D_k`.
    full : bool
        Keep every :math:`D_k` (mantissa and log-scale): :math:`O(T n^2)` memory.
    tol, max_iter
        Power iteration: a lag is done when a rigorous bound puts the top eigenvalue :math:`\lambda`
        of :math:`D_k D_k^\top` within ``tol`` :math:`\theta` of its Rayleigh--Ritz value
        :math:`\theta \le \lambda`: :math:`\lambda - \theta \le (\sqrt{g^2 + 4 r^2} - g)/2`, the
        larger eigenvalue of :math:`\begin{pmatrix} \theta & r \\ r & \alpha \end{pmatrix}` less
        :math:`\theta`, where :math:`r` is the residual norm of the top Ritz vector, :math:`g = \theta -
        \alpha`, and :math:`\alpha = \lVert D_k\rVert_F^2 - \theta - \sum_{i \ge 3} \theta_i` bounds
        every eigenvalue the top Ritz vector leaves out, by the trace and Cauchy interlacing (Parlett,
        *The Symmetric Eigenvalue Problem*); for :math:`g > 0` this is below both the Kato--Temple
        bound :math:`r^2/g` and the Krylov--Weinstein bound :math:`r` (alone, the latter bounds *an*
        eigenvalue, not the top one). For a nearly diagonal :math:`D_k`,
        :math:`\lVert D_k\rVert_1 \lVert D_k\rVert_\infty` and the largest squared norm of a row or a
        column bound :math:`\lambda` too. So the computed :math:`\lVert D_k\rVert_2` is never above
        the true one (up to rounding) and at most ``tol``/2 below it (relative): :math:`5 \cdot
        10^{-9}` by default (``tol`` is held at 16 ulp of the dtype or above, :math:`2 \cdot 10^{-6}`
        in float32). After ``max_iter`` block products without that, or where no Krylov basis of the
        iteration's size can separate :math:`\lambda` from the rest (a flat spectrum: the first lags),
        Gram eigenvalues (exact, :math:`O(n^3)`) are used instead. Most lags of a long chain need a
        single product.

    Returns
    -------
    ChainResult

    Raises
    ------
    ChainError
        For states the cell lacks, or states running in both directions.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> cell = gf.cells.elman()
    >>> params = {"W_h": 0.5 * np.eye(2), "W_x": np.zeros((2, 1)), "b": np.zeros(2)}
    >>> chain = jacobian_chain(cell, params, np.zeros((3, 1, 1)))
    >>> [round(float(v), 6) + 0.0 for v in chain.log_spectral[:, 0] / np.log(0.5)]
    [0.0, 1.0, 2.0, 3.0]
    """
    problem = prepare(cell, params, inputs, initial, backend=backend, dtype=dtype)
    return chain_of(
        problem,
        run_forward(problem),
        anchor=anchor,
        states=states,
        spectral=spectral,
        singular_values=singular_values,
        full=full,
        tol=tol,
        max_iter=max_iter,
    )


def chain_of(
    problem: Problem,
    values: Values,
    *,
    anchor: int | None = None,
    states: Sequence[str] | None = None,
    spectral: str | None = "power",
    singular_values: bool = False,
    full: bool = False,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> ChainResult:
    """:func:`jacobian_chain` of a problem already simulated (``values``): no second forward pass."""
    chosen = _select(problem.cell, states)
    _check_options(anchor, tol, max_iter)
    stepper = _Stepper(problem, values, chosen)
    xp, T, B, N = problem.xp, problem.T, problem.B, stepper.N
    backward = stepper.sign < 0
    a = int(anchor) if anchor is not None else (1 if backward else T)
    if not 1 <= a <= T:
        raise ChainError(f"anchor must lie in 1..{T}, got {a}")
    length = (T + 1 - a) if backward else a
    if spectral not in ("power", "gram", "svd", None):
        raise ChainError(f"spectral must be 'power', 'gram', 'svd' or None, got {spectral!r}")
    dtype_ = problem.compiled.dtype
    eye = xp.broadcast_to(xp.eye(N, dtype=dtype_), (B, N, N))
    first = eye
    norms = None
    if spectral == "power":
        # the chain carries Z_k = U^T D_k as p extra rows (see gradflow.numeric._spectral)
        block = min(N, 8)
        seed = xp.asarray(
            [[math.cos(1.0 + i * (j + 1)) for j in range(block)] for i in range(N)], dtype=dtype_
        )
        U = xp.broadcast_to(xp.linalg.qr(seed)[0], (B, N, block))
        norms = SpectralNorms(xp, U, tol, max_iter)
        first = xp.concat([eye, xp.matrix_transpose(U)], axis=1)
    history: list[tuple[Any, Any, Any]] = [normalise(xp, first, xp.zeros((B,), dtype=dtype_), N)]
    window = max(stepper.lags)
    fro_squares: list[Any] = []  # the squared Frobenius norm of each lag's mantissa, and its log-scale
    fro_scales: list[Any] = []
    log_spec: list[Any] = []  # one (B,) array a lag ("gram", "svd")
    spec_blocks: list[Any] = []  # one (lags, B) array a window ("power")
    log_sv: list[Any] = []
    mantissas: list[Any] = []
    scales: list[Any] = []
    iterations: list[int] = []
    waiting: list[Any] = []  # the log-scales of the lags held by ``norms``
    for k in range(length + 1):
        if k > 0:
            parts = []
            for d in stepper.lags:
                if k - d < 0:
                    continue
                M, scale, _ = history[-d]  # D_{k-d}: history holds D_{k-window} .. D_{k-1}
                step = a + k - d if backward else a - k + d
                applied = stepper.apply(M, d, step)
                if applied is not None:
                    parts.append((applied, scale))
            if parts:
                history.append(combine(xp, parts, N))
            else:
                zero = xp.zeros((B, first.shape[1], N), dtype=dtype_)
                nothing = xp.full((B,), -math.inf, dtype=dtype_)
                history.append((zero, nothing, xp.zeros((B,), dtype=dtype_)))
            if len(history) > window:
                history = history[-window:]
        stacked, scale, squares = history[-1]
        mantissa = stacked[:, :N, :]
        fro_squares.append(squares)
        fro_scales.append(scale)
        if full:
            mantissas.append(mantissa)
            scales.append(scale)
        if norms is not None and k == 0:
            # D_0 = I: its norm is 1. No test: a block of p < N columns cannot tell it from a matrix
            # with a larger eigenvalue outside the block (see gradflow.numeric._spectral)
            spec_blocks.append(xp.zeros((1, B), dtype=dtype_))
            iterations.append(0)
        elif norms is not None:
            norms.add(mantissa, stacked[:, N:, :], squares)
            waiting.append(scale)
            if len(norms) == min(WINDOW, 2 ** len(iterations).bit_length()) or k == length:
                sigma, used = norms.flush()
                spec_blocks.append(log_norm(xp, sigma, xp.stack(waiting)))  # one call a window
                iterations.extend(used)
                waiting = []
                if norms.restarted:  # the block changed: retake Z = U^T D of the lags the chain reads
                    history = [(norms.retake(M, N), s, f) for M, s, f in history]
        elif spectral == "gram":
            gram = xp.matmul(mantissa, xp.matrix_transpose(mantissa))
            sigma = xp.sqrt(xp.clip(xp.max(xp.linalg.eigvalsh(gram), axis=-1), 0.0, None))
            log_spec.append(log_norm(xp, sigma, scale))
        elif spectral == "svd":
            log_spec.append(log_norm(xp, xp.linalg.svdvals(mantissa)[..., 0], scale))
        if singular_values:
            log_sv.append(log_norm(xp, xp.linalg.svdvals(mantissa), scale[:, None]))
    lags = xp.asarray(list(range(length + 1)))
    times = a + lags if backward else a - lags
    return ChainResult(
        states=chosen,
        anchor=a,
        times=times,
        lags=lags,
        log_frobenius=log_norm(xp, xp.sqrt(xp.stack(fro_squares, axis=0)), xp.stack(fro_scales, axis=0)),
        log_spectral=(
            xp.concat(spec_blocks, axis=0)
            if spec_blocks
            else xp.stack(log_spec, axis=0)
            if log_spec
            else None
        ),
        log_singular_values=xp.stack(log_sv, axis=0) if log_sv else None,
        mantissas=xp.stack(mantissas, axis=0) if full else None,
        log_scales=xp.stack(scales, axis=0) if full else None,
        power_iterations=iterations,
        trajectory=Trajectory(problem, values),
    )
