r"""Breaking long equations into lines, for ``align`` environments and Markdown.

A derivation's formulas can be wider than a page (an LSTM's step Jacobian,
its adjoint recursion). :func:`equation_lines` breaks the right-hand side of
an equation where a textbook would: before the ``+`` and ``-`` of a sum, also
inside the parentheses of a trailing factor or a :math:`\sum` (with
``\Bigl(``/``\Bigr)``, which may span lines), and never inside a function's
argument. Widths are estimated from the LaTeX (each command one character,
sub- and superscripts at their size), which is deterministic and good enough
to choose the breaks; a piece that cannot be broken stays whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.precedence import PRECEDENCE

from gradflow.export.latex import LatexPrinter, relation_parts
from gradflow.symbolic.nodes import MatSum

__all__ = ["EquationLines", "equation_lines", "visible_width"]

_COMMAND = re.compile(r"\\(left|right|Bigl|Bigr|operatorname|mathrm|mathbf|boldsymbol|text)\b|\\[,;:! ]")
_NAMED = re.compile(r"\\(?!frac\b)[A-Za-z]+")
_SCRIPT = re.compile(r"[_^]\{([^{}]*)\}")
_FRACTION = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")


def visible_width(tex: str) -> float:
    r"""An estimate of how wide ``tex`` prints, in characters of the body font.

    Examples
    --------
    >>> visible_width(r"\operatorname{diag}\left(f^{(t)}\right)")
    9.2
    """
    text = _NAMED.sub("x", _COMMAND.sub("", tex))
    previous = None
    while previous != text:  # innermost first: scripts print at about 70 %, a fraction as its wider part
        previous = text
        text = _SCRIPT.sub(lambda m: "~" * round(0.7 * len(m.group(1))), text)
        text = _FRACTION.sub(lambda m: "~" * max(len(m.group(1)), len(m.group(2))), text)
    text = text.replace("{", "").replace("}", "").replace(" ", "").replace("&", "")
    return round(len(text) * 1.0 + 0.2 * tex.count(r"\left"), 1)


@dataclass(frozen=True)
class EquationLines:
    r"""An equation laid out in lines: ``lhs op rhs[0]``, then one continuation per line.

    Attributes
    ----------
    lhs : str
        The left-hand side ("" for an expression that is not a relation).
    op : str
        The relation (``=``, ``\le``, ...; "" without one).
    rhs : tuple of str
        The right-hand side, line by line; every line after the first starts
        with its operator (``+ ...``) or continues an open ``\Bigl(``.
    """

    lhs: str
    op: str
    rhs: tuple[str, ...]


def _terms(expr: sp.Basic, printer: LatexPrinter) -> list[sp.Basic]:
    if isinstance(expr, sp.MatAdd):
        return list(expr.args)
    return list(printer._as_ordered_terms(expr, order=None))


def _join(pieces: list[list[str]], operators: list[str], width: float, breaking: str = "") -> list[str]:
    """Operands (each already in lines) joined by operators, packed greedily into lines.

    A line that starts with an operand whose operator is empty (juxtaposition) starts with ``breaking``.
    """
    lines: list[str] = []
    for operator, operand in zip(operators, pieces, strict=True):
        head = f"{operator} {operand[0]}" if operator else operand[0]
        if lines and len(operand) == 1 and visible_width(lines[-1]) + visible_width(head) <= width:
            lines[-1] = f"{lines[-1]} {head}"
        elif lines:
            mark = operator or breaking
            lines += ["{}" + (f"{mark} {operand[0]}" if mark else operand[0]), *operand[1:]]
        else:
            lines += [head, *operand[1:]]
    return lines


def _sum_lines(expr: sp.Basic, printer: LatexPrinter, width: float) -> list[str]:
    pieces, operators = [], []
    for k, term in enumerate(_terms(expr, printer)):
        lines = _break(term, printer, width - 2)
        operator = "" if k == 0 else "+"
        if k and lines[0].startswith("-"):
            operator, lines[0] = "-", lines[0][1:].lstrip()
        pieces.append(lines)
        operators.append(operator)
    return _join(pieces, operators, width)


def _operand(arg: sp.Basic, printer: LatexPrinter, width: float, wrapped: bool) -> list[str]:
    """An operand in lines, in parentheses (that may span them) when ``wrapped``."""
    if not wrapped:
        return _break(arg, printer, width)
    return _wrap("", "", _break(arg, printer, width - 4))


def _break(expr: sp.Basic, printer: LatexPrinter, width: float) -> list[str]:
    """``expr`` in lines no wider than ``width`` where it can be broken."""
    text = str(printer._print(expr))
    if visible_width(text) <= width:
        return [text]
    if isinstance(expr, sp.MatAdd) or (isinstance(expr, sp.Add) and not isinstance(expr, MatrixExpr)):
        return _sum_lines(expr, printer, width)
    if isinstance(expr, sp.HadamardProduct):
        pieces = [_operand(a, printer, width, isinstance(a, sp.MatAdd | sp.MatMul)) for a in expr.args]
        return _join(pieces, ["", *[r"\circ"] * (len(pieces) - 1)], width)
    if isinstance(expr, sp.MatMul) and all(isinstance(a, MatrixExpr) for a in expr.args):
        printed = [printer._factor(a, last=k == len(expr.args) - 1) for k, a in enumerate(expr.args)]
        return _factors_lines(list(expr.args), printed, printer, width, text)
    if isinstance(expr, sp.Pow) and isinstance(expr.base, sp.Add) and expr.exp.is_number:
        exponent = "1/2" if expr.exp == sp.S.Half else str(printer._print(expr.exp))
        return _wrap("", f"^{{{exponent}}}", _break(expr.base, printer, width - 4))
    if isinstance(expr, sp.Mul) and not isinstance(expr, MatrixExpr):
        return _product_lines(expr, printer, width, text)
    if isinstance(expr, sp.Product) and len(expr.limits) == 1:
        head = text[: len(text) - len(str(printer.parenthesize(expr.function, PRECEDENCE["Mul"])))]
        inner = _break(expr.function, printer, width - 4)
        if isinstance(expr.function, sp.Add):
            return _wrap(head.rstrip(), "", inner)
        return [f"{head}{inner[0]}", *inner[1:]]
    if isinstance(expr, MatSum):
        index, lower, upper = expr.limits
        prefix = rf"\sum_{{{printer._print(index)}={printer._print(lower)}}}^{{{printer._print(upper)}}}"
        inner = _break(expr.summand, printer, width - 4)
        if isinstance(expr.summand, sp.MatAdd):
            return _wrap(prefix, "", inner)
        return [f"{prefix} {inner[0]}", *inner[1:]]
    return [text]


def _product_lines(expr: sp.Mul, printer: LatexPrinter, width: float, text: str) -> list[str]:
    """A scalar product in lines, its factors in the printer's order (parenthesized sums first, as printed)."""
    factors = list(expr.as_ordered_factors())
    printed = [str(printer.parenthesize(f, PRECEDENCE["Mul"])) for f in factors]
    if " ".join(printed) != text:  # the printer's order: (1 - alpha) gamma, the sums before the rest
        leading = [
            f for f in factors if isinstance(f, sp.Add) or (f.is_Pow and isinstance(f.base, sp.Add | sp.Mul))
        ]
        rest = [f for f in factors if f not in leading]
        if leading and rest:
            factors = [*leading, sp.Mul(*rest)]
            printed = [str(printer.parenthesize(f, PRECEDENCE["Mul"])) for f in leading]
            printed.append(str(printer._print(factors[-1])))
    if " ".join(printed) != text:  # a fraction, a sign, a number: printed otherwise; keep it whole
        return [text]
    return _factors_lines(factors, printed, printer, width, text)


def _factors_lines(
    factors: list[sp.Basic], printed: list[str], printer: LatexPrinter, width: float, text: str
) -> list[str]:
    """A product broken inside its widest parenthesized factor, or else between its factors."""
    widest = max(range(len(printed)), key=lambda k: visible_width(printed[k]))
    factor = factors[widest]
    if isinstance(factor, sp.Add | sp.MatAdd | sp.HadamardProduct) and printed[widest].startswith(r"\left("):
        prefix, suffix = " ".join(printed[:widest]), " ".join(printed[widest + 1 :])
        inner = _break(factor, printer, width - 4) if visible_width(suffix) < width / 2 else []
        if len(inner) > 1:  # a factor that fits a line whole is better moved to a line of its own
            return _wrap(prefix, suffix, inner, width)
    if len(factors) < 2:
        return [text]
    pieces = [
        [p] if visible_width(p) <= width else _break(f, printer, width)
        for f, p in zip(factors, printed, strict=True)
    ]
    return _join(pieces, [""] * len(pieces), width, breaking=r"\cdot")


def _wrap(prefix: str, suffix: str, inner: list[str], width: float = 0) -> list[str]:
    """``prefix (inner) suffix`` with parentheses that may span the lines of ``inner``.

    A prefix too wide to share a line with the first inner line gets a line of its own.
    """
    before = f"{prefix} " if prefix else ""
    after = f" {suffix}" if suffix else ""
    if len(inner) == 1:
        return [rf"{before}\left({inner[0]}\right){after}"]
    if width and prefix and visible_width(prefix) + visible_width(inner[0]) > width:
        return [rf"{before}\Bigl(", *inner[:-1], rf"{inner[-1]}\Bigr){after}"]
    return [rf"{before}\Bigl({inner[0]}", *inner[1:-1], rf"{inner[-1]}\Bigr){after}"]


def equation_lines(equation: Any, printer: LatexPrinter, width: float = 90) -> EquationLines:
    r"""Lay out ``equation`` (a relation or an expression) in lines of at most about ``width`` characters.

    Parameters
    ----------
    equation : sympy object
    printer : LatexPrinter
    width : float, default 90
        The width of a line in characters (:func:`visible_width`); the
        first line's right-hand side gets what the left-hand side leaves.

    Returns
    -------
    EquationLines

    Examples
    --------
    >>> import gradflow as gf
    >>> eq = gf.derive(gf.cells.lstm()).titled("Adjoint recursion")[0].equation
    >>> lines = equation_lines(eq, LatexPrinter(), width=60)
    >>> lines.lhs, lines.op, len(lines.rhs)
    ('\\delta_{h}^{(t)}', '=', 8)
    >>> print(lines.rhs[2])
    {}\circ i^{(t+1)} \circ \left(\delta_{c}^{(t+1)} + \tanh'\left(c^{(t+1)}\right) \circ o^{(t+1)} \circ \delta_{h}^{(t+1)}\right)\Bigr)
    """
    lhs, op, rhs = relation_parts(equation)
    lhs_tex = "" if lhs is None else str(printer._print(lhs))
    if visible_width(lhs_tex) > width / 2:  # a long condition B < 1: B in lines, the relation last
        lines = _break(lhs, printer, width)
        return EquationLines("", "", (*lines[:-1], f"{lines[-1]} {op} {printer._print(rhs)}"))
    first = max(width - visible_width(lhs_tex) - 2, width / 2)
    text = str(printer._print(rhs))
    if visible_width(text) <= first:
        return EquationLines(lhs_tex, op, (text,))
    return EquationLines(lhs_tex, op, tuple(_break(rhs, printer, first)))
