r"""A plain-text printer in textbook notation, for terminals and logs.

``h^(t-1)`` for a signal at a time, juxtaposition for products (of matrices
and of numbers alike), ``∘`` for the Hadamard product, ``diag(·)``, ``σ'`` as
``sigmoid'``, Greek letters as themselves (``γ``, ``γ_σ``, ``α``, ``τ``,
``Δt``), ``x²`` and ``(γ ‖W_h‖)^(i - j)`` for powers, ``√(·)``, ``|·|``,
``min(·, ·)``, ``∏_{j<t≤i} [·]`` and ``Σ_{t=1}^{T} [·]``, ``‖·‖_∞``, block
matrices as ``[A, B; C, D]``, and the terms in the order the equations wrote
them. Nothing of sympy's own ``str`` (``**``, ``*``, ``Product(``,
``Matrix([``, ``gamma``) reaches the output.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy.printing.str import StrPrinter

from gradflow.cells.expr import Concat, Elementwise, Signal
from gradflow.symbolic.bptt import xi
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Norm

__all__ = ["TextPrinter", "derivation_to_text", "relation_to_text", "signed_sum", "text_name", "to_text"]

#: The name sympy gives the left-hand side of a parameter gradient (gradflow.symbolic.bptt).
_GRADIENT_SYMBOL = re.compile(r"\\frac\{\\partial L\}\{\\partial (.+)\}\Z")
#: Bases printed without parentheses under a power: ‖W_h‖², |α|², tanh(x)².
_ATOMIC = (sp.Abs, sp.Function, Norm, sp.MatrixSymbol, Signal)
_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
#: Names whose text is not their Greek letter: Δt, and the activations in a γ's subscript.
_SPECIAL = {"dt": "Δt", "sigmoid": "σ"}


@lru_cache(maxsize=512)
def _greek(word: str) -> str | None:
    """``gamma`` -> ``γ``, ``Delta`` -> ``Δ``; None for a word that is not a Greek letter's name."""
    if not word.isalpha() or word in ("omicron",):
        return None
    if word == "vartheta":
        return "ϑ"
    case = "CAPITAL" if word[0].isupper() else "SMALL"
    spelled = word.lower().replace("lambda", "lamda").removeprefix("var")
    try:
        return unicodedata.lookup(f"GREEK {case} LETTER {spelled.upper()}")
    except KeyError:
        return None


def text_name(name: str) -> str:
    """A symbol's name in plain text: Greek letters as themselves, ``gamma_sigmoid`` as ``γ_σ``.

    Examples
    --------
    >>> [text_name(n) for n in ("gamma", "gamma_sigmoid", "alpha", "dt", "tau", "W_h", "theta_1")]
    ['γ', 'γ_σ', 'α', 'Δt', 'τ', 'W_h', 'θ_1']
    """
    head, sep, tail = name.partition("_")
    head_text = _SPECIAL.get(head) or _greek(head) or head
    if not sep:
        return head_text
    return f"{head_text}_{_SPECIAL.get(tail) or _greek(tail) or tail}"


def signed_sum(pieces: list[str]) -> str:
    """Printed terms joined in their order: ``a + b``, and ``a - b`` for a term printed ``-b``."""
    text = pieces[0] if pieces else ""
    for piece in pieces[1:]:
        text += " - " + piece[1:] if piece.startswith("-") else " + " + piece
    return text


class TextPrinter(StrPrinter):  # type: ignore[misc]
    """sympy's StrPrinter with gradflow's nodes and textbook conventions."""

    # Not "_sympystr": gradflow's nodes define that for plain str(), and
    # sympy would call it before any _print_<Class> method here.
    printmethod = "_gradflow_text"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__({"order": "none", **(settings or {})})

    def _product_factor(self, arg: sp.Basic) -> str:
        text = self._print(arg)
        if (
            isinstance(arg, sp.MatAdd | sp.HadamardProduct | sp.KroneckerProduct | sp.Transpose)
            and not (isinstance(arg, sp.Transpose) and isinstance(arg.arg, sp.MatrixSymbol | Signal))
        ) or (not isinstance(arg, sp.MatrixExpr) and isinstance(arg, sp.Add)):
            return f"({text})"
        return text

    def _print_Signal(self, expr: Signal) -> str:
        return f"{text_name(expr.name)}^({self._index(expr.time).replace(' ', '')})"

    def _print_Elementwise(self, expr: Elementwise) -> str:
        return f"{_greek(expr.activation.name) or expr.activation.name}({self._print(expr.arg)})"

    def _print_Concat(self, expr: Concat) -> str:
        return "[" + "; ".join(self._print(p) for p in expr.parts) + "]"

    def _print_Diag(self, expr: Diag) -> str:
        return f"diag({self._print(expr.vector)})"

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        args = list(expr.args)
        sign = ""
        if args and not isinstance(args[0], sp.MatrixExpr) and args[0].as_coeff_Mul()[0].is_negative:
            args[0] = -args[0]
            sign = "-"
        # a ones vector in a product broadcasts a scalar (b 𝟙) or sums a vector's entries (vᵀ 𝟙):
        # the double-struck one, as in print; a ones matrix elsewhere is the 1 of 1 - z
        parts = ["𝟙" if isinstance(a, sp.OneMatrix) else self._product_factor(a) for a in args if a != 1]
        return sign + " ".join(parts)

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        return signed_sum([self._print(term) for term in expr.args])

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        return " ∘ ".join(
            f"({self._print(a)})" if isinstance(a, sp.MatAdd | sp.MatMul) else self._print(a)
            for a in expr.args
        )

    def _print_KroneckerProduct(self, expr: sp.KroneckerProduct) -> str:
        return " ⊗ ".join(self._product_factor(a) for a in expr.args)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        return f"{self._product_factor(expr.arg)}ᵀ"

    def _print_Rows(self, expr: Any) -> str:
        start, size = expr.args[1], expr.args[2]
        return f"{self._product_factor(expr.vector)}[{self._index(start)}:{self._index(start + size)}]"

    def _print_Adjoint(self, expr: Any) -> str:
        time = self._index(expr.signal.time).replace(" ", "")
        if expr.total:
            mark = {"truncated": "τ", "randomized": "ξ"}.get(expr.variant)  # as the LaTeX: δ_{h,τ}
            name = expr.signal.name
            return f"δ_{{{name},{mark}}}^({time})" if mark else f"δ_{name}^({time})"
        return f"∂⁺L/∂{expr.signal.name}^({time})"

    def _print_Chain(self, expr: Any) -> str:
        from gradflow.symbolic.nodes import BOUND_T

        lower, upper = self._index(expr.lower), self._index(expr.upper)
        clash = any(s.name == "t" for s in (expr.lower.free_symbols | expr.upper.free_symbols))
        var = sp.Symbol("k", integer=True) if clash else sp.Symbol("t", integer=True)
        bound = f"{lower}≤{var}<{upper}" if expr.backward else f"{lower}<{var}≤{upper}"
        return f"∏_{{{bound}}} [{self._print(expr.bound_factor.xreplace({BOUND_T: var}))}]"

    def _print_PathSum(self, expr: Any) -> str:
        return f"∂s^({self._index(expr.args[1])})/∂s^({self._index(expr.args[0])})"

    def _print_Partial(self, expr: Any) -> str:
        mark = "∂" if expr.total else "∂⁺"
        return f"{mark}{self._print(expr.numerator)}/∂{self._print(expr.denominator)}"

    def _print_MatSum(self, expr: Any) -> str:
        index, lower, upper = expr.limits
        return f"Σ_{{{self._index(index)}={self._index(lower)}}}^{{{self._index(upper)}}} [{self._print(expr.summand)}]"

    def _print_Norm(self, expr: Any) -> str:
        p = "" if expr.p == 2 else f"_{self._print(expr.p)}"
        return f"‖{self._print(expr.arg)}‖{p}"

    def _print_Unit(self, expr: Any) -> str:
        text = self._print(expr.vector)
        simple = isinstance(expr.vector, Signal) or (
            isinstance(expr.vector, sp.MatrixSymbol) and "_" not in text
        )
        return f"{text}_k" if simple else f"({text})_k"

    def _print_UnitMax(self, expr: Any) -> str:
        return f"max_k({self._print(expr.expr)})"

    def _print_BlockBound(self, expr: Any) -> str:
        return ("β̄" if expr.gamma_form else "β") + "_{" + ",".join(expr.block) + "}"

    def _print_UnitRate(self, expr: Any) -> str:
        base = expr.name.rstrip("'")
        return {"rho": "ρ", "rhobar": "ρ̄"}.get(base, base) + expr.name[len(base) :] + "_k"

    def _print_MatPow(self, expr: sp.MatPow) -> str:
        return self._power(self._product_factor(expr.base), expr.exp)

    # -- scalars ---------------------------------------------------------------

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        gradient = _GRADIENT_SYMBOL.match(expr.name)
        if gradient:  # parameter_gradient's left-hand side
            return f"∂L/∂{text_name(gradient.group(1))}"
        if "\\" in expr.name or "{" in expr.name:  # a name written in LaTeX (the classics' sets, index lists)
            return _plain_latex(expr.name)
        return text_name(expr.name)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        return text_name(expr.name)

    def _print_Inverse(self, expr: Any) -> str:
        return f"{self._product_factor(expr.arg)}⁻¹"

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        """d2l's and Hochreiter's subscripts: ``h_t``, ``h_{t-1}``, ``w_{l_{m-1} l_m}``."""
        indices = [self._index(index).replace(" ", "") for index in expr.indices]
        inner = " ".join(indices)
        base = self._print(expr.base.label)
        return f"{base}_{inner}" if len(indices) == 1 and len(inner) == 1 else f"{base}_{{{inner}}}"

    def _print_ErrorSignal(self, expr: Any) -> str:
        unit, time = expr.args
        return f"ϑ{_subscript(self._print(unit))}({self._index(time)})"

    def _print_OpaqueDerivative(self, expr: Any) -> str:
        unit, time = expr.args
        name = _subscript(self._print(unit))
        return f"f'{name}(net{name}({self._index(time)}))"

    def _print_Infinity(self, expr: Any) -> str:
        return "∞"

    def _print_NegativeInfinity(self, expr: Any) -> str:
        return "-∞"

    def _scalar_factor(self, arg: sp.Basic) -> str:
        """A factor of a scalar product, in parentheses when a sum or a negative number."""
        text = self._print(arg)
        if (
            isinstance(arg, sp.Add)
            or (arg.is_number and arg.is_negative)
            or (isinstance(arg, sp.Rational) and not arg.is_Integer)
        ):
            return f"({text})"
        return text

    def _print_Mul(self, expr: sp.Mul) -> str:
        r"""Juxtaposition: numbers, then parenthesized factors, then the rest; a quotient for negative powers.

        ``(1 - α) γ``, never ``γ (1 - α)``, which reads as a call.
        """
        if expr.could_extract_minus_sign():
            positive = -expr
            text = self._print(positive)
            return f"-({text})" if isinstance(positive, sp.Add) else f"-{text}"
        numerator, denominator = [], []
        for factor in sp.Mul.make_args(expr):
            if factor.is_Pow and factor.exp.is_number and factor.exp.is_negative:
                denominator.append(factor.base ** (-factor.exp))
            elif factor.is_Rational and not factor.is_Integer:
                if factor.p != 1:
                    numerator.append(sp.Integer(factor.p))
                denominator.append(sp.Integer(factor.q))
            else:
                numerator.append(factor)
        numbers = [f for f in numerator if f.is_number]
        grouped = [f for f in numerator if not f.is_number and (isinstance(f, sp.Add) or _grouped_power(f))]
        rest = [f for f in numerator if not f.is_number and f not in grouped]
        text = " ".join(self._scalar_factor(f) for f in [*numbers, *grouped, *rest]) or "1"
        if not denominator:
            return text
        below = " ".join(self._scalar_factor(f) for f in denominator)
        return f"{text}/{below if len(denominator) == 1 else '(' + below + ')'}"

    def _power(self, base: str, exp: sp.Basic) -> str:
        if exp.is_Integer and 2 <= int(exp) <= 9:
            return base + str(int(exp)).translate(_SUPERSCRIPTS)
        exponent = self._print(sp.factor_terms(exp))
        return f"{base}^{exponent}" if isinstance(exp, sp.Symbol | sp.Integer) else f"{base}^({exponent})"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.base, expr.exp
        if exp == sp.S.Half:
            return f"√({self._print(base)})" if not base.is_Atom else f"√{self._print(base)}"
        if exp.is_number and exp.is_negative:
            return f"1/{self._scalar_factor(base ** (-exp))}"
        text = self._print(base)
        if not (base.is_Atom and not base.is_negative) and not isinstance(base, _ATOMIC):
            text = f"({text})"
        return self._power(text, exp)

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"{expr.p}/{expr.q}" if expr.q != 1 else str(expr.p)

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"|{self._print(expr.args[0])}|"

    def _print_Min(self, expr: sp.Min) -> str:
        return "min(" + ", ".join(self._index(a) for a in expr.args) + ")"

    def _print_Max(self, expr: sp.Max) -> str:
        return "max(" + ", ".join(self._index(a) for a in expr.args) + ")"

    def _index(self, expr: sp.Basic) -> str:
        """A time, a bound or a limit with the symbols first, as written by hand: ``t - 1``, ``j + 1``."""
        if not isinstance(expr, sp.Expr):
            return self._print(expr)
        expr = sp.expand(expr)
        if isinstance(expr, sp.Add):
            terms = sorted(
                expr.args,
                key=lambda term: (term.is_number, term.could_extract_minus_sign(), sp.default_sort_key(term)),
            )
            return signed_sum([self._print(term) for term in terms])
        return self._print(expr)

    def _print_Add(self, expr: sp.Add, order: Any = None) -> str:
        """The terms in the equation's order, a leading negative number moved last (``α - 1``, not ``-1 + α``)."""
        terms = list(expr.args)
        if len(terms) > 1 and terms[0].is_number and terms[0].is_negative:
            terms = [*terms[1:], terms[0]]
        if terms and terms[0].could_extract_minus_sign():  # a positive term first: h - h̃, not -h̃ + h
            first = next((k for k, term in enumerate(terms) if not term.could_extract_minus_sign()), None)
            if first is not None:
                terms.insert(0, terms.pop(first))
        return signed_sum([self._print(term) for term in terms])

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """``{g if ‖g‖ ≤ θ; θ g/‖g‖ otherwise}``."""
        pieces = []
        for value, condition in expr.args:
            when = "otherwise" if condition == sp.true else f"if {self._print_condition(condition)}"
            pieces.append(f"{self._print(value)} {when}")
        return "{" + "; ".join(pieces) + "}"

    def _print_condition(self, condition: Any) -> str:
        return self._print(condition)

    def _print_Relational(self, expr: Any) -> str:
        """``lhs = rhs``, ``lhs ≤ rhs``; a chain ``a = b = c`` where the right side is itself an equation."""
        op = _RELATIONS.get(expr.rel_op, expr.rel_op)
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_UnevaluatedExpr(self, expr: sp.UnevaluatedExpr) -> str:
        """A factor kept as written (``π (1/π)``): parenthesized where it is a sum or a quotient."""
        arg = expr.args[0]
        text = self._print(arg)
        grouped = isinstance(arg, sp.Add) or (arg.is_Pow and arg.exp.is_number and arg.exp.is_negative)
        return f"({text})" if grouped else text

    def _print_Function(self, expr: Any) -> str:
        if expr.func == xi:  # Tallec and Ollivier's random weight of step k
            index = self._index(expr.args[0])
            return f"ξ_{index}" if len(index) == 1 else f"ξ_{{{index}}}"
        if expr.func == sp.Function("E"):  # an expectation
            return f"E[{self._print(expr.args[0])}]"
        return f"{text_name(type(expr).__name__)}(" + ", ".join(self._index(a) for a in expr.args) + ")"

    def _limits(self, limits: tuple[Any, ...]) -> str:
        var, lower, upper = limits
        before = lower - 1
        if len(before.free_symbols) > 0 and sp.count_ops(before) < sp.count_ops(lower):
            return f"_{{{self._index(before)}<{self._print(var)}≤{self._index(upper)}}}"
        return f"_{{{self._print(var)}={self._index(lower)}}}^{{{self._index(upper)}}}"

    def _print_Product(self, expr: sp.Product) -> str:
        return f"∏{self._limits(expr.limits[0])} [{self._print(expr.function)}]"

    def _print_Sum(self, expr: sp.Sum) -> str:
        return f"Σ{self._limits(expr.limits[0])} [{self._print(expr.function)}]"

    def _print_MatrixBase(self, expr: Any) -> str:
        rows = [", ".join(self._print(expr[i, j]) for j in range(expr.cols)) for i in range(expr.rows)]
        return "[" + "; ".join(rows) + "]"

    def _print_BlockMatrix(self, expr: Any) -> str:
        return self._print_MatrixBase(expr.blocks)

    def _print_Identity(self, expr: sp.Identity) -> str:
        return "I"

    def _print_ZeroMatrix(self, expr: sp.ZeroMatrix) -> str:
        return "0"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        return "1"


#: LaTeX that symbol names may hold, in plain text.
_LATEX_TEXT = (
    (r"\dots", "…"),
    (r"\forall", "∀"),
    (r"\{", "{"),
    (r"\}", "}"),
    (r"\,", " "),
    (r"\ ", " "),
)


def _subscript(text: str) -> str:
    """``_j``, or ``_{l_m}`` for a subscript of more than one character."""
    return f"_{text}" if len(text) == 1 else f"_{{{text}}}"


def _plain_latex(name: str) -> str:
    r"""A name written in LaTeX as plain text: ``l_{1},\dots,l_{q-1}`` -> ``l_1, …, l_{q-1}``."""
    for latex, text in _LATEX_TEXT:
        name = name.replace(latex, text)
    name = re.sub(r"\\mathrm\{([^}]*)\}", r"\1", name)
    name = re.sub(r"_\{(\w)\}", r"_\1", name)
    name = re.sub(r",(?=\S)", ", ", name)
    return re.sub(r"\s+", " ", name).strip()


def _grouped_power(factor: sp.Basic) -> bool:
    """A power whose base is printed in parentheses, ``(γ ‖W_h‖)^(i - j)``: it goes first in a product."""
    return bool(factor.is_Pow and isinstance(factor.base, sp.Add | sp.Mul) and factor.exp != sp.S.Half)


def to_text(expr: sp.Basic) -> str:
    """Print ``expr`` in textbook plain text (see :class:`TextPrinter`).

    Examples
    --------
    >>> import gradflow as gf
    >>> print(to_text(gf.cells.gru().updates["h"]))
    z^(t) ∘ h^(t-1) + (1 - z^(t)) ∘ h_tilde^(t)
    """
    return TextPrinter().doprint(expr)  # type: ignore[no-any-return]


_RELATIONS = {"==": "=", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def relation_to_text(relation: sp.Basic) -> str:
    """An equation or inequality as ``lhs = rhs`` / ``lhs ≤ rhs``; anything else as :func:`to_text`."""
    return to_text(relation)


def derivation_to_text(derivation: Any) -> str:
    """A :class:`~gradflow.symbolic.derivation.Derivation` as plain text: one block per step.

    Examples
    --------
    >>> import gradflow as gf
    >>> print(derivation_to_text(gf.derive(gf.cells.elman())).splitlines()[4])
        h^(t) = tanh(W_h h^(t-1) + W_x x^(t) + b)
    """
    lines = [derivation.title, "=" * len(derivation.title), ""]
    for step in derivation.steps:
        lines.append(f"[{step.title}] {step.prose}")
        lines.append(f"    {relation_to_text(step.equation)}")
        if step.citation:
            lines.append(f"    ({step.citation})")
        lines.append("")
    if derivation.references:
        lines += ["References", *(f"- {ref}" for ref in derivation.references)]
    return "\n".join(lines)
