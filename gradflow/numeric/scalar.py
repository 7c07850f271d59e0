r"""Lowering scalar sympy expressions (activations, coefficients) to array code.

An activation is defined once, as a sympy expression in ``z``
(:mod:`gradflow.cells.activations`); this module turns that expression --
and its derivative, made by sympy -- into Python source over an array-API
namespace ``xp``. Two rewrites keep the numbers safe without restating any
activation by hand:

* **logistic patterns.** ``exp(-u)`` next to ``1 + exp(-u)`` is rewritten in
  terms of :math:`s = 1/(1+e^{-u})` (:math:`e^{-u} = (1-s)/s`), so the
  sigmoid, its derivative :math:`s(1-s)` and swish never divide ``inf`` by
  ``inf``; :math:`s` itself is evaluated without overflow.
* **piecewise functions.** Each branch is evaluated only on inputs of its own
  region (others are moved to a point inside it), so ``exp(z)`` of ELU's
  negative branch never overflows for large positive ``z``.
"""

from __future__ import annotations

import math
from typing import Any

import sympy as sp

from gradflow.errors import NotDifferentiableError

__all__ = ["ScalarPrinter", "stabilize"]

_FUNCTIONS = {
    sp.exp: "xp.exp",
    sp.log: "xp.log",
    sp.tanh: "xp.tanh",
    sp.sinh: "xp.sinh",
    sp.cosh: "xp.cosh",
    sp.sin: "xp.sin",
    sp.cos: "xp.cos",
    sp.tan: "xp.tan",
    sp.atan: "xp.atan",
    sp.asinh: "xp.asinh",
    sp.acosh: "xp.acosh",
    sp.atanh: "xp.atanh",
    sp.Abs: "xp.abs",
    sp.sign: "xp.sign",
}

_RELATIONS = {
    sp.StrictLessThan: "<",
    sp.LessThan: "<=",
    sp.StrictGreaterThan: ">",
    sp.GreaterThan: ">=",
    sp.Equality: "==",
    sp.Unequality: "!=",
}


def stabilize(expr: sp.Expr, complements: bool = False) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr]]:
    r"""Rewrite logistic patterns ``exp(a)`` beside ``1 + exp(a)`` through :math:`s = 1/(1+e^{a})`.

    Parameters
    ----------
    expr : sympy expression
    complements : bool, default False
        Also write :math:`1 - s` as :math:`r = \sigma(-u)`, and :math:`c - c\tanh^2 a` as
        :math:`4c\,\sigma(2a)\sigma(-2a)`, so that no derivative is formed as a difference
        of numbers near 1. :math:`1 - \tanh^2 a` computed from :math:`\tanh a` is exactly 0
        once :math:`|a| > 19`, and :math:`s(1-s)` once :math:`a > 37`, although the true values
        (:math:`4e^{-2|a|}`, :math:`e^{-a}`) are far inside the float range; a Jacobian chain
        through such a factor would read :math:`\log 0 = -\infty`. SiLU's
        :math:`s + z s - z s^2` loses everything to cancellation for large :math:`z`;
        :math:`s + z s r` does not.

    Returns
    -------
    (sympy expression, dict)
        The rewritten expression and ``{s: u}``: each new symbol ``s`` stands
        for the logistic sigmoid of ``u`` (:math:`u = -a`).

    Examples
    --------
    >>> z = sp.Symbol("z", real=True)
    >>> rewritten, logistic = stabilize(sp.exp(-z) / (1 + sp.exp(-z)) ** 2)
    >>> rewritten.factor(), logistic
    (-s0*(s0 - 1), {s0: z})
    >>> stabilize(sp.exp(-z) / (1 + sp.exp(-z)) ** 2, complements=True)
    (s0*s1, {s0: z, s1: -z})
    >>> stabilize(1 - sp.tanh(z) ** 2, complements=True)
    (4*s0*s1, {s0: 2*z, s1: -2*z})
    """
    logistic: dict[sp.Symbol, sp.Expr] = {}
    if complements:
        expr = _squared_tanh(_sign_products(expr), logistic)
    for power in sorted(expr.atoms(sp.exp), key=sp.default_sort_key):
        if not any(isinstance(a, sp.Add) and 1 in a.args and power in a.args for a in expr.atoms(sp.Add)):
            continue
        s = sp.Symbol(f"s{len(logistic)}", positive=True)
        candidate = sp.cancel(expr.xreplace({power: (1 - s) / s}))
        if candidate.has(power):
            continue
        expr = candidate
        logistic[s] = -power.args[0]
    if complements:
        expr = _complements(expr, logistic)
    return expr, logistic


def _logistic_of(u: sp.Expr, logistic: dict[sp.Symbol, sp.Expr]) -> sp.Symbol:
    r"""The symbol standing for :math:`\sigma(u)`, new if none does yet."""
    for symbol, argument in logistic.items():
        if sp.expand(argument - u) == 0:
            return symbol
    symbol = sp.Symbol(f"s{len(logistic)}", positive=True)
    logistic[symbol] = u
    return symbol


def _squared_tanh(expr: sp.Expr, logistic: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    r""":math:`c - c\tanh^2 a` (inside any sum) as :math:`4c\,\sigma(2a)\sigma(-2a)`.

    Only the difference is rewritten: a bare :math:`\tanh^2 a` stays as it is, since
    :math:`1 - 4\sigma(2a)\sigma(-2a)` would lose its relative accuracy near :math:`a = 0`.
    """

    def rewrite(total: sp.Add) -> sp.Expr:
        terms = list(total.args)
        for term in terms:
            coefficient, rest = term.as_coeff_Mul()
            if not (isinstance(rest, sp.Pow) and isinstance(rest.base, sp.tanh) and rest.exp == 2):
                continue
            constant = -coefficient
            if constant not in terms:
                continue
            a = rest.base.args[0]
            others = list(terms)
            others.remove(term)
            others.remove(constant)
            sech2 = 4 * _logistic_of(2 * a, logistic) * _logistic_of(-2 * a, logistic)
            return sp.Add(*others, constant * sech2)
        return total

    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


def _sign_products(expr: sp.Expr) -> sp.Expr:
    r""":math:`a\operatorname{sign}(a)` as :math:`|a|` (real :math:`a`), then the sums it enters brought together.

    Softsign's derivative, as sympy writes it, :math:`1/(|z|+1) - z\operatorname{sign}(z)/(|z|+1)^2`,
    is a difference of nearly equal numbers for large :math:`|z|`; together it is :math:`1/(|z|+1)^2`.
    """

    def absolute(product: sp.Mul) -> sp.Expr:
        for factor in product.args:
            if isinstance(factor, sp.sign) and factor.args[0] in product.args and factor.args[0].is_real:
                others = list(product.args)
                others.remove(factor)
                others.remove(factor.args[0])
                return sp.Mul(sp.Abs(factor.args[0]), *others)
        return product

    rewritten = expr.replace(lambda e: isinstance(e, sp.Mul) and e.has(sp.sign), absolute)
    return sp.together(rewritten) if rewritten != expr else expr


def _complements(expr: sp.Expr, logistic: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    r"""Every factor :math:`1 - \sigma(u)` as :math:`\sigma(-u)` (a new logistic symbol if needed)."""
    for s in list(logistic):
        if not expr.has(s):
            continue
        others = sorted(expr.free_symbols - set(logistic), key=sp.default_sort_key)
        numerator, denominator = sp.fraction(sp.cancel(expr))
        parts = []
        for part in (numerator, denominator):
            grouped = sp.collect(sp.expand(part), others, func=sp.factor) if others else sp.factor(part)
            parts.append(grouped)
        rewritten = parts[0] / parts[1]
        if rewritten.has(1 - s) or rewritten.has(s - 1):
            r = _logistic_of(-logistic[s], logistic)
            expr = rewritten.xreplace({1 - s: r, s - 1: -r})
    return expr


class ScalarPrinter:
    r"""Python source of a scalar sympy expression over the namespace ``xp``.

    Parameters
    ----------
    names : dict of sympy Symbol to str
        Source of each free symbol (``{z: "z"}``, ``{alpha: "P['alpha']"}``).
    like : str, optional
        An array expression whose shape and dtype constants take inside
        ``xp.where`` (the activation's argument).

    Raises
    ------
    NotDifferentiableError
        For a function with no array counterpart (an undefined :math:`\\sigma`).
    """

    def __init__(self, names: dict[sp.Basic, str], like: str | None = None) -> None:
        self.names = names
        self.like = like

    def __call__(self, expr: Any) -> str:
        """The source of ``expr``."""
        return self.print(sp.sympify(expr))

    def print(self, expr: sp.Basic) -> str:
        """The source of ``expr`` (recursive)."""
        if expr in self.names:
            return self.names[expr]
        if isinstance(expr, sp.logic.boolalg.BooleanTrue):
            return "True"
        if isinstance(expr, sp.logic.boolalg.BooleanFalse):
            return "False"
        if expr.is_number:
            value = complex(expr.evalf(30))
            if value.imag or value.real != value.real:
                raise NotDifferentiableError(f"the constant {expr} is not a real number")
            if value.real in (math.inf, -math.inf):  # a vacuous bound: gamma of an unbounded derivative
                return "float('inf')" if value.real > 0 else "float('-inf')"
            return repr(float(value.real))
        if isinstance(expr, sp.Add):
            return self._sum(expr)
        if isinstance(expr, sp.Mul):
            if expr.args[0] == -1:  # -u: a negation, not a product with -1.0
                return f"(-{self.print(-expr)})"
            numerator, denominator = [], []
            for factor in expr.args:
                if isinstance(factor, sp.Pow) and factor.exp.is_number and factor.exp < 0:
                    denominator.append(self.print(sp.Pow(factor.base, -factor.exp)))
                else:
                    numerator.append(self.print(factor))
            top = " * ".join(numerator) if numerator else "1.0"
            return f"({top})" if not denominator else f"({top} / ({' * '.join(denominator)}))"
        if isinstance(expr, sp.Pow):
            base, exponent = expr.args
            if exponent == sp.S.Half:
                return f"xp.sqrt({self.print(base)})"
            if exponent.is_Integer:
                k = int(exponent)
                if k < 0:
                    return f"(1.0 / {self.print(sp.Pow(base, -k))})"
                return f"({self.print(base)} ** {k})"
            return f"xp.pow({self.print(base)}, {self.print(exponent)})"
        if isinstance(expr, sp.Max | sp.Min):
            function = "xp.maximum" if isinstance(expr, sp.Max) else "xp.minimum"
            result = self._array(expr.args[0])
            for arg in expr.args[1:]:
                result = f"{function}({result}, {self._array(arg)})"
            return result
        if isinstance(expr, sp.erf):
            return f"_special(xp, 'erf')({self.print(expr.args[0])})"
        if isinstance(expr, sp.Heaviside):
            arg = self.print(expr.args[0])
            return self._where(f"({arg} > 0)", "1.0", self._where(f"({arg} < 0)", "0.0", "0.5"))
        if isinstance(expr, sp.Piecewise):
            return self._piecewise(expr)
        if type(expr) in _RELATIONS:
            return f"({self.print(expr.lhs)} {_RELATIONS[type(expr)]} {self.print(expr.rhs)})"
        if isinstance(expr, sp.And | sp.Or):
            function = "xp.logical_and" if isinstance(expr, sp.And) else "xp.logical_or"
            result = self.print(expr.args[0])
            for arg in expr.args[1:]:
                result = f"{function}({result}, {self.print(arg)})"
            return result
        if isinstance(expr, sp.Not):
            return f"xp.logical_not({self.print(expr.args[0])})"
        known = _FUNCTIONS.get(type(expr))
        if known is not None:
            return f"{known}({self.print(expr.args[0])})"
        raise NotDifferentiableError(
            f"cannot evaluate {expr} numerically: {type(expr).__name__} has no array counterpart "
            "(an undefined function such as a generic sigma is for symbolic derivations only)"
        )

    def _sum(self, expr: sp.Add) -> str:
        """``(a + b - c)``: a term with a negative coefficient is subtracted.

        Not multiplied by -1.0 and added: one array operation less in ``1 - y**2`` and
        ``y (1 - y)``, the derivatives of tanh and the logistic function, which run at every step
        of every pullback. The result is the same to the bit (negation is exact).
        """
        plus, minus = [], []
        for term in expr.args:
            coefficient = term.as_coeff_Mul()[0]
            if coefficient.is_number and coefficient.is_extended_negative:
                minus.append(self.print(-term))
            else:
                plus.append(self.print(term))
        if not plus:
            return "(-" + " - ".join(minus) + ")"
        return "(" + " + ".join(plus) + "".join(f" - {m}" for m in minus) + ")"

    def _array(self, expr: sp.Basic) -> str:
        code = self.print(expr)
        if expr.is_number and self.like is not None:
            return f"xp.full_like({self.like}, {code})"
        return code

    def _where(self, condition: str, a: str, b: str) -> str:
        like = self.like or "None"
        return f"_where(xp, {condition}, {a}, {b}, {like})"

    def _piecewise(self, expr: sp.Piecewise) -> str:
        variables = [s for s in expr.free_symbols if s in self.names]
        clamp = len(variables) == 1 and expr.free_symbols == set(variables)
        variable = variables[0] if clamp else None
        earlier: list[Any] = []
        branches: list[tuple[str, str]] = []
        for value, condition in expr.args:
            active = sp.And(condition, *(sp.Not(c) for c in earlier)) if earlier else condition
            mask = self.print(active) if active is not sp.true else "True"
            if clamp and mask != "True":
                point = _point_inside(active, variable)
                if point is not None:
                    moved = f"_where(xp, {mask}, {self.names[variable]}, {point!r}, {self.names[variable]})"
                    inner = ScalarPrinter({**self.names, variable: moved}, self.like)
                    branches.append((mask, inner.print(value)))
                    earlier.append(condition)
                    continue
            branches.append((mask, self.print(value)))
            earlier.append(condition)
        result = branches[-1][1]
        for mask, value in reversed(branches[:-1]):
            result = self._where(mask, value, result)
        return result


def _point_inside(condition: sp.Basic, variable: sp.Symbol) -> float | None:
    """A number where ``condition`` holds: near the constants it compares with, or 0."""
    constants = {0.0}
    for relation in condition.atoms(sp.core.relational.Relational):
        for side in (relation.lhs, relation.rhs):
            if side.is_number:
                constants.add(float(side))
    candidates = sorted({c + d for c in constants for d in (0.0, -1.0, 1.0, -0.5, 0.5, -2.0, 2.0)})
    for candidate in sorted(candidates, key=abs):
        if bool(condition.subs(variable, candidate)):
            return candidate
    return None
