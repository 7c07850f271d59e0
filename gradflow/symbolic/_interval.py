r"""Interval arithmetic and branch and bound: the certificates behind :func:`~gradflow.symbolic.gamma.gamma`.

Private to :mod:`gradflow.symbolic.gamma`, this module holds what proves an
upper bound on :math:`|f|`, :math:`f = \sigma'` one piece at a time: a sympy
expression compiled to an interval extension (mpmath's interval arithmetic
for arithmetic, exp, log, sqrt, sin and cos; a monotone function enclosed by
its values at the ends of the interval, computed 40 bits more precisely and
widened outwards); :math:`f`, :math:`f'` and :math:`f''` evaluated on boxes
and at points; and branch and bound, which proves :math:`|f| \le` bound on
:math:`[-2^{100}, 2^{100}]` octave by octave outwards from 0, subdividing a
box until the natural, monotone, mean-value or second-order Taylor enclosure
settles it, and samples 8 points an octave where interval arithmetic loses
the expression far out. Finding the supremum stays in :mod:`gradflow.symbolic.gamma`
(sympy) and :mod:`gradflow.symbolic._sup_search` (mpmath critical points, limits at infinity).

References
----------
R. E. Moore, R. B. Kearfott, M. J. Cloud, *Introduction to Interval Analysis*,
SIAM, 2009 (natural, mean-value and Taylor enclosures; branch and bound).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import mpmath
import sympy as sp
from mpmath.ctx_iv import MPIntervalContext

from gradflow.cells.activations import z

__all__ = [
    "_DPS",
    "_IV",
    "_ZMAX",
    "_Functions",
    "_UncertifiableError",
    "_abs_lower",
    "_constant",
    "_coverage",
    "_lower",
    "_rational",
    "_upper",
]

_IV = MPIntervalContext()  # a private context: mpmath's global precision is left alone
_IV.prec = 160
_DPS = 50  # digits of point evaluations and root polishing
_ZMAX = mpmath.mpf(2) ** 100  # interval arithmetic covers [-2^100, 2^100]; the limits do the rest
_BOX_BUDGET = 200  # sub-boxes branch and bound may spend on one octave
_R_MIN = mpmath.mpf(64)  # a proof failing nearer 0 than this is never waved through on the limits
_WHOLE = _IV.mpf([-mpmath.inf, mpmath.inf])


# --- f, f', f'' at points and on boxes -------------------------------------------


class _Functions:
    """f, f', f'' as interval functions (on boxes) and f, f' as mpmath functions (at points)."""

    def __init__(self, f: sp.Expr) -> None:
        derivatives = [f, sp.diff(f, z), sp.diff(f, z, 2)]
        self.interval = [_compile(d) for d in derivatives]
        slope = sp.together(derivatives[1])  # often signs better: exp(z)/(exp(z) + 1)**2
        self.slope = _compile(slope) if slope != derivatives[1] else None
        self.point = [sp.lambdify(z, d, modules="mpmath") for d in derivatives[:2]]

    def at(self, order: int, x: Any, digits: int = _DPS) -> Any:
        """F (order 0) or f' (order 1) at a point, to ``digits`` digits; None where undefined."""
        try:
            with mpmath.workdps(digits):
                value = self.point[order](mpmath.mpf(x))
            return value if mpmath.isfinite(value) and mpmath.im(value) == 0 else None
        except (ArithmeticError, ValueError, TypeError):
            return None

    def abs_at(self, x: Any) -> Any:
        """|f(x)|, 0 where undefined."""
        value = self.at(0, x)
        return mpmath.mpf(0) if value is None else abs(value)


# --- branch and bound ------------------------------------------------------------


class _Coverage(NamedTuple):
    """Where branch and bound proved |f| <= bound: ``note`` says so, or ``failure`` is a box where it could not."""

    note: str
    failure: tuple[Any, Any] | None


def _coverage(
    functions: _Functions, where: sp.Interval, box: tuple[Any, Any], bound: Any, centers: list[Any]
) -> _Coverage:
    """Prove |f| <= bound on ``box``; far out on an infinite side, settle for the limits and sampling."""
    radius, failure = _prove_bound(functions, box, bound, centers)
    if failure is None:
        return _Coverage("", None)
    for side, end in ((-1, where.inf), (1, where.sup)):
        if radius[side] < mpmath.inf and (radius[side] < _R_MIN or end.is_finite):
            return _Coverage("", failure)
    for side in (-1, 1):  # sample what interval arithmetic could not cover: up to 2^100, 8 points an octave
        start = radius[side]
        steps = int(8 * mpmath.log(_ZMAX / start, 2)) + 1 if start < mpmath.inf else 0
        for k in range(steps):
            point = side * start * mpmath.mpf(2) ** (mpmath.mpf(k) / 8)
            if functions.abs_at(point) > bound:
                return _Coverage("", (point, point))
    lo = mpmath.nstr(-radius[-1], 6) if radius[-1] < mpmath.inf else mpmath.nstr(box[0], 6)
    hi = mpmath.nstr(radius[1], 6) if radius[1] < mpmath.inf else mpmath.nstr(box[1], 6)
    return _Coverage(f" (proven on [{lo}, {hi}]; beyond, by the limits at infinity and sampling)", None)


def _prove_bound(
    functions: _Functions, box: tuple[Any, Any], bound: Any, centers: list[Any]
) -> tuple[dict[int, Any], tuple[Any, Any] | None]:
    """Prove |f| <= bound on ``box``, octave by octave outwards from 0.

    Returns, for each side of 0, the distance from 0 up to which the bound is proven
    (``inf``: the whole side), and a box where the proof failed first (None: nowhere).
    """
    powers = [sign * mpmath.mpf(2) ** k for k in range(-3, 101) for sign in (-1, 1)]
    edges = sorted(
        {*box, *(p for p in powers if box[0] < p < box[1]), *([mpmath.mpf(0)] if box[0] < 0 < box[1] else [])}
    )
    octaves = sorted(itertools.pairwise(edges), key=lambda ab: _distance(*ab))
    radius = {-1: mpmath.inf, 1: mpmath.inf}
    failure = None
    for a, b in octaves:
        side = 1 if a >= 0 else -1
        if _distance(a, b) < radius[side] and (failed := _prove_box(functions, a, b, bound, centers)):
            radius[side] = _distance(a, b)
            failure = failure or failed
    return radius, failure


def _distance(a: Any, b: Any) -> Any:
    """Distance from 0 of a box on one side of 0."""
    return a if a >= 0 else -b


def _prove_box(
    functions: _Functions, a: Any, b: Any, bound: Any, centers: list[Any]
) -> tuple[Any, Any] | None:
    """Branch and bound on [a, b]: None when |f| <= bound is proven, else a box where it was not."""
    stack = [(a, b)]
    for _ in range(_BOX_BUDGET):
        if not stack:
            return None
        lo, hi = stack.pop()
        if _bounded(functions, lo, hi, bound, centers):
            continue
        if hi - lo <= mpmath.mpf(2) ** -120 * max(1, abs(lo), abs(hi)):
            return (lo, hi)
        split = _split(lo, hi)
        stack.extend([(lo, split), (split, hi)])
    return stack[-1] if stack else None


def _split(a: Any, b: Any) -> Any:
    """Where to cut [a, b]: geometrically across orders of magnitude, else in the middle."""
    if a > 0 and b > 4 * a:
        return mpmath.mpf(mpmath.nstr(mpmath.sqrt(a * b), 8))
    if b < 0 and a < 4 * b:
        return -mpmath.mpf(mpmath.nstr(mpmath.sqrt(a * b), 8))
    return mpmath.ldexp(mpmath.fadd(a, b, exact=True), -1)


def _bounded(functions: _Functions, a: Any, b: Any, bound: Any, centers: list[Any]) -> bool:
    """Whether |f| <= bound on [a, b] follows from the natural, monotone, mean-value or Taylor form."""
    f, df, d2f = functions.interval
    box = _IV.mpf([a, b])
    natural = f(box)
    if _abs_upper(natural) <= bound:
        return True
    slope = df(box)
    for sign in (slope, functions.slope(box) if functions.slope is not None else slope):
        if _lower(sign) > 0 or _upper(sign) < 0:  # monotone on the box: its values at the ends
            return max(_abs_upper(f(_IV.mpf(a))), _abs_upper(f(_IV.mpf(b)))) <= bound
    inside = [c for c in centers if a <= c <= b]
    center = _IV.mpf(inside[0] if inside else mpmath.ldexp(mpmath.fadd(a, b, exact=True), -1))
    offset = box - center
    value = f(center)
    forms = [natural, value + slope * offset, value + df(center) * offset + d2f(box) * offset**2 / 2]
    lo, hi = max(_lower(x) for x in forms), min(_upper(x) for x in forms)
    return max(-lo, hi) <= bound


# --- interval evaluation of a sympy expression ---------------------------------------


class _UncertifiableError(Exception):
    """The expression holds a function without an interval rule here."""


def _lower(x: Any) -> Any:
    value = mpmath.mpf(x.a)  # exact: the working precision is above the interval precision
    return -mpmath.inf if mpmath.isnan(value) else value


def _upper(x: Any) -> Any:
    value = mpmath.mpf(x.b)
    return mpmath.inf if mpmath.isnan(value) else value


def _abs_upper(x: Any) -> Any:
    return max(-_lower(x), _upper(x))


def _abs_lower(x: Any) -> Any:
    return max(_lower(x), -_upper(x), 0)


def _constant(value: sp.Expr) -> Any:
    """An interval holding a real sympy number."""
    if isinstance(value, sp.Rational):
        return _IV.mpf(int(value.p)) / _IV.mpf(int(value.q))
    numeric = value.evalf(_DPS + 20)
    if not (numeric.is_number and numeric.is_real and numeric.is_finite):
        raise _UncertifiableError(f"{value} is not a finite real number")
    with mpmath.workprec(_IV.prec + 80):
        x = mpmath.mpf(numeric)
        width = abs(x) * mpmath.mpf(2) ** -(_IV.prec + 20)
        return _IV.mpf([x - width, x + width])


def _rational(x: Any, rounding: Callable[[Any], Any]) -> sp.Rational:
    """``x`` rounded outwards to 30 significant digits, as a sympy Rational."""
    if x == 0:
        return sp.Integer(0)
    with mpmath.workprec(_IV.prec + 80):
        scale = 29 - int(mpmath.floor(mpmath.log10(abs(x))))
        digits = int(rounding(x * mpmath.mpf(10) ** scale))
    return sp.Rational(digits, 10**scale) if scale >= 0 else sp.Integer(digits * 10**-scale)


def _monotone(function: Callable[[Any], Any], increasing: bool) -> Callable[[Any], Any]:
    """Interval rule of a monotone function: its values at the ends, widened outwards."""

    def rule(x: Any) -> Any:
        with mpmath.workprec(_IV.prec + 40):
            ends = [function(mpmath.mpf(x.a)), function(mpmath.mpf(x.b))]
            lo, hi = ends if increasing else ends[::-1]
            lo -= abs(lo) * mpmath.mpf(2) ** -_IV.prec
            hi += abs(hi) * mpmath.mpf(2) ** -_IV.prec
        return _IV.mpf([lo, hi])

    return rule


def _absolute(x: Any) -> Any:
    lo, hi = _lower(x), _upper(x)
    if lo >= 0:
        return x
    if hi <= 0:
        return -x
    return _IV.mpf([0, max(-lo, hi)])


def _positive_only(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: rule(x) if _lower(x) > 0 else _WHOLE


_RULES: dict[type, Callable[[Any], Any]] = {
    sp.exp: _IV.exp,
    sp.log: _positive_only(_IV.log),
    sp.sin: _IV.sin,
    sp.cos: _IV.cos,
    sp.Abs: _absolute,
    sp.tanh: _monotone(mpmath.tanh, True),
    sp.erf: _monotone(mpmath.erf, True),
    sp.erfc: _monotone(mpmath.erfc, False),
    sp.atan: _monotone(mpmath.atan, True),
    sp.asinh: _monotone(mpmath.asinh, True),
    sp.sinh: _monotone(mpmath.sinh, True),
    sp.cosh: lambda x: _monotone(mpmath.cosh, True)(_absolute(x)),
}


def _compile(expr: sp.Expr) -> Callable[[Any], Any]:
    """An interval extension of ``expr`` (a function of the interval z)."""
    if expr == z:
        return lambda x: x
    if not expr.has(z):
        constant = _constant(expr)
        return lambda x: constant
    parts = [_compile(arg) for arg in expr.args]
    if isinstance(expr, sp.Add):
        return lambda x: _fold(parts, x, lambda u, v: u + v)
    if isinstance(expr, sp.Mul):
        return lambda x: _fold(parts, x, lambda u, v: u * v)
    if isinstance(expr, sp.Pow):
        base, exponent = parts
        if expr.exp.is_Integer:
            n = int(expr.exp)
            return lambda x: base(x) ** n
        if expr.exp == sp.S.Half:
            return lambda x: _sqrt(base(x))
        return lambda x: _power(base(x), exponent(x))
    rule = _RULES.get(type(expr))
    if rule is None or len(parts) != 1:
        raise _UncertifiableError(f"no interval rule for {type(expr).__name__} in {expr}")
    (inner,) = parts
    return lambda x: rule(inner(x))


def _fold(parts: list[Callable[[Any], Any]], x: Any, operation: Callable[[Any, Any], Any]) -> Any:
    total = parts[0](x)
    for part in parts[1:]:
        total = operation(total, part(x))
    return total


def _sqrt(x: Any) -> Any:
    return _IV.sqrt(x) if _lower(x) >= 0 else _WHOLE


def _power(base: Any, exponent: Any) -> Any:
    return _IV.exp(exponent * _IV.log(base)) if _lower(base) > 0 else _WHOLE
