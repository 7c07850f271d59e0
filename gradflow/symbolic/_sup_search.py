r"""The numeric search for :math:`\sup |f|` on an interval, and the checks of sympy's answers.

Private to :mod:`gradflow.symbolic.gamma` (split from it, as it passed 400 lines):
the supremum of one piece of :math:`f = \sigma'` on an interval, when sympy finds no
closed form -- critical points found with mpmath on a sinh-spaced grid and
refined by bisection, the limits of :math:`f` at :math:`\pm\infty` (sympy) for
the tails, and an upper bound proven by branch and bound
(:mod:`gradflow.symbolic._interval`) -- and the check of an exact answer by
the same branch and bound. The exact path (sympy critical points and limits)
stays in :mod:`gradflow.symbolic.gamma`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import mpmath
import sympy as sp

from gradflow.cells.activations import z
from gradflow.errors import GradflowError
from gradflow.symbolic._interval import (
    _DPS,
    _IV,
    _ZMAX,
    _abs_lower,
    _constant,
    _coverage,
    _Functions,
    _lower,
    _UncertifiableError,
    _upper,
)

__all__ = ["_Sup", "_UnboundedError", "_check", "_limit", "_numeric_sup"]

_SLACK = mpmath.mpf("1e-25")  # relative gap between the best value found and the bound proven
_ROOTS = 16  # critical points refined per search
_TINY = mpmath.mpf(2) ** -400  # absolute slack, for a supremum of 0


class _Sup(NamedTuple):
    """sup |f| over one piece: value (sympy), enclosure [lo, hi] (mpf), where, how."""

    value: sp.Expr
    exact: bool
    lo: Any
    hi: Any
    argmax: sp.Expr | None
    attained: bool | None
    method: str


class _UnboundedError(Exception):
    """|σ'| is unbounded, as z approaches ``where``."""

    def __init__(self, where: sp.Expr) -> None:
        super().__init__(where)
        self.where = where


# --- limits at the ends of a piece (sympy), shared with the exact path ----------------


def _limit(name: str, f: sp.Expr, point: sp.Expr, direction: str) -> sp.Expr:
    """The one-sided limit of f at ``point``; raises _UnboundedError where |f| grows without bound."""
    limit = _cached_limit(f, point, direction)
    if isinstance(limit, Exception):
        raise GradflowError(
            f"gamma of {name!r}: sympy cannot find the limit of its derivative {f} as "
            f"z -> {point} ({type(limit).__name__}: {limit}), so gamma cannot be certified"
        ) from limit
    if isinstance(limit, sp.AccumBounds):
        if limit.min.is_infinite or limit.max.is_infinite:
            raise _UnboundedError(point)
    elif limit.is_infinite or limit.has(sp.zoo, sp.oo, -sp.oo):
        raise _UnboundedError(point)
    return limit


@lru_cache(maxsize=1024)
def _cached_limit(f: sp.Expr, point: sp.Expr, direction: str) -> sp.Expr | Exception:
    """Sympy's limit (or the exception it raised); plain substitution first where it is determinate."""
    value = f.subs(z, point)
    if value.is_number and value.is_finite and value.is_real and not value.has(sp.nan, sp.AccumBounds):
        return value  # type: ignore[no-any-return]
    try:
        return sp.limit(f, z, point, direction)  # type: ignore[no-any-return]
    except Exception as err:  # sympy's limit raises many kinds
        return err


# --- certified numerics ----------------------------------------------------------


def _check(name: str, f: sp.Expr, where: sp.Interval, exact: _Sup) -> str:
    """Check sympy's supremum by interval arithmetic: a suffix for the method, or ``"violated"``."""
    try:
        functions = _Functions(f)
        box, tails = _box_and_tails(name, f, where)
    except (_UncertifiableError, _UnboundedError, GradflowError):
        return " (not checked numerically)"
    bound = exact.hi * (1 + _SLACK) + _TINY
    if any(t.is_limit and t.bound > bound for t in tails):
        return "violated"
    argmax = exact.argmax
    centers = [mpmath.mpf(argmax.evalf(_DPS))] if argmax is not None and argmax.is_finite else []
    coverage = _coverage(functions, where, box, bound, centers)
    if coverage.failure is None and all(t.bound <= bound for t in tails):
        return ", checked by interval arithmetic" + coverage.note
    if coverage.failure is not None and functions.abs_at(coverage.failure[0]) > bound:
        return "violated"
    return " (interval check inconclusive)"


def _numeric_sup(name: str, f: sp.Expr, where: sp.Interval) -> _Sup:
    """Sup |f| on an interval, from mpmath critical points, proven by interval arithmetic."""
    try:
        functions = _Functions(f)
        box, tails = _box_and_tails(name, f, where)
    except _UncertifiableError as err:
        raise GradflowError(
            f"gamma of {name!r}: sympy finds no closed form for sup |{f}| on {where}, and "
            f"interval arithmetic cannot evaluate it ({err}); gamma cannot be certified"
        ) from err
    candidates = _critical_points(functions, box)
    best = max([functions.abs_at(c) for c in candidates] + [t.bound for t in tails if t.is_limit])
    for _ in range(4):
        bound = best * (1 + _SLACK) + _TINY
        coverage = _coverage(functions, where, box, bound, candidates)
        if coverage.failure is None:
            break
        a, b = coverage.failure
        local = _critical_points(functions, (max(box[0], a - 1), min(box[1], b + 1)), 64)
        candidates.extend(local)
        improved = max(functions.abs_at(c) for c in local)
        if improved <= best:
            raise GradflowError(
                f"gamma of {name!r}: could not certify sup |{f}| on {where}: interval arithmetic "
                f"failed to prove |f| <= {mpmath.nstr(bound, 20)} (the largest value mpmath "
                f"found) for z in [{mpmath.nstr(a, 12)}, {mpmath.nstr(b, 12)}]"
            )
        best = improved
    else:
        raise GradflowError(
            f"gamma of {name!r}: new critical points of {f} kept appearing; gave up certifying"
        )
    loose = [t for t in tails if not t.is_limit and t.bound > bound]
    if loose:
        raise GradflowError(
            f"gamma of {name!r}: |{f}| <= {mpmath.nstr(bound, 20)} is proven on {where} up to "
            f"|z| = 2^100, but as z -> {loose[0].end} sympy bounds it only by {mpmath.nstr(loose[0].bound, 20)}"
        )
    method = "critical points + interval arithmetic" + coverage.note
    top, argmax = max((functions.abs_at(c), c) for c in candidates)
    approached = [t for t in tails if t.is_limit and t.bound > top]
    if approached:  # the supremum is a limit at ±∞
        tail = max(approached, key=lambda t: t.bound)
        return _Sup(
            sp.Float(tail.limit.evalf(20), 20),
            False,
            _lower(_constant(tail.limit)),
            bound,
            tail.end,
            False,
            "limit at infinity, " + method,
        )
    attained = not any(
        is_open and end.is_finite and _lower(_constant(end)) <= argmax <= _upper(_constant(end))
        for end, is_open in ((where.inf, where.left_open), (where.sup, where.right_open))
    )
    lower = _abs_lower(functions.interval[0](_IV.mpf(argmax)))
    return _Sup(sp.Float(top, 20), False, lower, bound, sp.Float(argmax, 20), attained, method)


def _infinite_ends(where: sp.Interval) -> list[sp.Expr]:
    return [end for end in (where.inf, where.sup) if end.is_infinite]


class _Tail(NamedTuple):
    """|f| beyond the box, as z -> end: at most ``bound``, a limit it approaches if ``is_limit``."""

    end: sp.Expr
    bound: Any
    is_limit: bool
    limit: sp.Expr


def _box_and_tails(name: str, f: sp.Expr, where: sp.Interval) -> tuple[tuple[Any, Any], list[_Tail]]:
    """The finite box interval arithmetic covers, and bounds of |f| beyond it (from the limits at ±∞)."""
    tails = []
    for end in _infinite_ends(where):
        limit = _limit(name, f, end, "-" if end == sp.oo else "+")
        if isinstance(limit, sp.AccumBounds):  # only a bound of f far out, not a value it approaches
            bound = max(abs(limit.min), abs(limit.max), key=lambda v: v.evalf(_DPS))
            tails.append(_Tail(end, _upper(_constant(bound)), False, bound))
        else:
            tails.append(_Tail(end, _upper(_constant(sp.Abs(limit))), True, sp.Abs(limit)))
    for end, is_open, direction in ((where.inf, where.left_open, "+"), (where.sup, where.right_open, "-")):
        if end.is_finite and is_open:
            _limit(name, f, end, direction)  # raises _UnboundedError at a pole
    lo = -_ZMAX if where.inf.is_infinite else max(-_ZMAX, _lower(_constant(where.inf)))
    hi = _ZMAX if where.sup.is_infinite else min(_ZMAX, _upper(_constant(where.sup)))
    return (lo, hi), tails


def _critical_points(functions: _Functions, box: tuple[Any, Any], count: int = 800) -> list[Any]:
    """The grid point where |f| is largest, and the roots of f' where |f| comes near it.

    Sign changes of f' on a sinh-spaced grid over ``box``, refined by bisection: at most
    ``_ROOTS`` of them, those with the largest |f| first (far out, f' is mostly rounding noise).
    """
    lo, hi = max(box[0], mpmath.mpf(-1e8)), min(box[1], mpmath.mpf(1e8))
    t_lo, t_hi = mpmath.asinh(lo), mpmath.asinh(hi)
    grid = [lo] + [mpmath.sinh(t_lo + (t_hi - t_lo) * k / count) for k in range(1, count)] + [hi]
    slopes = [functions.at(1, x, 20) for x in grid]
    values = [abs(v) if (v := functions.at(0, x, 20)) is not None else mpmath.mpf(0) for x in grid]
    top = max(values)
    brackets = sorted(
        (
            (max(values[k], values[k + 1]), k)
            for k in range(count)
            if slopes[k] is not None
            and slopes[k + 1] is not None
            and (slopes[k] == 0 or slopes[k] * slopes[k + 1] < 0)
        ),
        reverse=True,
    )
    roots = [
        _bisect(functions, grid[k], grid[k + 1], slopes[k])
        for value, k in brackets[:_ROOTS]
        if value >= top / 2
    ]
    return [*(r for r in roots if r is not None), grid[values.index(top)]]


def _bisect(functions: _Functions, a: Any, b: Any, fa: Any) -> Any:
    """A root of f' in [a, b], where f'(a) = fa and f'(b) have opposite signs; None if f' fails there."""
    for _ in range(4 * _DPS):
        middle = (a + b) / 2
        value = functions.at(1, middle)
        if value is None:
            return None
        if value == 0:
            return middle
        if (value < 0) == (fa < 0):
            a, fa = middle, value
        else:
            b = middle
    return (a + b) / 2
