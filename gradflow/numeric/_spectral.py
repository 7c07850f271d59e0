r"""Spectral norms of many matrices at once: warm-started subspace iteration, for :mod:`gradflow.numeric.chain`.

The chain's :math:`D_k` change little from one lag to the next, so the top left
singular block of one lag is a good start for the next ones; a few lags are
iterated together in one batched call per step of the iteration.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["WINDOW", "log_norm", "spectral_window", "subspace_iteration"]


#: Lags whose spectral norms one subspace iteration computes together (batched: one call per step of
#: the iteration for all of them, so the per-call cost of the small products is shared). The first
#: batches hold 1, 2, 4 lags: the first lags need the most iterations, and warm starts from the
#: lags just before help them most.
WINDOW = 8


def log_norm(xp: Any, sigma: Any, scale: Any) -> Any:
    """``scale + log(sigma)``, and -inf for a zero norm (or singular value)."""
    positive = sigma > 0
    safe = xp.where(positive, sigma, xp.ones_like(sigma))
    return xp.where(positive, scale + xp.log(safe), xp.full_like(sigma, -math.inf))


def spectral_window(
    xp: Any, waiting: list[tuple[Any, Any]], start: Any, tol: float, max_iter: int
) -> tuple[list[Any], Any, int]:
    """:func:`subspace_iteration` of several lags' mantissas at once, all warm-started from ``start`` (B, R, p)."""
    B = start.shape[0]
    A = xp.concat([mantissa for mantissa, _ in waiting], axis=0)
    sigma, U, used = subspace_iteration(xp, A, xp.concat([start] * len(waiting), axis=0), tol, max_iter)
    count = len(waiting)
    return [sigma[i * B : (i + 1) * B] for i in range(count)], U[(count - 1) * B :, ...], used


def subspace_iteration(xp: Any, A: Any, start: Any, tol: float, max_iter: int) -> tuple[Any, Any, int]:
    r"""Largest singular value of each A (B, R, N): subspace iteration on :math:`A A^\top`.

    ``start`` (B, R, p) is an orthonormal block, warm-started from the lags
    before (:func:`spectral_window`). Each iteration applies :math:`A A^\top`, takes the Rayleigh--Ritz
    value :math:`\theta` of the block, and stops when the residual
    :math:`\lVert A A^\top u - \theta u\rVert \le` ``tol`` :math:`\theta`; a
    block (not one vector) converges quickly even when the top singular
    values are clustered. Gram eigenvalues are the fallback.
    """
    U = start
    for iteration in range(1, max_iter + 1):
        V = xp.matmul(A, xp.matmul(xp.matrix_transpose(A), U))  # A A^T U
        H = xp.matmul(xp.matrix_transpose(U), V)
        H = (H + xp.matrix_transpose(H)) / 2
        theta, Y = xp.linalg.eigh(H)
        top, y = theta[..., -1], Y[..., -1:]
        u = xp.matmul(U, y)[..., 0]
        residual = xp.matmul(V, y)[..., 0] - top[:, None] * u
        size = xp.sqrt(xp.sum(residual * residual, axis=-1))
        done = xp.logical_or(size <= tol * xp.abs(top), top <= 0)
        U, _ = xp.linalg.qr(V)
        if bool(xp.all(done)):
            return xp.sqrt(xp.clip(top, 0.0, None)), U, iteration
    gram = xp.matmul(A, xp.matrix_transpose(A))
    largest = xp.max(xp.linalg.eigvalsh(gram), axis=-1)
    return xp.sqrt(xp.clip(largest, 0.0, None)), U, 0
