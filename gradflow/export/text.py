r"""A plain-text printer in textbook notation, for terminals and logs.

``h^(t-1)`` for a signal at a time, juxtaposition for matrix products,
``∘`` for the Hadamard product, ``diag(·)``, ``σ'`` as ``sigmoid'``, and the
terms in the order the equations wrote them (sympy's default printer sorts
them and writes ``HadamardProduct(...)``).
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.str import StrPrinter

from gradflow.cells.expr import Concat, Elementwise, Signal
from gradflow.symbolic.jacobian import Diag

__all__ = ["TextPrinter", "derivation_to_text", "relation_to_text", "signed_sum", "to_text"]


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
        time = sp.sstr(expr.time).replace(" ", "")
        return f"{expr.name}^({time})"

    def _print_Elementwise(self, expr: Elementwise) -> str:
        return f"{expr.activation.name}({self._print(expr.arg)})"

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
        parts = [self._product_factor(a) for a in args if a != 1]
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
        return f"{self._product_factor(expr.vector)}[{sp.sstr(start)}:{sp.sstr(start + size)}]"

    def _print_Adjoint(self, expr: Any) -> str:
        time = sp.sstr(expr.signal.time).replace(" ", "")
        if expr.total:
            mark = {"truncated": "[τ]", "randomized": "[ξ]"}.get(expr.variant, "")
            return f"δ{mark}_{expr.signal.name}^({time})"
        return f"∂⁺L/∂{expr.signal.name}^({time})"

    def _print_Chain(self, expr: Any) -> str:
        from gradflow.symbolic.nodes import BOUND_T

        lower, upper = sp.sstr(expr.lower), sp.sstr(expr.upper)
        clash = any(s.name == "t" for s in (expr.lower.free_symbols | expr.upper.free_symbols))
        var = sp.Symbol("k", integer=True) if clash else sp.Symbol("t", integer=True)
        bound = f"{lower}≤{var}<{upper}" if expr.backward else f"{lower}<{var}≤{upper}"
        return f"∏_{{{bound}}} [{self._print(expr.bound_factor.xreplace({BOUND_T: var}))}]"

    def _print_PathSum(self, expr: Any) -> str:
        return f"∂s^({sp.sstr(expr.args[1])})/∂s^({sp.sstr(expr.args[0])})"

    def _print_Partial(self, expr: Any) -> str:
        mark = "∂" if expr.total else "∂⁺"
        return f"{mark}{self._print(expr.numerator)}/∂{self._print(expr.denominator)}"

    def _print_MatSum(self, expr: Any) -> str:
        index, lower, upper = expr.limits
        return f"Σ_{{{index}={sp.sstr(lower)}}}^{{{sp.sstr(upper)}}} [{self._print(expr.summand)}]"

    def _print_Norm(self, expr: Any) -> str:
        p = "" if expr.p == 2 else f"_{sp.sstr(expr.p)}"
        return f"‖{self._print(expr.arg)}‖{p}"

    def _print_Unit(self, expr: Any) -> str:
        text = self._print(expr.vector)
        return f"{text}_k" if isinstance(expr.vector, Signal | sp.MatrixSymbol) else f"({text})_k"

    def _print_UnitMax(self, expr: Any) -> str:
        return f"max_k({self._print(expr.expr)})"

    def _print_BlockBound(self, expr: Any) -> str:
        return ("β̄" if expr.gamma_form else "β") + "_{" + ",".join(expr.block) + "}"

    def _print_UnitRate(self, expr: Any) -> str:
        base = expr.name.rstrip("'")
        return {"rho": "ρ", "rhobar": "ρ̄"}.get(base, base) + expr.name[len(base) :] + "_k"

    def _print_MatPow(self, expr: sp.MatPow) -> str:
        return f"{self._product_factor(expr.base)}^({sp.sstr(expr.exp)})"

    def _print_Identity(self, expr: sp.Identity) -> str:
        return "I"

    def _print_ZeroMatrix(self, expr: sp.ZeroMatrix) -> str:
        return "0"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        return "1"


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
    if isinstance(relation, sp.core.relational.Relational):
        op = _RELATIONS.get(relation.rel_op, relation.rel_op)
        return f"{to_text(relation.lhs)} {op} {to_text(relation.rhs)}"
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
