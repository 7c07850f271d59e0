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
   mpmath, then an upper bound proven by interval arithmetic (the search is
   in :mod:`gradflow.symbolic._sup_search`, the certificates in
   :mod:`gradflow.symbolic._interval`).

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
from functools import cache
from typing import Any

import mpmath
import sympy as sp
from sympy.calculus.util import continuous_domain, function_range
from sympy.core.function import AppliedUndef

from gradflow.cells.activations import Activation, as_activation, z
from gradflow.errors import GradflowError
from gradflow.symbolic._interval import _DPS, _constant, _lower, _rational, _upper
from gradflow.symbolic._sup_search import _check, _limit, _numeric_sup, _Sup, _UnboundedError

__all__ = ["Gamma", "gamma", "gamma_of", "gamma_symbol"]

#: :math:`\gamma` of a generic (undefined) activation :math:`\sigma`.
gamma_symbol = sp.Symbol("gamma", positive=True)


def gamma_of(activation: Activation) -> sp.Symbol:
    r"""The symbol :math:`\gamma_\sigma` standing for :math:`\sup|\sigma'|` in a bound.

    :data:`gamma_symbol` (:math:`\gamma`) for tanh and the generic :math:`\sigma`,
    ``gamma_<name>`` for any other activation; :func:`gamma` gives its value.

    Examples
    --------
    >>> from gradflow.cells.activations import as_activation
    >>> gamma_of(as_activation("tanh")) == gamma_symbol, gamma_of(as_activation("sigmoid"))
    (True, gamma_sigmoid)
    """
    if activation.name in ("tanh", "sigma"):
        return gamma_symbol
    return sp.Symbol(f"gamma_{activation.name}", positive=True)


_PREC = 200  # bits of the point arithmetic (mpf) while gamma runs


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
