r"""Norm bounds of step Jacobians and chains; vanishing and exploding conditions.

The bound of a structured Jacobian follows its structure (submultiplicativity
and the triangle inequality of the spectral norm):
:math:`\lVert A + B\rVert \le \lVert A\rVert + \lVert B\rVert`,
:math:`\lVert A B\rVert \le \lVert A\rVert\,\lVert B\rVert`,
:math:`\lVert\operatorname{diag}(v)\rVert_2 = \lVert v\rVert_\infty`,
with :math:`\lVert v\rVert_\infty` bounded by the range of what ``v`` is:
a sigmoid gate lies in (0, 1), :math:`\sigma'` is bounded by
:math:`\gamma = \sup|\sigma'|`. For the Elman cell this is Pascanu, Mikolov
and Bengio's bound

.. math::
    \Bigl\lVert \frac{\partial h^{(i)}}{\partial h^{(j)}} \Bigr\rVert
    \le \lVert W_h\rVert^{\,i-j} \prod_{j<t\le i}
        \lVert\operatorname{diag}(\sigma'(W_h h^{(t-1)} + W_x x^{(t)} + b))\rVert
    \le (\gamma \lVert W_h\rVert)^{i-j},

and for the others the literature's analogues: leaky units
:math:`\alpha + (1-\alpha)\gamma\lVert W_h\rVert` (for :math:`0 \le \alpha \le 1`),
IndRNN :math:`\gamma \lVert u\rVert_\infty` (unit by unit: :math:`\gamma |u_k|`),
the LSTM cell path :math:`\lVert f^{(t)}\rVert_\infty < 1` (the CEC's 1 without a forget gate).

References
----------
R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent
neural networks", ICML 2013, §3.2. S. Li et al., "Independently recurrent
neural network (IndRNN)", CVPR 2018, §3. Goodfellow, Bengio, Courville,
*Deep Learning*, §10.9.2 (leaky units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Elementwise, Signal, t
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic.bptt import _lags, state_jacobian
from gradflow.symbolic.gamma import gamma, gamma_of  # gamma_of: re-exported
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Norm

__all__ = ["ChainBound", "chain_bound", "gamma_of", "norm_bound", "value_range"]

#: Ranges of bounded activations, sup over the reals (inf, sup).
_RANGES: dict[str, tuple[sp.Expr, sp.Expr]] = {
    "sigmoid": (sp.S.Zero, sp.S.One),
    "tanh": (-sp.S.One, sp.S.One),
    "hard_tanh": (-sp.S.One, sp.S.One),
    "softsign": (-sp.S.One, sp.S.One),
}


def value_range(vector: sp.Basic, cell: Cell | None = None) -> tuple[sp.Expr, sp.Expr] | None:
    """An interval containing every component of ``vector``, or None when unbounded or unknown.

    Gates read as intermediates are looked up in ``cell``: a sigmoid gate lies in [0, 1].
    """
    if isinstance(vector, sp.OneMatrix):
        return (sp.S.One, sp.S.One)
    if isinstance(vector, Elementwise):
        return _RANGES.get(vector.activation.name)
    if isinstance(vector, Signal) and cell is not None and vector.role == "intermediate":
        return value_range(cell.expression("intermediate", vector.name), cell)
    if isinstance(vector, sp.MatMul):
        scalars = [a for a in vector.args if not isinstance(a, MatrixExpr)]
        matrices = [a for a in vector.args if isinstance(a, MatrixExpr)]
        coefficient = sp.Mul(*scalars)
        if len(matrices) != 1 or not coefficient.is_number:
            return None
        inner = value_range(matrices[0], cell)
        if inner is None:
            return None
        lo, hi = coefficient * inner[0], coefficient * inner[1]
        return (sp.Min(lo, hi), sp.Max(lo, hi))
    if isinstance(vector, sp.MatAdd):
        ranges = [value_range(a, cell) for a in vector.args]
        if any(r is None for r in ranges):
            return None
        return (sp.Add(*(r[0] for r in ranges if r)), sp.Add(*(r[1] for r in ranges if r)))
    if isinstance(vector, sp.HadamardProduct):
        ranges = [value_range(a, cell) for a in vector.args]
        if any(r is None for r in ranges):
            return None
        lo, hi = sp.S.One, sp.S.One
        for r in ranges:
            assert r is not None
            corners = [lo * r[0], lo * r[1], hi * r[0], hi * r[1]]
            lo, hi = sp.Min(*corners), sp.Max(*corners)
        return (lo, hi)
    return None


_GAMMA_MODES = ("keep", "symbol", "value")


def _sup_abs(vector: sp.Basic, cell: Cell | None, gamma_mode: str) -> sp.Expr:
    r"""A bound of :math:`\lVert v\rVert_\infty`."""
    primitive = vector.activation.primitive if isinstance(vector, Elementwise) else None
    if primitive is not None:  # sigma'(u): bounded by gamma
        if gamma_mode == "keep":
            return Norm(Diag(vector))
        return gamma_of(primitive) if gamma_mode == "symbol" else gamma(primitive).value
    if isinstance(vector, sp.HadamardProduct):
        return sp.Mul(*(_sup_abs(a, cell, gamma_mode) for a in vector.args))
    span = value_range(vector, cell)
    if span is not None:
        return sp.Max(sp.Abs(span[0]), sp.Abs(span[1]))
    return Norm(vector, sp.oo)


def norm_bound(expr: sp.Basic, cell: Cell | None = None, gamma_mode: str = "keep") -> sp.Expr:
    r"""An upper bound of :math:`\lVert\text{expr}\rVert_2` following the expression's structure.

    Parameters
    ----------
    expr : sympy matrix expression
        A structured Jacobian (or any matrix expression of the cell language).
    cell : Cell, optional
        Where to look up gates, so that a sigmoid gate is bounded by 1.
    gamma_mode : {"keep", "symbol", "value"}
        Keep :math:`\lVert\operatorname{diag}(\sigma'(\cdot))\rVert`, or bound
        it by :math:`\gamma` as a symbol or by its value (:func:`~gradflow.symbolic.gamma.gamma`).

    Raises
    ------
    GradflowError
        For an unknown ``gamma_mode``.

    Returns
    -------
    sympy expression
        Nonnegative; products of :class:`~gradflow.symbolic.nodes.Norm` of
        the parameters, :math:`\gamma`, and gate bounds.

    Examples
    --------
    >>> import gradflow as gf
    >>> J = gf.symbolic.step_jacobian(gf.cells.elman(), "h")
    >>> print(gf.export.to_text(norm_bound(J, gamma_mode="symbol")))
    γ ‖W_h‖
    """
    if gamma_mode not in _GAMMA_MODES:
        raise GradflowError(f"gamma_mode must be one of {_GAMMA_MODES}, got {gamma_mode!r}")

    def bound(node: sp.Basic) -> sp.Expr:
        if isinstance(node, sp.Identity):
            return sp.S.One
        if isinstance(node, sp.ZeroMatrix):
            return sp.S.Zero
        if isinstance(node, sp.MatrixSymbol):
            return Norm(node)
        if isinstance(node, sp.Transpose):
            return bound(node.arg)
        if isinstance(node, Diag):
            return _sup_abs(node.vector, cell, gamma_mode)
        if isinstance(node, sp.MatAdd):
            return sp.Add(*(bound(a) for a in node.args))
        if isinstance(node, sp.MatMul):
            factors = [sp.Abs(a) if not isinstance(a, MatrixExpr) else bound(a) for a in node.args]
            return sp.Mul(*factors)
        if isinstance(node, sp.KroneckerProduct):
            return sp.Mul(*(bound(a) for a in node.args))
        if isinstance(node, sp.BlockMatrix):
            blocks = node.blocks
            return sp.sqrt(sp.Add(*(bound(b) ** 2 for b in blocks)))
        return Norm(node)

    return _tidy(bound(expr))


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Evaluate Max/Abs of plain numbers and of nonnegative symbols (never a general simplify)."""
    return expr.replace(lambda e: isinstance(e, sp.Abs) and e.args[0].is_nonnegative, lambda e: e.args[0])


@dataclass(frozen=True)
class ChainBound:
    r"""Bounds of :math:`\lVert \partial s^{(i)}/\partial s^{(j)}\rVert` and the conditions they give.

    Attributes
    ----------
    step : sympy expression
        The bound of one step Jacobian, :math:`B_t` (keeps
        :math:`\lVert\operatorname{diag}(\sigma'(\cdot))\rVert`).
    step_gamma : sympy expression
        The same with :math:`\gamma`: :math:`B_\gamma`, independent of the step
        when the cell's other factors are (e.g. :math:`\gamma\lVert W_h\rVert`).
    chain : sympy expression
        :math:`\prod_{j<t\le i} B_t`, its time-independent factors raised to :math:`i-j` (Pascanu's form).
    chain_gamma : sympy expression
        :math:`B_\gamma^{\,i-j}`.
    vanishing : sympy relational
        The sufficient condition for vanishing, :math:`B_\gamma < 1`.
    exploding : sympy relational
        The necessary condition for exploding, :math:`B_\gamma > 1`.
    """

    step: sp.Expr
    step_gamma: sp.Expr
    chain: sp.Expr
    chain_gamma: sp.Expr
    vanishing: sp.Basic
    exploding: sp.Basic


class StepProduct(sp.Product):  # type: ignore[misc]
    r"""A ``Product`` of step bounds that leaves piecewise activations inside their norms.

    sympy's ``Product`` folds every ``Piecewise`` it finds up to the top; it
    finds the one inside a piecewise activation's body (ReLU's derivative) and
    pulls it out of the norm :math:`\lVert\operatorname{diag}(\mathrm{ReLU}'(\cdot))\rVert`
    it belongs to. The norms are hidden from that fold and put back after.
    """

    def __new__(cls, function: Any, *symbols: Any, **assumptions: Any) -> Any:
        """Build the product; see the class docstring."""
        function = sp.sympify(function)
        hidden = {n: sp.Dummy("norm") for n in function.atoms(Norm) if n.has(sp.Piecewise)}
        product = super().__new__(cls, function.xreplace(hidden), *symbols, **assumptions)
        if hidden and isinstance(product, cls):
            shown = product._args[0].xreplace({v: k for k, v in hidden.items()})
            product._args = (shown, *product._args[1:])
        return product

    def _sympystr(self, printer: Any) -> str:
        return "Product(" + ", ".join(printer._print(a) for a in self.args) + ")"


def _product(function: sp.Expr, limits: tuple[Any, Any, Any]) -> sp.Expr:
    """``Product`` of step bounds; a :class:`StepProduct` when a norm holds a piecewise activation."""
    if any(n.has(sp.Piecewise) for n in function.atoms(Norm)):
        return StepProduct(function, limits)  # type: ignore[no-any-return]
    return sp.Product(function, limits)


def chain_bound(cell: Cell, upper: Any = None, lower: Any = None, gamma_mode: str = "symbol") -> ChainBound:
    r"""Pascanu-style bounds of the chain :math:`\partial s^{(i)}/\partial s^{(j)}` of a cell read one step back.

    Parameters
    ----------
    cell : Cell
    upper, lower : sympy expressions, default symbols i and j
    gamma_mode : {"symbol", "value"}
        Write :math:`\gamma` as a symbol, or as its value for the cell's activation.

    Raises
    ------
    UnsupportedCellError
        For a cell with delays (bound each path instead) or one whose states
        run in both directions of time.

    Examples
    --------
    >>> import gradflow as gf
    >>> b = chain_bound(gf.cells.elman())
    >>> print(gf.export.to_text(b.chain_gamma), "|", b.vanishing)
    (γ ‖W_h‖)^(i - j) | gamma*||W_h||_2 < 1
    """
    if cell.backward and set(cell.backward) != set(cell.states):
        raise UnsupportedCellError(
            f"chain_bound: cell {cell.name!r} has states running forwards and backwards in time "
            f"(backward: {', '.join(sorted(cell.backward))}); its chains are per direction "
            "(gradflow.symbolic.chain(..., states=...)): bound each direction's separately"
        )
    if _lags(cell) != (1,):
        raise UnsupportedCellError(
            f"cell {cell.name!r} reads its state at delays {_lags(cell)}: the chain is a sum over paths; "
            "bound each path's product (see gradflow.symbolic.bptt.PathSum)"
        )
    i = sp.Symbol("i", integer=True) if upper is None else sp.sympify(upper)
    j = sp.Symbol("j", integer=True) if lower is None else sp.sympify(lower)
    jacobian = state_jacobian(cell)
    step = norm_bound(jacobian, cell, gamma_mode="keep")
    step_gamma = norm_bound(jacobian, cell, gamma_mode=gamma_mode)
    k = sp.Symbol("t", integer=True)
    factors = sp.Mul.make_args(step)
    varying = sp.Mul(*(f for f in factors if f.has(t)))
    constant = sp.Mul(*(f for f in factors if not f.has(t)))
    product = _product(varying.xreplace({t: k}), (k, j + 1, i)) if varying != 1 else sp.S.One
    chain = constant ** (i - j) * product
    if step_gamma.has(t):
        chain_gamma = _product(step_gamma.xreplace({t: k}), (k, j + 1, i))
    else:
        chain_gamma = step_gamma ** (i - j)
    return ChainBound(
        step=step,
        step_gamma=step_gamma,
        chain=chain,
        chain_gamma=chain_gamma,
        # unevaluated: sympy would turn a bound that is always >= 1 (a GRU's) into a bare False
        vanishing=sp.StrictLessThan(step_gamma, 1, evaluate=False),
        exploding=sp.StrictGreaterThan(step_gamma, 1, evaluate=False),
    )
