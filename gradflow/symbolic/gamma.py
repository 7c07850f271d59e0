r"""The constant :math:`\gamma = \sup_{z \in \mathbb{R}} |\sigma'(z)|` of an activation.

Pascanu, Mikolov and Bengio (2013) bound the step Jacobian of an RNN by
:math:`\lVert \partial h^{(t)} / \partial h^{(t-1)} \rVert
\le \lVert W_h^{\top} \rVert \, \lVert \operatorname{diag}(\sigma') \rVert
\le \gamma \lVert W_h \rVert`, so that :math:`\lVert W_h \rVert_2 < 1/\gamma`
suffices for vanishing gradients (:math:`\gamma = 1` for tanh, 1/4 for the
sigmoid). :func:`gamma` finds :math:`\gamma` for any activation:

1. exactly, by sympy, one piece of :math:`\sigma'` at a time: critical
   points (``solveset`` of :math:`\sigma'' = 0`), values at closed ends and
   limits at open or infinite ends, or ``function_range`` for periodic
   derivatives; ``Abs``, ``sign``, ``Max``... are split into pieces first;
2. otherwise numerically, with a certificate: critical points found with
   mpmath, then an upper bound proven by interval arithmetic.

Either way the answer is checked: branch and bound with interval arithmetic
(natural, monotone, mean-value and second-order Taylor enclosures) proves
:math:`|\sigma'| \le` hi on :math:`[-2^{100}, 2^{100}]`, octave by octave; beyond,
the bound rests on the limits of :math:`\sigma'` at :math:`\pm\infty` (sympy).
Where interval arithmetic loses an expression far out (dependency: e.g.
:math:`e^z/(e^z + 1)` for large :math:`z`), the proof stops at an octave at
least 64 from 0, and ``method`` states the range proven; the rest rests on the
limits and on sampling 8 points per octave up to :math:`2^{100}`. Interval
arithmetic is mpmath's for arithmetic, exp, log, sqrt, sin and cos; a monotone
function (tanh, erf, atan, ...) is enclosed by its values at the ends of the
interval, computed 40 bits more precisely and widened outwards. A periodic
:math:`\sigma'` is examined over one period. A check that fails (a point above
sympy's value) sends the piece to the numeric path; one that cannot conclude
is said so in ``method``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, NamedTuple

import mpmath
import sympy as sp
from sympy.calculus.util import continuous_domain, function_range
from sympy.core.function import AppliedUndef

from gradflow.cells.activations import Activation, as_activation, z
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
    _rational,
    _UncertifiableError,
    _upper,
)

__all__ = ["Gamma", "gamma", "gamma_symbol"]

#: :math:`\gamma` of a generic (undefined) activation :math:`\sigma`.
gamma_symbol = sp.Symbol("gamma", positive=True)

_PREC = 200  # bits of the point arithmetic (mpf) while gamma runs
_SLACK = mpmath.mpf("1e-25")  # relative gap between the best value found and the bound proven
_ROOTS = 16  # critical points refined per search
_TINY = mpmath.mpf(2) ** -400  # absolute slack, for a supremum of 0


@dataclass(frozen=True)
class Gamma:
    r""":math:`\gamma = \sup_z |\sigma'(z)|` of an activation, with how it was found.

    Attributes
    ----------
    value : sympy.Expr
        An exact sympy number (``Integer``, ``Rational``, closed form, ``oo``)
        when ``exact``; else a ``Float`` with at least 15 correct digits; the
        symbol :data:`gamma_symbol` for a generic :math:`\sigma`.
    exact : bool
        Whether ``value`` is exact.
    bracket : tuple of two sympy.Rational, or None
        ``(lo, hi)`` with ``lo <= sup |σ'| <= hi`` (see the module docstring
        for what is certified); None for a generic or unbounded :math:`\sigma'`.
    method : str
        How the value was found, e.g. ``"sympy critical points and limits,
        checked by interval arithmetic"``.
    argmax : sympy.Expr or None
        A point where the supremum is attained, or approached (a one-sided
        limit at a kink, ``oo`` or ``-oo``); None when unknown or generic.
    attained : bool or None
        Whether :math:`|\sigma'|` takes the value ``value`` at ``argmax``.

    Examples
    --------
    >>> from gradflow.cells.activations import elu
    >>> g = gamma(elu(2))  # 2 e^z on z < 0: the supremum 2 is approached at 0-
    >>> g.value, g.exact, g.argmax, g.attained, float(g)
    (2, True, 0, False, 2.0)
    """

    value: sp.Expr
    exact: bool
    bracket: tuple[sp.Rational, sp.Rational] | None
    method: str
    argmax: sp.Expr | None
    attained: bool | None = None

    def __float__(self) -> float:
        """The value as a Python float (``inf`` when unbounded)."""
        if not self.value.is_number:
            raise GradflowError(
                f"gamma = {self.value} of a generic activation has no numeric value; "
                "substitute a number for the symbol gamma, or use a concrete activation"
            )
        return float(self.value)


def gamma(activation: Any) -> Gamma:
    r"""The supremum :math:`\gamma = \sup_{z \in \mathbb{R}} |\sigma'(z)|` of an activation.

    Parameters
    ----------
    activation : Activation, str, sympy.Lambda, sympy function or callable
        An :class:`~gradflow.cells.activations.Activation`, a catalogue name
        (``"tanh"``), or anything :func:`~gradflow.cells.activations.as_activation`
        accepts.

    Returns
    -------
    Gamma
        The value, whether it is exact, a certified bracket, the method and
        the point where the supremum is reached. Results are cached per
        activation.

    Raises
    ------
    CellDefinitionError
        For an unknown catalogue name or a function that is not elementwise.
    NotDifferentiableError
        If sympy cannot differentiate the activation.
    GradflowError
        If the supremum can be neither found exactly nor certified
        numerically (the message says what was tried), or ``activation`` is
        not an activation at all.

    Examples
    --------
    >>> from gradflow.symbolic.gamma import gamma
    >>> gamma("tanh").value, gamma("sigmoid").value, gamma("relu").value
    (1, 1/4, 1)
    >>> g = gamma("silu")
    >>> g.exact, round(float(g), 10), g.method
    (False, 1.0998393201, 'critical points + interval arithmetic')
    >>> gamma("gelu").value
    exp(-1)/sqrt(pi) + erf(1)/2 + 1/2

    References
    ----------
    .. [1] R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training
       recurrent neural networks", ICML 2013 (section 3.1, the constant γ).
    .. [2] P. Ramachandran, B. Zoph, Q. V. Le, "Searching for activation
       functions", arXiv:1710.05941, 2017 (swish).
    .. [3] D. Hendrycks, K. Gimpel, "Gaussian error linear units (GELUs)",
       arXiv:1606.08415, 2016 (GELU and SiLU).
    """
    return _gamma_of(_resolve(activation))


def _resolve(spec: Any) -> Activation:
    if isinstance(spec, Activation):
        return spec
    try:
        return as_activation(spec)
    except GradflowError:
        raise
    except Exception as err:  # as_activation may meet anything a user passes
        raise GradflowError(
            f"gamma needs an activation (an Activation, a catalogue name such as 'tanh', "
            f"or a sympy Lambda of one variable); got {type(spec).__name__} {spec!r}: {err}"
        ) from err


# --- one piece of σ' at a time -----------------------------------------------


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


@cache
def _gamma_of(activation: Activation) -> Gamma:
    with mpmath.workprec(_PREC):  # every mpf below carries (and is compared at) this precision
        return _compute(activation)


def _compute(activation: Activation) -> Gamma:
    name, body = activation.name, activation.expression
    if activation.is_generic:
        if isinstance(body, AppliedUndef) and body.args == (z,):
            return Gamma(gamma_symbol, True, None, "generic", None)
        raise GradflowError(
            f"activation {name!r} ({body}) mixes an undefined function with others; gamma "
            "is defined symbolically only for a bare generic sigma(z), or for a concrete activation"
        )
    pieces = _pieces(name, activation.derivative.expression)
    try:
        sups = [_piece_sup(name, f, where) for f, where in pieces]
    except _UnboundedError as unbounded:
        method = f"unbounded: |{name}'(z)| is not bounded as z -> {unbounded.where}"
        return Gamma(sp.oo, True, None, method, unbounded.where, False)
    best = max(sups, key=lambda s: (s.lo, s.attained is True))
    exact = best.exact and all(s.exact or s.hi < best.lo for s in sups)
    method = best.method if len(pieces) == 1 else f"piecewise ({len(pieces)} pieces), {best.method}"
    bracket = (
        _rational(max(s.lo for s in sups), mpmath.floor),
        _rational(max(s.hi for s in sups), mpmath.ceil),
    )
    return Gamma(best.value, exact, bracket, method, best.argmax, best.attained)


def _pieces(name: str, derivative: sp.Expr) -> list[tuple[sp.Expr, sp.Set]]:
    """Split σ' into expressions on intervals or single points (Abs, sign, Max... become Piecewise)."""
    folded = sp.piecewise_fold(derivative.rewrite(sp.Piecewise))
    if not folded.has(sp.Piecewise):
        return [(folded, sp.Interval(-sp.oo, sp.oo))]
    try:
        if not isinstance(folded, sp.Piecewise):
            raise TypeError("a Piecewise is left inside another function")
        pairs = folded.as_expr_set_pairs()
    except Exception as err:  # sympy cannot turn the conditions into sets
        raise GradflowError(
            f"gamma of {name!r}: cannot split its derivative {derivative} into pieces on "
            f"intervals ({type(err).__name__}: {err}); write the activation as a Piecewise "
            "whose conditions are inequalities in z"
        ) from err
    pieces: list[tuple[sp.Expr, sp.Set]] = []
    for expr, where in pairs:
        for part in where.args if isinstance(where, sp.Union) else (where,):
            if isinstance(part, sp.FiniteSet):
                pieces.extend((expr, sp.FiniteSet(point)) for point in part)
            elif isinstance(part, sp.Interval):
                pieces.append((expr, part))
            elif part is not sp.S.EmptySet:
                raise GradflowError(
                    f"gamma of {name!r}: the piece {expr} of its derivative holds on {part}, "
                    "not on intervals; write the conditions as inequalities in z"
                )
    return pieces


def _piece_sup(name: str, f: sp.Expr, where: sp.Set, split: bool = True) -> _Sup:
    """Sup |f| on ``where`` (an interval or a point): exactly if sympy can, else certified numerically."""
    if isinstance(where, sp.FiniteSet):
        (point,) = where.args
        return _exact_result(
            _abs_number(name, f.xreplace({z: point}), point), point, True, "value at a point"
        )
    if not f.has(z):
        return _exact_result(_abs_number(name, f, where), _representative(where), True, "constant")
    if where == sp.Interval(-sp.oo, sp.oo) and f.has(*_TRIGONOMETRIC):
        period = _period(f)
        if period is not None:  # one period is enough, and has no tails
            where = sp.Interval(0, period)
    domain = _continuous_domain(f, where)
    if split and domain != where:  # singularities inside: their one-sided limits decide
        parts = domain.args if isinstance(domain, sp.Union) else (domain,)
        if not parts or not all(isinstance(p, sp.Interval) for p in parts):
            raise GradflowError(f"gamma of {name!r}: its derivative {f} is continuous only on {domain}")
        return max((_piece_sup(name, f, p, split=False) for p in parts), key=lambda s: s.lo)
    exact = _exact_sup(name, f, where)
    if exact is not None:
        verdict = _check(name, f, where, exact)
        if verdict != "violated":
            return exact._replace(method=exact.method + verdict)
    return _numeric_sup(name, f, where)


_TRIGONOMETRIC = (sp.sin, sp.cos, sp.tan, sp.cot, sp.sec, sp.csc)


def _period(f: sp.Expr) -> sp.Expr | None:
    try:
        period = sp.periodicity(f, z)
    except Exception:  # periodicity is a nicety here
        return None
    return period if period is not None and period.is_positive and period.is_finite else None


def _continuous_domain(f: sp.Expr, where: sp.Interval) -> sp.Set:
    try:
        return continuous_domain(f, z, where)
    except Exception:  # erf and friends: fall back on sympy's singularities
        try:
            return sp.Complement(where, sp.singularities(f, z, where))
        except Exception:
            return where


def _abs_number(name: str, value: sp.Expr, where: Any) -> sp.Expr:
    if value.has(sp.nan, sp.zoo) or not value.is_number:
        raise GradflowError(f"gamma of {name!r}: its derivative is {value} at {where}")
    if value.is_infinite:
        raise _UnboundedError(where if isinstance(where, sp.Expr) else sp.oo)
    numeric = value.evalf(_DPS)
    if not numeric.is_real:
        raise GradflowError(f"gamma of {name!r}: its derivative {value} at {where} is not real")
    return -value if numeric < 0 else value


def _exact_result(value: sp.Expr, argmax: sp.Expr | None, attained: bool | None, method: str) -> _Sup:
    enclosure = _constant(value)
    return _Sup(value, True, _lower(enclosure), _upper(enclosure), argmax, attained, method)


# --- exact, by sympy -----------------------------------------------------------


def _exact_sup(name: str, f: sp.Expr, where: sp.Interval) -> _Sup | None:
    """Sup |f| on an interval where f is continuous, by sympy; None if sympy finds no closed form."""
    try:
        critical = sp.solveset(sp.diff(f, z), z, where)
    except Exception:  # solveset raises many kinds: no closed form
        return None
    if critical is sp.S.EmptySet or (isinstance(critical, sp.FiniteSet) and all(c.is_real for c in critical)):
        candidates = [(_abs_number(name, f.xreplace({z: c}), c), c, True) for c in critical]
        for end, is_open, direction in (
            (where.inf, where.left_open, "+"),
            (where.sup, where.right_open, "-"),
        ):
            if end.is_finite and not is_open:
                candidates.append((_abs_number(name, f.xreplace({z: end}), end), end, True))
                continue
            limit = _limit(name, f, end, direction)
            if isinstance(limit, sp.AccumBounds) or not limit.is_number:
                return None
            candidates.append((_abs_number(name, limit, end), end, False))
        value, argmax, attained = max(candidates, key=lambda c: (c[0].evalf(_DPS), c[2]))
        return _exact_result(value, argmax, attained, "sympy critical points and limits")
    if isinstance(critical, sp.ConditionSet):
        return None
    try:  # infinitely many critical points (a periodic σ'): sympy's function_range
        values = function_range(f, z, where)
    except Exception:
        return None
    if not isinstance(values, sp.Interval | sp.FiniteSet) or not (
        values.inf.is_number and values.sup.is_number
    ):
        return None
    if values.sup.is_infinite or values.inf.is_infinite:
        raise _UnboundedError(sp.oo)
    value = max(abs(values.inf), abs(values.sup), key=lambda v: v.evalf(_DPS))
    try:
        points = sp.Union(sp.solveset(f - value, z, where), sp.solveset(f + value, z, where))
        argmax = _representative(points)
    except Exception:  # where it is attained is a nicety
        argmax = None
    return _exact_result(
        value,
        argmax,
        values.contains(value) is sp.true or values.contains(-value) is sp.true,
        "sympy function_range",
    )


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


def _representative(points: sp.Set) -> sp.Expr | None:
    """A point of ``points``, near 0 where that is easy to tell."""
    if points.contains(0) is sp.true:
        return sp.S.Zero
    if isinstance(points, sp.FiniteSet) and points.args:
        return min(points.args, key=lambda p: abs(p.evalf()))  # type: ignore[no-any-return]
    if isinstance(points, sp.Interval):
        lo, hi = points.inf, points.sup
        if lo.is_finite and hi.is_finite:
            return lo if not points.left_open else hi if not points.right_open else (lo + hi) / 2
        return (
            lo + (0 if not points.left_open else 1)
            if lo.is_finite
            else hi - (0 if not points.right_open else 1)
        )
    if isinstance(points, sp.Union):
        found = [p for p in map(_representative, points.args) if p is not None]
        return min(found, key=lambda p: abs(p.evalf())) if found else None
    if isinstance(points, sp.ImageSet) and points.base_sets[0].contains(0) is sp.true:
        return points.lamda(0)  # type: ignore[no-any-return]
    return None


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
