r"""A LaTeX printer in textbook notation (CS224n, d2l), for papers, notes and slides.

:class:`LatexPrinter` is sympy's ``LatexPrinter`` extended by one
``_print_<Class>`` method per node of gradflow's expressions, always
recursing with ``self._print``: :math:`h^{(t-1)}` for a signal at a time,
:math:`W_{h}`, :math:`\tilde{c}^{(t)}`, juxtaposition for matrix products,
:math:`\circ` for the Hadamard product, :math:`\operatorname{diag}(\cdot)`,
:math:`\sigma'(\cdot)` (or the derivative written out,
:math:`1-\tanh^{2}(\cdot)`), :math:`\lVert\cdot\rVert_2`,
:math:`\prod_{j<t\le i}`, :math:`\sum_{t=1}^{T}`, :math:`X^{\top}`; terms in
the order the equations wrote them. Jacobians are in numerator layout: the
rows of :math:`\partial y/\partial x` belong to :math:`y`.

Options (keyword arguments of :func:`to_latex`, or printer settings):

``activation_derivative``
    ``"prime"`` (default) writes :math:`\tanh'(u)`; ``"explicit"`` writes
    the derivative from the activation's own expression, in terms of the
    activation where it can (:math:`1-\tanh^{2}(u)`,
    :math:`\sigma(u)(1-\sigma(u))`), and falls back to the prime for
    piecewise and undefined activations.
``bold_vectors``
    ``True`` writes vectors bold: :math:`\mathbf{h}^{(t)}`, :math:`\mathbf{b}_{f}`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.latex import LatexPrinter as SympyLatexPrinter
from sympy.printing.precedence import PRECEDENCE

from gradflow.cells.activations import Activation, z
from gradflow.cells.expr import Concat, Elementwise, Signal
from gradflow.errors import GradflowError
from gradflow.export.latex_nodes import WRAP, DerivationLatexPrinter
from gradflow.export.names import latex_name, math_unicode
from gradflow.export.text import signed_sum
from gradflow.symbolic.bptt import PathSum, xi
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Adjoint, Chain, MatSum, Rows

__all__ = ["LatexPrinter", "relation_parts", "to_latex"]

_DERIVATIVE_STYLES = ("prime", "explicit")
_GRADIENT_SYMBOL = re.compile(r"\\frac\{\\partial L\}\{\\partial (.+)\}\Z")
#: Nodes that take a superscript (transpose, power) without parentheses.
_SIMPLE = (sp.MatrixSymbol, Signal, Adjoint, Diag, Elementwise, sp.Identity, Rows)
#: The placeholder of an activation written out (explicit derivatives).
_PRIMITIVE = sp.Function("gradflow_primitive")


@lru_cache(maxsize=256)
def _explicit_form(activation: Activation) -> sp.Expr | None:
    r"""The derivative :math:`\sigma'(z)`, in terms of :math:`\sigma(z)` (a placeholder) where it can.

    None for piecewise and undefined activations (they keep the prime).
    """
    body = activation.expression
    if body.has(sp.Piecewise, sp.Derivative, sp.Subs, sp.Heaviside, sp.sign) or activation.is_generic:
        return None
    primitive = activation.primitive
    if primitive is not None:
        f = primitive.expression
        f_z = _PRIMITIVE(z)
        for candidate in (1 - f_z**2, sp.Mul(f_z, 1 - f_z, evaluate=False)):
            if sp.simplify(body - candidate.xreplace({f_z: f})) == 0:
                return candidate
    return body


class LatexPrinter(DerivationLatexPrinter):
    r"""sympy's LatexPrinter with gradflow's nodes and textbook conventions.

    Examples
    --------
    >>> import gradflow as gf
    >>> J = gf.symbolic.step_jacobian(gf.cells.elman(), "h")
    >>> print(LatexPrinter().doprint(J))
    \operatorname{diag}\left(\tanh'\left(W_{h} h^{(t-1)} + W_{x} x^{(t)} + b\right)\right) W_{h}
    """

    _default_settings: ClassVar[dict[str, Any]] = {
        **SympyLatexPrinter._default_settings,
        "activation_derivative": "prime",
        "bold_vectors": False,
    }

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        settings = {"mat_str": "bmatrix", "mat_delim": "", "parenthesize_super": False, **(settings or {})}
        settings["symbol_names"] = dict(settings.get("symbol_names", {}))  # never sympy's shared default
        style = settings.get("activation_derivative", "prime")
        if style not in _DERIVATIVE_STYLES:
            raise GradflowError(f"activation_derivative must be one of {_DERIVATIVE_STYLES}, got {style!r}")
        super().__init__(settings)
        self._primitive: tuple[Activation, str] | None = None

    def _print(self, expr: Any, **kwargs: Any) -> str:
        # gradflow's own nodes: this printer's _print_<Class> comes before their _latex method
        if (type(expr).__module__ or "").startswith("gradflow."):
            method = getattr(self, f"_print_{type(expr).__name__}", None)
            if method is not None:
                return str(method(expr, **kwargs))
        return str(super()._print(expr, **kwargs))

    # -- names -----------------------------------------------------------------

    def _name(self, name: str, time: sp.Basic | None = None, *, vector: bool = False, extra: str = "") -> str:
        bold = vector and bool(self._settings["bold_vectors"])
        return latex_name(name, None if time is None else self._time(time), bold=bold, extra=extra)

    def _print_Signal(self, expr: Signal, extra: str = "") -> str:
        return self._name(expr.name, expr.time, vector=True, extra=extra)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol, extra: str = "") -> str:
        return self._name(expr.name, vector=expr.shape[1] == 1, extra=extra)

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        known = self._settings["symbol_names"].get(expr)
        if known is not None:
            return str(known)
        gradient = _GRADIENT_SYMBOL.match(expr.name)
        if gradient:  # parameter_gradient's left-hand side
            return rf"\frac{{\partial L}}{{\partial {self._name(gradient.group(1))}}}"
        if "\\" in expr.name or "{" in expr.name:  # already LaTeX
            return math_unicode(expr.name)
        if expr.name.startswith("gamma_"):  # gamma_of(activation): gamma_{\sigma}
            from gradflow.cells.activations import CATALOGUE

            factory = CATALOGUE.get(expr.name[len("gamma_") :])
            if factory is not None:
                return rf"\gamma_{{{factory().latex}}}"
        return self._name(expr.name)

    def _print_Str(self, expr: Any) -> str:
        return self._name(expr.name)

    # -- the cell language -------------------------------------------------------

    def _print_Activation(self, expr: Activation) -> str:
        return math_unicode(expr.latex)

    def _print_Elementwise(self, expr: Elementwise) -> str:
        activation = expr.activation
        argument = self._print(expr.arg)
        primitive = activation.primitive
        if self._settings["activation_derivative"] == "explicit" and primitive is not None:
            form = _explicit_form(activation)
            if form is not None:
                wrapped = rf"\left({argument}\right)" if isinstance(expr.arg, sp.MatAdd) else argument
                return self._print_explicit(form, primitive, argument, wrapped)
        return rf"{math_unicode(activation.latex)}\left({argument}\right)"

    def _print_explicit(self, form: sp.Expr, primitive: Activation, argument: str, wrapped: str) -> str:
        """A derivative written out: z stands for the argument, the placeholder for the activation."""
        names, settings = self._settings["symbol_names"], self._settings
        saved = (names.get(z), settings["order"], settings["mul_symbol_latex"], self._primitive)
        names[z] = wrapped
        self._primitive = (primitive, argument)
        settings["order"] = "none"  # sigma (1 - sigma), as written
        if form.has(_PRIMITIVE):  # products of vectors: Hadamard
            settings["mul_symbol_latex"] = r" \circ "
        try:
            return str(self._print(form))
        finally:
            names.pop(z)
            if saved[0] is not None:
                names[z] = saved[0]
            settings["order"], settings["mul_symbol_latex"], self._primitive = saved[1:]

    def _print_Function(self, expr: Any, exp: Any = None) -> str:
        power = "" if exp is None else f"^{{{exp}}}"
        if expr.func == _PRIMITIVE and self._primitive is not None:  # inside an explicit derivative
            primitive, argument = self._primitive
            return rf"{math_unicode(primitive.latex)}{power}\left({argument}\right)"
        if expr.func == xi:
            return rf"\xi_{{{self._print(expr.args[0])}}}{power}"
        if expr.func == sp.Function("E"):
            return rf"\mathbb{{E}}\left[{self._print(expr.args[0])}\right]{power}"
        return str(super()._print_Function(expr, exp))

    def _print_Concat(self, expr: Concat) -> str:
        return r"\begin{bmatrix}" + r" \\ ".join(self._print(p) for p in expr.parts) + r"\end{bmatrix}"

    def _print_Diag(self, expr: Diag) -> str:
        return rf"\operatorname{{diag}}\left({self._print(expr.vector)}\right)"

    # -- scalars -------------------------------------------------------------------

    def _print_Mul(self, expr: sp.Mul) -> str:
        r"""Parenthesized factors first: :math:`(1-\alpha)\,\gamma`, never :math:`\gamma\,(1-\alpha)`.

        A symbol before a parenthesis reads as a function call (:math:`\gamma(x)`) to a reader
        and to sympy's ``parse_latex`` alike; a fraction, a sign or a lone factor is left to sympy.
        """
        if self._settings["order"] == "none":  # a form written out in its own order (explicit derivatives)
            return str(super()._print_Mul(expr))
        factors = list(expr.as_ordered_factors())
        if any(f.is_Pow and f.exp.is_negative for f in factors) or any(f.is_number for f in factors):
            return str(super()._print_Mul(expr))
        leading = [
            f for f in factors if isinstance(f, sp.Add) or (f.is_Pow and isinstance(f.base, sp.Add | sp.Mul))
        ]
        rest = [f for f in factors if f not in leading]
        if not leading or not rest:
            return str(super()._print_Mul(expr))
        tail = self._print(rest[0]) if len(rest) == 1 else super()._print_Mul(sp.Mul(*rest))
        if len(rest) == 1 and isinstance(rest[0], sp.Add):
            tail = rf"\left({tail}\right)"
        return " ".join([*(str(self.parenthesize(f, PRECEDENCE["Mul"])) for f in leading), str(tail)])

    def _print_Abs(self, expr: sp.Abs, exp: Any = None) -> str:
        r"""``{|x|}``: braced, so that bars side by side (:math:`|a|\,N + |b|`) pair up for every reader."""
        text = f"{{|{self._print(expr.args[0])}|}}"
        return text if exp is None else f"{text}^{{{exp}}}"

    # -- matrix algebra ----------------------------------------------------------

    def _factor(self, arg: sp.Basic, last: bool = True) -> str:
        """A factor of a product, in parentheses when it would read wrongly without."""
        text = str(self._print(arg))
        if isinstance(arg, WRAP) or (not last and isinstance(arg, MatSum | Chain | PathSum)):
            return rf"\left({text}\right)"
        if not isinstance(arg, MatrixExpr):
            return str(self.parenthesize(arg, PRECEDENCE["Mul"], strict=True))
        return text

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        args = [a for a in expr.args if a != 1]
        sign = ""
        if args and not isinstance(args[0], MatrixExpr) and args[0].as_coeff_Mul()[0].is_negative:
            args[0] = -args[0]
            sign = "-"
            if args[0] == 1:
                args = args[1:]
        parts = [self._factor(a, last=k == len(args) - 1) for k, a in enumerate(args)]
        return sign + " ".join(parts)

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        return signed_sum([str(self._print(term)) for term in expr.args])

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        return r" \circ ".join(
            rf"\left({self._print(a)}\right)" if isinstance(a, sp.MatAdd | sp.MatMul) else self._print(a)
            for a in expr.args
        )

    def _print_KroneckerProduct(self, expr: sp.KroneckerProduct) -> str:
        return r" \otimes ".join(self._factor(a) for a in expr.args)

    def _superscript(self, base: sp.Basic, sup: str) -> str:
        """``base^{sup}``: merged into a name's own superscript, or with the base in parentheses."""
        if isinstance(base, Signal | sp.MatrixSymbol):
            return str(self._print(base, extra=sup))
        if isinstance(base, Adjoint) and base.total:
            return self._print_Adjoint(base, extra=sup)
        text = self._print(base)
        if isinstance(base, _SIMPLE):
            return f"{text}^{{{sup}}}"
        return rf"\left({text}\right)^{{{sup}}}"

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        return self._superscript(expr.arg, r"\top")

    def _print_MatPow(self, expr: sp.MatPow) -> str:
        return self._superscript(expr.base, str(self._print(expr.exp)))

    def _print_Identity(self, expr: sp.Identity) -> str:
        return "I"

    def _print_ZeroMatrix(self, expr: sp.ZeroMatrix) -> str:
        return "0"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        return r"\mathbf{1}" if self._settings["bold_vectors"] else "1"

    def _print_MatrixElement(self, expr: Any) -> str:
        parent = self._print(expr.parent)
        if not isinstance(expr.parent, sp.MatrixSymbol) or "_" in str(parent) or "^" in str(parent):
            parent = rf"\left({parent}\right)"
        return f"{parent}_{{{self._print(expr.i)},{self._print(expr.j)}}}"


_RELATIONS = {"==": "=", "<": "<", "<=": r"\le", ">": ">", ">=": r"\ge", "!=": r"\ne"}


def relation_parts(equation: Any) -> tuple[Any, str, Any]:
    r"""``(lhs, op, rhs)`` of a relation, its operator in LaTeX; ``(None, "", expr)`` for an expression.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> relation_parts(sp.Le(x, 1))
    (x, '\\le', 1)
    """
    if isinstance(equation, sp.core.relational.Relational):
        return equation.lhs, _RELATIONS.get(equation.rel_op, equation.rel_op), equation.rhs
    return None, "", equation


def to_latex(expr: Any, **options: Any) -> str:
    r"""An expression, equation or inequality in textbook LaTeX (math mode, no delimiters).

    Parameters
    ----------
    expr : sympy object
        Any expression of gradflow (cell equations, Jacobians, chains, bounds,
        gradients), or a relation (``Eq``, ``Le``, ``Lt``, ...): printed
        ``lhs = rhs``, ``lhs \le rhs``.
    **options
        ``activation_derivative="prime"|"explicit"``, ``bold_vectors=False|True``,
        and any setting of sympy's ``LatexPrinter``.

    Returns
    -------
    str

    Raises
    ------
    GradflowError
        For an unknown option or option value.

    Examples
    --------
    >>> import gradflow as gf
    >>> J = gf.symbolic.step_jacobian(gf.cells.elman(), "h")
    >>> print(to_latex(J, activation_derivative="explicit"))
    \operatorname{diag}\left(1 - \tanh^{2}\left(W_{h} h^{(t-1)} + W_{x} x^{(t)} + b\right)\right) W_{h}
    >>> print(to_latex(gf.symbolic.chain_bound(gf.cells.elman()).vanishing))
    \gamma \left\lVert W_{h} \right\rVert_{2} < 1
    """
    try:
        printer = LatexPrinter(options)
    except TypeError as err:  # sympy: "Unknown setting ..."
        raise GradflowError(f"to_latex: {err}") from err
    lhs, op, rhs = relation_parts(expr)
    if lhs is None:
        return str(printer.doprint(rhs))
    return f"{printer.doprint(lhs)} {op} {printer.doprint(rhs)}"
