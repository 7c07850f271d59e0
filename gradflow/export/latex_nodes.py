r"""The LaTeX of derivations' own nodes: chains, sums over time, norms, adjoints, Hochreiter's error signals.

:class:`DerivationLatexPrinter` is the part of gradflow's
:class:`~gradflow.export.latex.LatexPrinter` that prints what the symbolic layer
builds on top of a cell's equations -- :math:`\prod_{j<t\le i}`,
:math:`\sum_{t=1}^{T}`, :math:`\lVert\cdot\rVert_2`, :math:`\delta_{h}^{(t)}`,
:math:`\partial^{+}`, :math:`\vartheta_{j}(t)` -- and the compact time indices
(:math:`t-1`, :math:`T+t-i`) every node shares.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter as SympyLatexPrinter
from sympy.printing.precedence import PRECEDENCE

from gradflow.cells.expr import Elementwise, Signal
from gradflow.export.names import latex_name, name_parts
from gradflow.symbolic.bound_nodes import BlockBound, Unit, UnitMax, UnitRate
from gradflow.symbolic.bptt import PathSum
from gradflow.symbolic.hochreiter import ErrorSignal, OpaqueDerivative
from gradflow.symbolic.nodes import BOUND_T, Adjoint, Chain, MatSum, Norm, Partial, Rows

__all__ = ["WRAP", "DerivationLatexPrinter"]

#: Products whose factors a juxtaposed product must wrap in parentheses.
WRAP = (sp.MatAdd, sp.HadamardProduct, sp.KroneckerProduct)


def _time_order(term: sp.Basic) -> int:
    """The order of the terms of a time: T, then t, then other symbols, numbers last."""
    if term.is_number:
        return 3
    names = {symbol.name for symbol in term.free_symbols}
    return 0 if "T" in names else 1 if "t" in names else 2


class DerivationLatexPrinter(SympyLatexPrinter):  # type: ignore[misc]
    """sympy's LatexPrinter with the nodes of gradflow's derivations (see the module)."""

    def _time(self, time: sp.Basic) -> str:
        """A time index, compact and in reading order: ``t-1``, ``t-q``, ``T+t-i``."""
        time = sp.expand(time)
        if not isinstance(time, sp.Add):
            return str(self._print(time)).replace(" ", "")
        text = ""
        for term in sorted(time.args, key=_time_order):
            piece = str(self._print(term)).replace(" ", "")
            text += piece if not text or piece.startswith("-") else "+" + piece
        return text

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        indices = ",".join(self._time(index) for index in expr.indices)
        return f"{self._print(expr.base.label)}_{{{indices}}}"

    def _print_Partial(self, expr: Partial) -> str:
        mark = r"\partial" if expr.total else r"\partial^{+}"
        return rf"\frac{{{mark} {self._print(expr.numerator)}}}{{\partial {self._print(expr.denominator)}}}"

    def _print_Adjoint(self, expr: Any, extra: str = "") -> str:
        if not isinstance(expr, Adjoint):  # sympy's own Adjoint (conjugate transpose)
            return str(super()._print_Adjoint(expr))
        signal = expr.signal
        if not expr.total:
            return rf"\frac{{\partial^{{+}} L}}{{\partial {self._print(signal)}}}"
        mark = {"truncated": r",\tau", "randomized": r",\xi"}.get(expr.variant, "")
        label, bracket = name_parts(signal.name)
        return rf"\delta_{{{label}{mark}}}^{{{bracket}({self._time(signal.time)}){extra}}}"

    def _print_Rows(self, expr: Rows) -> str:
        start, size = expr.args[1], expr.args[2]
        first, last = self._print(start + 1), self._print(start + size)
        return rf"\left[{self._print(expr.vector)}\right]_{{{first}:{last}}}"

    def _bound_variable(self, lower: sp.Basic, upper: sp.Basic) -> sp.Symbol:
        clash = any(s.name == "t" for s in (lower.free_symbols | upper.free_symbols))
        return sp.Symbol("k" if clash else "t", integer=True)

    def _print_Chain(self, expr: Chain) -> str:
        var = self._bound_variable(expr.lower, expr.upper)
        lower, upper, name = self._time(expr.lower), self._time(expr.upper), self._print(var)
        bound = rf"{lower}\le {name}<{upper}" if expr.backward else rf"{lower}<{name}\le {upper}"
        factor = expr.bound_factor.xreplace({BOUND_T: var})
        text = self._print(factor)
        if isinstance(factor, WRAP):
            text = rf"\left({text}\right)"
        return rf"\prod_{{{bound}}} {text}"

    def _print_PathSum(self, expr: PathSum) -> str:
        lower, upper, pairs, weight = expr.args
        var = self._bound_variable(lower, upper)
        scale = "" if weight == 1 else self._print(weight.xreplace({BOUND_T: var})) + " "
        delays = ",".join(str(d) for d, _ in pairs)
        step = rf"\frac{{\partial s^{{({var})}}}}{{\partial s^{{({var}-d)}}}}"
        return (
            rf"\sum_{{p\in\mathcal{{P}}_{{{self._print(lower)}\to {self._print(upper)}}}^{{\{{{delays}\}}}}}} "
            rf"\prod_{{({var},d)\in p}} {scale}{step}"
        )

    def _print_MatSum(self, expr: MatSum) -> str:
        index, lower, upper = expr.limits
        summand = self._print(expr.summand)
        if isinstance(expr.summand, sp.MatAdd):
            summand = rf"\left({summand}\right)"
        return rf"\sum_{{{self._print(index)}={self._print(lower)}}}^{{{self._print(upper)}}} {summand}"

    def _print_Norm(self, expr: Norm) -> str:
        p = expr.p
        sub = r"\infty" if p == sp.oo else (p.name if hasattr(p, "name") else self._print(p))
        return rf"\left\lVert {self._print(expr.arg)} \right\rVert_{{{sub}}}"

    def _print_Unit(self, expr: Unit) -> str:
        vector = expr.vector
        if isinstance(vector, Signal | sp.MatrixSymbol):
            label, bracket = name_parts(vector.name, bool(self._settings.get("bold_vectors")))
            if "_" not in label and "^" not in label:  # z_{k}^{(t)}: the unit below, the time above
                time = f"({self._time(vector.time)})" if isinstance(vector, Signal) else ""
                return f"{label}_{{k}}" + (f"^{{{bracket}{time}}}" if bracket or time else "")
            return f"{{{self._print(vector)}}}_{{k}}"
        text = self._print(vector)
        if isinstance(vector, Elementwise) and text.endswith(r"\right)"):
            return f"{text}_{{k}}"
        return rf"\left({text}\right)_{{k}}"

    def _print_UnitMax(self, expr: UnitMax) -> str:
        return rf"\max_{{k}} \left({self._print(expr.expr)}\right)"

    def _print_UnitRate(self, expr: UnitRate) -> str:
        base = expr.name.rstrip("'")
        symbol = {"rho": r"\rho", "rhobar": r"\bar{\rho}"}.get(base, self._print(sp.Symbol(base)))
        return f"{symbol}{expr.name[len(base) :]}_{{k}}"

    def _print_BlockBound(self, expr: BlockBound) -> str:
        symbol = r"\bar{\beta}" if expr.gamma_form else r"\beta"
        return f"{symbol}_{{{','.join(latex_name(name) for name in expr.block)}}}"

    def _print_Product(self, expr: sp.Product) -> str:
        if len(expr.limits) == 1 and not expr.limits[0][1].is_number:  # prod_{j<t<=i}, as the chains
            var, lower, upper = expr.limits[0]
            below = self._time(lower - 1)
            term = self.parenthesize(expr.function, PRECEDENCE["Mul"])
            return rf"\prod_{{{below}<{self._print(var)}\le {self._time(upper)}}} {term}"
        return str(super()._print_Product(expr))

    def _print_ErrorSignal(self, expr: ErrorSignal) -> str:
        unit, time = expr.args
        return rf"\vartheta_{{{self._print(unit)}}}\left({self._time(time)}\right)"

    def _print_OpaqueDerivative(self, expr: OpaqueDerivative) -> str:
        unit, time = expr.args
        unit_tex = self._print(unit)
        return rf"f'_{{{unit_tex}}}\left(\mathrm{{net}}_{{{unit_tex}}}\left({self._time(time)}\right)\right)"
