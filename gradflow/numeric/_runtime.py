"""Small array helpers that the generated kernels call (see :mod:`gradflow.numeric.lower`)."""

from __future__ import annotations

import math
from typing import Any

from gradflow.numeric.backend import special_function

__all__ = ["RUNTIME"]


def _full(xp: Any, value: Any, like: Any) -> Any:
    if hasattr(value, "shape"):
        return value
    return xp.full_like(like, value)


def _where(xp: Any, condition: Any, a: Any, b: Any, like: Any) -> Any:
    """``xp.where`` accepting Python numbers and ``True`` as a condition."""
    if condition is True:
        return a if hasattr(a, "shape") or like is None else _full(xp, a, like)
    ref = like if like is not None else next(v for v in (a, b) if hasattr(v, "shape"))
    return xp.where(condition, _full(xp, a, ref), _full(xp, b, ref))


def _concat(xp: Any, parts: list[Any]) -> Any:
    """Stack column vectors laid out (..., size) along the last axis, broadcasting the batch axes."""
    widest = max(parts, key=lambda p: p.ndim)
    batch = tuple(widest.shape[:-1])
    aligned = [
        p if tuple(p.shape[:-1]) == batch else xp.broadcast_to(p, (*batch, p.shape[-1])) for p in parts
    ]
    return xp.concat(aligned, axis=-1)


def _ones(xp: Any, size: int, dtype: Any) -> Any:
    return xp.ones((size,), dtype=dtype)


def _zeros(xp: Any, size: int, dtype: Any) -> Any:
    return xp.zeros((size,), dtype=dtype)


#: By dtype, the argument below which :math:`e^{-u}` would overflow (-709 in float64, -88 in
#: float32); the logistic function is held there, at a value below the normal range.
_SIGMOID_FLOORS: dict[tuple[type, Any], float] = {}


def _sigmoid(xp: Any, u: Any) -> Any:
    r"""The logistic function :math:`1/(1+e^{-u})`, to a few ulp, without overflow.

    Five array operations (this runs three times per LSTM step): :math:`u` is held at the
    dtype's floor or above, so :math:`e^{-u}` stays finite and raises no overflow warning;
    below the floor the result is :math:`\sigma(\text{floor})` (about :math:`10^{-308}` in
    float64) instead of a smaller number.
    """
    # keyed by (type, dtype): dtypes of different libraries must not meet in an equality test
    # (their tuples differ at the type first); str(dtype) would cost more than the sigmoid's additions
    key = (type(u.dtype), u.dtype)
    floor = _SIGMOID_FLOORS.get(key)
    if floor is None:
        floor = _SIGMOID_FLOORS[key] = -float(math.floor(math.log(float(xp.finfo(u.dtype).max))))
    t = xp.exp(-xp.maximum(u, floor))
    t += 1.0
    return 1.0 / t


def _special(xp: Any, name: str) -> Any:
    return special_function(xp, name)


RUNTIME = {
    "_where": _where,
    "_concat": _concat,
    "_ones": _ones,
    "_zeros": _zeros,
    "_sigmoid": _sigmoid,
    "_special": _special,
}
