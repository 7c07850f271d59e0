r"""Matrices held as a mantissa and a running log-scale, for :mod:`gradflow.numeric.chain`.

A chain of :math:`10^4` exploding (or vanishing) steps overflows (underflows) any
floating-point type; :math:`D = e^{s} M` does not. The mantissa :math:`M` is divided
by its Frobenius norm -- and :math:`s` takes the log -- only when that norm leaves
:math:`[2^{-32}, 2^{32}]`: the division is a pass over :math:`n^2` numbers, the test
a dot product.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["BAND", "combine", "frobenius_squares", "log_norm", "normalise"]


def log_norm(xp: Any, sigma: Any, scale: Any) -> Any:
    """``scale + log(sigma)``, and -inf for a zero norm (or singular value)."""
    positive = sigma > 0
    safe = xp.where(positive, sigma, xp.ones_like(sigma))
    return xp.where(positive, scale + xp.log(safe), xp.full_like(sigma, -math.inf))


#: A mantissa is divided by its Frobenius norm only when the norm leaves [1/BAND, BAND]: one step
#: then cannot overflow or underflow it unless its Jacobian's norm is beyond 2^900 or below 2^-900.
BAND = 2.0**32


def frobenius_squares(xp: Any, M: Any, rows: int | None) -> Any:
    """The squared Frobenius norm of each batch element of ``M`` (of its first ``rows`` rows), (B,)."""
    flat = xp.reshape(M if rows is None else M[:, :rows, :], (M.shape[0], -1))
    return xp.vecdot(flat, flat)


def normalise(xp: Any, M: Any, scale: Any, rows: int | None = None) -> tuple[Any, Any, Any]:
    r"""``(mantissa, log-scale, squared Frobenius norm of the mantissa)`` of :math:`e^{\text{scale}} M`.

    One per batch element. The mantissa is ``M`` itself while every norm lies in
    ``[1/BAND, BAND]`` (or is zero), else ``M`` divided by its norm; a zero matrix gets the
    log-scale ``-inf``. ``rows``: the norm is that of the first ``rows`` rows (the chain's
    :math:`D_k`; the rows below it, :math:`U^\top D_k`, are scaled with it). The log Frobenius
    norm, :func:`log_norm` of the root of the third entry and the log-scale, is left to the
    caller, which takes it for many lags at once: this runs once per lag, and each of its array
    operations costs microseconds of overhead on a small batch.
    """
    squares = frobenius_squares(xp, M, rows)
    if bool(xp.all(xp.logical_and(squares >= BAND**-2, squares <= BAND**2))):
        return M, scale, squares  # every norm in the band (so none is zero): nothing to do
    positive = squares > 0
    norms = xp.sqrt(squares)
    safe = xp.where(positive, norms, xp.ones_like(norms))
    log = log_norm(xp, norms, scale)
    if bool(xp.all(xp.logical_and(safe >= 1 / BAND, safe <= BAND))):  # in the band, or zero
        return M, xp.where(positive, scale, log), squares
    scaled = M / safe[:, None, None]
    return scaled, log, frobenius_squares(xp, scaled, rows)


def combine(xp: Any, parts: list[tuple[Any, Any]], rows: int | None = None) -> tuple[Any, Any, Any]:
    r""":math:`\sum_i e^{s_i} M_i` as :func:`normalise` gives it, without overflow."""
    if len(parts) == 1:
        return normalise(xp, parts[0][0], parts[0][1], rows)
    top = parts[0][1]
    for _, scale in parts[1:]:
        top = xp.maximum(top, scale)
    finite = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    total = None
    for M, scale in parts:
        weight = xp.where(xp.isfinite(scale), xp.exp(scale - finite), xp.zeros_like(scale))
        term = M * weight[:, None, None]
        total = term if total is None else total + term
    return normalise(xp, total, finite, rows)
