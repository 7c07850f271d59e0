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

__all__ = ["TextPrinter", "to_text"]


class TextPrinter(StrPrinter):  # type: ignore[misc]
    """sympy's StrPrinter with gradflow's nodes and textbook conventions."""

    # Not "_sympystr": gradflow's nodes define that for plain str(), and
    # sympy would call it before any _print_<Class> method here.
    printmethod = "_gradflow_text"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__({"order": "none", **(settings or {})})

    def _product_factor(self, arg: sp.Basic) -> str:
        text = self._print(arg)
        if isinstance(arg, sp.MatAdd | sp.HadamardProduct | sp.KroneckerProduct) or (
            not isinstance(arg, sp.MatrixExpr) and isinstance(arg, sp.Add)
        ):
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
        text = ""
        for i, term in enumerate(expr.args):
            piece = self._print(term)
            if i and piece.startswith("-"):
                text += " - " + piece[1:]
            elif i:
                text += " + " + piece
            else:
                text = piece
        return text

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        return " ∘ ".join(
            f"({self._print(a)})" if isinstance(a, sp.MatAdd | sp.MatMul) else self._print(a)
            for a in expr.args
        )

    def _print_KroneckerProduct(self, expr: sp.KroneckerProduct) -> str:
        return " ⊗ ".join(self._product_factor(a) for a in expr.args)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        return f"{self._product_factor(expr.arg)}ᵀ"

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
