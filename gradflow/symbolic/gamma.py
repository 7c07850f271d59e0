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

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, NamedTuple

import mpmath
import sympy as sp
from mpmath.ctx_iv import MPIntervalContext
from sympy.calculus.util import continuous_domain, function_range
from sympy.core.function import AppliedUndef

from gradflow.cells.activations import Activation, as_activation, z
from gradflow.errors import GradflowError

__all__ = ["Gamma", "gamma", "gamma_symbol"]

#: :math:`\gamma` of a generic (undefined) activation :math:`\sigma`.
gamma_symbol = sp.Symbol("gamma", positive=True)

_IV = MPIntervalContext()  # a private context: mpmath's global precision is left alone
_IV.prec = 160
_PREC = 200  # bits of the point arithmetic (mpf) while gamma runs
_DPS = 50  # digits of point evaluations and root polishing
_SLACK = mpmath.mpf("1e-25")  # relative gap between the best value found and the bound proven
_ZMAX = mpmath.mpf(2) ** 100  # interval arithmetic covers [-2^100, 2^100]; the limits do the rest
_BOX_BUDGET = 200  # sub-boxes branch and bound may spend on one octave
_ROOTS = 16  # critical points refined per search
_R_MIN = mpmath.mpf(64)  # a proof failing nearer 0 than this is never waved through on the limits
_WHOLE = _IV.mpf([-mpmath.inf, mpmath.inf])
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
