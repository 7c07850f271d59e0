r"""Norm bounds of step Jacobians and chains; vanishing and exploding conditions.

The bound of a structured Jacobian follows its structure; every inequality
bounds the spectral norm :math:`\lVert\cdot\rVert_2`:

1. submultiplicativity and the triangle inequality,
   :math:`\lVert A B\rVert \le \lVert A\rVert\,\lVert B\rVert`,
   :math:`\lVert A + B\rVert \le \lVert A\rVert + \lVert B\rVert`, with
   :math:`\lVert\operatorname{diag}(v)\rVert_2 = \max_k |v_k| = \lVert v\rVert_\infty`
   (a run of diagonal factors is one diagonal: :math:`\max_k |a_k b_k|`);
2. scalar multiples of the identity are collected before any norm is taken:
   the Euler step of a CTRNN, :math:`I + \frac{\Delta t}{\tau}(-I + W_h D)`, is
   :math:`(1 - \frac{\Delta t}{\tau}) I + \frac{\Delta t}{\tau} W_h D` and
   has the bound :math:`|1 - \frac{\Delta t}{\tau}| + |\frac{\Delta t}{\tau}|\,\gamma\lVert W_h\rVert`;
3. row by row, for a sum :math:`J = \sum_i \operatorname{diag}(w_i) M_i` with
   :math:`\lVert M_i\rVert_2 \le m_i` and the per-unit rate
   :math:`\rho_k = \sum_i m_i |w_{ik}|`:

   .. math::
       \lVert J\rVert_2^2 \le \sum_i m_i \max_k \bigl(|w_{ik}|\,\rho_k\bigr).

   Proof: by the Cauchy--Schwarz inequality each row satisfies
   :math:`|(Jx)_k|^2 \le (\sum_i m_i |w_{ik}|)(\sum_i |w_{ik}|\,|(M_i x)_k|^2 / m_i)`;
   summing over :math:`k` gives :math:`\lVert Jx\rVert^2 \le \sum_i \max_k(\rho_k |w_{ik}|)
   \lVert M_i x\rVert^2 / m_i \le \sum_i m_i \max_k(\rho_k |w_{ik}|)\,\lVert x\rVert^2`.
   The right side is never above the square of the triangle bound
   :math:`\sum_i m_i \max_k |w_{ik}|`, and equals it when every unit has the same
   weights. It is used where a carry term :math:`\operatorname{diag}(w_0)\,I` (a gate
   keeping the state) meets other per-unit weights: for a GRU,
   :math:`\rho_k = z_k + (1 - z_k)\gamma(\ldots) + |h_k - \tilde h_k|\gamma_\sigma\lVert W_z\rVert`
   is below 1 when the candidate's path is, whereas :math:`\max_k z_k + \max_k (1 - z_k) \ge 1`.
   The row-wise maximum :math:`\max_k \rho_k` alone is a bound of the
   :math:`\infty`-norm only, not of the spectral norm;
4. blocks: :math:`\lVert [J_{rs}]\rVert_2 \le \lVert [\lVert J_{rs}\rVert_2]\rVert_2`,
   the spectral norm of the (small, nonnegative) matrix of the blocks' bounds, since
   :math:`\lVert Jx\rVert^2 = \sum_r \lVert \sum_s J_{rs} x_s\rVert^2 \le
   \sum_r (\sum_s \lVert J_{rs}\rVert\,\lVert x_s\rVert)^2`; it is never above the
   Frobenius norm of that matrix.

The norms of the weights are bounded by what they are: a derivative factor
:math:`\sigma'` by :math:`\gamma = \sup|\sigma'|` (in the :math:`\gamma` form), while
gates and states keep their values (:math:`\lVert f^{(t)}\rVert_\infty`,
:math:`z^{(t)}_k`): as :math:`z \to 1` a GRU's step Jacobian tends to :math:`I`, so no
bound that knows only a gate's range :math:`(0, 1)` can be below 1. For the Elman
cell this is Pascanu, Mikolov and Bengio's bound

.. math::
    \Bigl\lVert \frac{\partial h^{(i)}}{\partial h^{(j)}} \Bigr\rVert
    \le \lVert W_h\rVert^{\,i-j} \prod_{j<t\le i}
        \lVert\operatorname{diag}(\sigma'(W_h h^{(t-1)} + W_x x^{(t)} + b))\rVert
    \le (\gamma \lVert W_h\rVert)^{i-j},

and for the others the literature's analogues: leaky units
:math:`|\alpha| + |1-\alpha|\gamma\lVert W_h\rVert`, IndRNN :math:`\gamma \lVert u\rVert_\infty`
(unit by unit: :math:`\gamma |u_k|`), the LSTM cell path :math:`\lVert f^{(t)}\rVert_\infty`
(the CEC's 1 without a forget gate: then no step bound is below 1, since
:math:`\partial c^{(t)}/\partial c^{(t-1)} = I`).

References
----------
R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent
neural networks", ICML 2013, §3.2. S. Li et al., "Independently recurrent
neural network (IndRNN)", CVPR 2018, §3. Goodfellow, Bengio, Courville,
*Deep Learning*, §10.9.2 (leaky units). R. A. Horn, C. R. Johnson, *Matrix
Analysis*, 2nd ed., Cambridge University Press, 2013, §5.6 (operator norms).
J. M. Steele, *The Cauchy-Schwarz Master Class*, Cambridge University Press,
2004, ch. 1 (the inequality with weights, applied here to each row as in Schur's test).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.activations import Activation
from gradflow.cells.cell import Cell
from gradflow.cells.expr import Elementwise, Signal, t
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic.bound_nodes import (
    BlockBound,
    Unit,
    UnitMax,
    UnitRate,
    diagonal_weight,
    has_units,
    unit_max,
)
from gradflow.symbolic.bptt import _lags, state_jacobian
from gradflow.symbolic.gamma import gamma, gamma_of  # gamma_of: re-exported
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Norm

__all__ = ["ROW_BY_ROW", "ChainBound", "chain_bound", "gamma_of", "norm_bound", "value_range"]

#: The citation of the row-by-row bound (inequality 3 of the module docstring).
ROW_BY_ROW = (
    "J. M. Steele, The Cauchy-Schwarz Master Class, Cambridge University Press, 2004, chapter 1 "
    "(the inequality with weights, applied to each row of the step Jacobian)."
)

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


def norm_bound(expr: sp.Basic, cell: Cell | None = None, gamma_mode: str = "keep") -> sp.Expr:
    r"""An upper bound of :math:`\lVert\text{expr}\rVert_2` following the expression's structure.

    Sums are read row by row: each term :math:`\operatorname{diag}(w_i) M_i` has its
    leading diagonal factors as per-unit weights :math:`w_{ik}` (scalar multiples of
    :math:`I` and diagonals of a sum collected first: the Euler step
    :math:`I + \frac{\Delta t}{\tau}(-I + W_h D)` is
    :math:`(1 - \frac{\Delta t}{\tau}) I + \frac{\Delta t}{\tau} W_h D`). Where a
    *carry* term :math:`\operatorname{diag}(w_0)` (a gate keeping the state) stands
    beside other per-unit weights, the bound is the row-by-row inequality of the module
    docstring, with the per-unit rate :math:`\rho_k` as a
    :class:`~gradflow.symbolic.bound_nodes.UnitRate`; otherwise the triangle inequality
    :math:`\sum_i \max_k |w_{ik}|\,\lVert M_i\rVert_2`. Block matrices are bounded by
    the spectral norm of the matrix of their blocks' bounds.

    Parameters
    ----------
    expr : sympy matrix expression
        A structured Jacobian (or any matrix expression of the cell language).
    cell : Cell, optional
        Where to look up gates, so that the sign of a sigmoid gate is known
        (:math:`|1 - z_k| = 1 - z_k`).
    gamma_mode : {"keep", "symbol", "value"}
        Keep the derivative factors :math:`\sigma'(u)_k` (as
        :math:`\lVert\operatorname{diag}(\sigma'(\cdot))\rVert` where one stands alone),
        or bound each by :math:`\gamma` as a symbol or by its value
        (:func:`~gradflow.symbolic.gamma.gamma`). Gates and states keep their values.

    Raises
    ------
    GradflowError
        For an unknown ``gamma_mode``, an ``expr`` that is not a matrix expression, or a
        ``cell`` that is not a Cell.

    Returns
    -------
    sympy expression
        Nonnegative; in norms of the parameters, :math:`\gamma`, norms and per-unit
        maxima (:class:`~gradflow.symbolic.bound_nodes.UnitMax`) of gates and states.

    Examples
    --------
    >>> import gradflow as gf
    >>> J = gf.symbolic.step_jacobian(gf.cells.elman(), "h")
    >>> print(gf.export.to_text(norm_bound(J, gamma_mode="symbol")))
    γ ‖W_h‖
    >>> ctrnn = gf.cells.ctrnn(tau=1, dt=0.25)
    >>> print(gf.export.to_text(norm_bound(gf.symbolic.state_jacobian(ctrnn), ctrnn, "symbol")))
    3/4 + γ ‖W_h‖/4
    """
    if gamma_mode not in _GAMMA_MODES:
        raise GradflowError(f"gamma_mode must be one of {_GAMMA_MODES}, got {gamma_mode!r}")
    if not isinstance(expr, MatrixExpr):
        raise GradflowError(
            f"norm_bound needs a sympy matrix expression (a step Jacobian, e.g. "
            f"gradflow.symbolic.state_jacobian(cell)), got {type(expr).__name__} {expr!r}"
        )
    if cell is not None and not isinstance(cell, Cell):
        raise GradflowError(f"norm_bound: cell must be a Cell or None, got {type(cell).__name__} {cell!r}")
    return _tidy(_Bounder(cell, gamma_mode).bound(expr))


#: A term of a sum read row by row: its per-unit weight and the matrix factors after it
#: (none: the term is diagonal, the weight times I).
_RowTerm = tuple[sp.Expr, tuple[MatrixExpr, ...]]


def _row_terms(node: sp.Basic) -> list[_RowTerm]:
    """``node`` as a sum of ``diag(w) M``: leading diagonals become weights, a closing sum is multiplied out."""
    weight = diagonal_weight(node)
    if weight is not None:
        return [(weight, ())]
    if isinstance(node, sp.MatAdd):
        return [term for arg in node.args for term in _row_terms(arg)]
    if isinstance(node, sp.MatMul):
        matrices = [a for a in node.args if isinstance(a, MatrixExpr)]
        weights = [a for a in node.args if not isinstance(a, MatrixExpr)]
        while matrices and (leading := diagonal_weight(matrices[0])) is not None:
            weights.append(leading)
            matrices.pop(0)
        weight = sp.Mul(*weights)
        if len(matrices) == 1 and isinstance(matrices[0], sp.MatAdd):
            return [(weight * w, rest) for w, rest in _row_terms(matrices[0])]
        return [(weight, tuple(matrices))]
    return [(sp.S.One, (node,))]


class _Bounder:
    """One :func:`norm_bound`: the cell whose gates it knows, the mode, the rates it has named."""

    def __init__(self, cell: Cell | None, gamma_mode: str) -> None:
        self.cell = cell
        self.mode = gamma_mode
        self.rates = 0

    def bound(self, node: sp.Basic) -> sp.Expr:
        if isinstance(node, sp.ZeroMatrix):
            return sp.S.Zero
        if isinstance(node, sp.MatrixSymbol):
            return Norm(node)
        if isinstance(node, sp.Transpose):
            return self.bound(node.arg)
        if isinstance(node, sp.KroneckerProduct):
            return sp.Mul(*(self.bound(a) for a in node.args))
        if isinstance(node, sp.BlockMatrix):
            return self.blocks(node)
        if isinstance(node, sp.MatAdd | sp.MatMul | Diag | sp.Identity):
            return self.rows(_row_terms(node))
        return Norm(node)

    def blocks(self, node: sp.BlockMatrix) -> sp.Expr:
        r"""The spectral norm of the matrix of the blocks' bounds; a bound that is a sum is named :math:`\beta_{r,s}`."""
        blocks = node.blocks
        rows, columns = blocks.shape
        entries = [[self.bound(blocks[r, s]) for s in range(columns)] for r in range(rows)]
        if (rows, columns) == (1, 1):
            return entries[0][0]
        states = list(self.cell.states) if self.cell is not None else []
        names = states if len(states) == rows == columns else [str(r + 1) for r in range(max(rows, columns))]
        named = [
            [
                entry if _is_short(entry) else BlockBound(entry, names[r], names[s], self.mode != "keep")
                for s, entry in enumerate(row)
            ]
            for r, row in enumerate(entries)
        ]
        return Norm(sp.ImmutableMatrix(named))

    def product(self, factors: tuple[MatrixExpr, ...]) -> sp.Expr:
        """Submultiplicativity; a run of diagonal factors is one diagonal (a product per unit)."""
        bounds, run = [], None
        for factor in factors:
            weight = diagonal_weight(factor)
            if weight is not None:
                run = weight if run is None else run * weight
                continue
            if run is not None:
                bounds.append(unit_max(self.abs_bound(run)))
                run = None
            bounds.append(self.bound(factor))
        if run is not None:
            bounds.append(unit_max(self.abs_bound(run)))
        return sp.Mul(*bounds)

    def rows(self, terms: list[_RowTerm]) -> sp.Expr:
        r"""The bound of :math:`\sum_i \operatorname{diag}(w_i) M_i`: row by row where a carry term meets other weights."""
        by_rest: dict[tuple[MatrixExpr, ...], sp.Expr] = {}
        for weight, rest in terms:  # equal factors after the weights: one term (c I + d I = (c + d) I)
            by_rest[rest] = by_rest.get(rest, sp.S.Zero) + weight
        by_weight: dict[sp.Expr, sp.Expr] = {}
        carry = False
        for rest, weight in by_rest.items():
            size, magnitude = self.product(rest), self.abs_bound(weight)
            if size == 0 or magnitude == 0:
                continue
            carry = carry or (not rest and has_units(magnitude))
            by_weight[magnitude] = by_weight.get(magnitude, sp.S.Zero) + size
        entries = list(by_weight.items())
        if not entries:
            return sp.S.Zero
        if carry and sum(has_units(magnitude) for magnitude, _ in entries) >= 2:
            name = ("rho" if self.mode == "keep" else "rhobar") + "'" * self.rates
            self.rates += 1
            rate = UnitRate(sp.Add(*(magnitude * size for magnitude, size in entries)), name)
            return sp.sqrt(sp.Add(*(size * unit_max(magnitude * rate) for magnitude, size in entries)))
        return sp.Add(*(unit_max(magnitude) * size for magnitude, size in entries))

    # --- per-unit weights -------------------------------------------------------------

    def abs_bound(self, weight: sp.Expr) -> sp.Expr:
        r"""A nonnegative per-unit bound of :math:`|w_k|`: exact in "keep" mode, :math:`\sigma'(u)_k \to \gamma` else."""
        marked = weight.replace(
            lambda e: isinstance(e, Unit) and not e.is_nonnegative and self._sign_known(e.vector),
            lambda e: Unit(e.vector, nonnegative=True),
        )
        return self._abs(marked)

    def _sign_known(self, vector: sp.Basic) -> bool:
        """Whether every component of ``vector`` is known to be >= 0 (a sigmoid gate, tanh')."""
        if isinstance(vector, Elementwise) and vector.activation.primitive is not None:
            return _nonnegative_derivative(vector.activation.primitive)
        span = value_range(vector, self.cell)
        return span is not None and bool(sp.S(span[0]).is_nonnegative)

    def _abs(self, e: sp.Expr) -> sp.Expr:
        if not has_units(e):
            return self._signed_abs(e)
        if isinstance(e, sp.Mul):
            return sp.Mul(*(self._abs(f) for f in e.args))
        if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
            return self._abs(e.base) ** e.exp  # type: ignore[no-any-return]
        if self.mode != "keep" and any(_is_derivative(u) for u in e.atoms(Unit)):
            if isinstance(e, sp.Add):  # |a + b sigma'_k| <= |a| + |b| gamma
                return sp.Add(*(self._abs(a) for a in e.args))
            if isinstance(e, Unit):
                primitive = e.vector.activation.primitive
                return gamma_of(primitive) if self.mode == "symbol" else gamma(primitive).value
            if isinstance(e, sp.Abs):
                return self._abs(e.args[0])
            raise GradflowError(f"cannot bound the derivative factors of the per-unit weight {e} by gamma")
        return self._signed_abs(e)

    def _signed_abs(self, e: sp.Expr) -> sp.Expr:
        """``|e|``, without the bars when the ranges of its atoms fix its sign (``1 - z_k`` for a gate z)."""
        if e.is_nonnegative:
            return e
        ranges: dict[sp.Basic, Any] = {}
        for atom in _leaves(e):
            if atom.is_number:
                continue
            span = value_range(atom.vector, self.cell) if isinstance(atom, Unit) else None
            if span is not None:
                ranges[atom] = sp.AccumBounds(*span) if span[0] != span[1] else span[0]
            elif atom.is_nonnegative:
                ranges[atom] = sp.AccumBounds(0, sp.oo)
            else:
                return sp.Abs(e)
        value = e.xreplace(ranges)
        low, high = (value.min, value.max) if isinstance(value, sp.AccumBounds) else (value, value)
        if sp.S(low).is_nonnegative:
            return e
        if sp.S(high).is_nonpositive:
            return -e
        return sp.Abs(e)


def _is_short(e: sp.Basic) -> bool:
    """Whether a block's bound can stand in the matrix of bounds: a product of a few norms and numbers."""
    if isinstance(e, sp.Mul):
        return all(_is_short(a) for a in e.args) and len(str(e)) <= _SHORT
    if isinstance(e, sp.Pow):
        return bool(e.exp.is_Integer) and _is_short(e.base)
    if isinstance(e, Norm):
        return not isinstance(e.arg, sp.ImmutableMatrix) and len(str(e)) <= _SHORT
    return not isinstance(e, sp.Add | UnitMax)


#: The longest block bound (in characters of its plain printing) that stays in the matrix of bounds.
_SHORT = 120


def _leaves(e: sp.Basic) -> set[sp.Basic]:
    """The operands of the arithmetic of a scalar expression (not the symbols inside a norm or a component)."""
    if isinstance(e, sp.Add | sp.Mul | sp.Pow | sp.Abs):
        return set().union(*(_leaves(a) for a in e.args))
    return {e}


def _is_derivative(unit: Unit) -> bool:
    vector = unit.vector
    return isinstance(vector, Elementwise) and vector.activation.primitive is not None


@cache
def _nonnegative_derivative(primitive: Activation) -> bool:
    r"""Whether :math:`\sigma' \ge 0` is plain from its expression, or from :math:`\sigma'` as a function of :math:`\sigma` over its range."""
    derivative = primitive.derivative.expression
    if derivative.is_nonnegative:
        return True
    span = _RANGES.get(primitive.name)
    in_value = derivative.xreplace({primitive.expression: _Y})  # tanh' = 1 - y^2
    if span is None or in_value.free_symbols != {_Y}:
        return False
    low = in_value.subs(_Y, sp.AccumBounds(*span))
    low = low.min if isinstance(low, sp.AccumBounds) else low
    return bool(sp.S(low).is_nonnegative)


_Y = sp.Symbol("y", real=True)


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Evaluate Max/Abs of plain numbers and of nonnegative symbols (never a general simplify)."""
    return expr.replace(lambda e: isinstance(e, sp.Abs) and e.args[0].is_nonnegative, lambda e: e.args[0])


@dataclass(frozen=True)
class ChainBound:
    r"""Bounds of :math:`\lVert \partial s^{(i)}/\partial s^{(j)}\rVert` and the conditions they give.

    Attributes
    ----------
    step : sympy expression
        The bound of one step Jacobian's spectral norm, :math:`B_t` (keeps the derivative
        factors: :math:`\lVert\operatorname{diag}(\sigma'(\cdot))\rVert`, or
        :math:`\sigma'(\cdot)_k` unit by unit). It may hold per-unit maxima
        (:class:`~gradflow.symbolic.bound_nodes.UnitMax`), named per-unit rates
        (:class:`~gradflow.symbolic.bound_nodes.UnitRate`) and, for several states, the
        spectral norm of the matrix of the blocks' bounds
        (:class:`~gradflow.symbolic.bound_nodes.BlockBound`).
    step_gamma : sympy expression
        The same with :math:`\gamma` bounding every derivative factor: :math:`B_\gamma`.
        Gates and states keep their values at step :math:`t` (a gated cell's :math:`B_\gamma`
        depends on the step), so its condition :math:`B_\gamma < 1` can hold; it is
        independent of the step when the cell has no gates (e.g. :math:`\gamma\lVert W_h\rVert`).
    chain : sympy expression
        :math:`\prod_{j<t\le i} B_t`, its time-independent factors raised to :math:`i-j` (Pascanu's form).
    chain_gamma : sympy expression
        :math:`B_\gamma^{\,i-j}`.
    vanishing : sympy relational
        The sufficient condition for vanishing, :math:`B_\gamma < 1` (at every step, for a gated cell).
    exploding : sympy relational
        The necessary condition for exploding, :math:`B_\gamma > 1`.
    """

    step: sp.Expr
    step_gamma: sp.Expr
    chain: sp.Expr
    chain_gamma: sp.Expr
    vanishing: sp.Basic
    exploding: sp.Basic


#: The nodes a step bound keeps its activations in: norms, per-unit maxima and rates.
_BOUND_NODES = (Norm, UnitMax, UnitRate, BlockBound)


class StepProduct(sp.Product):  # type: ignore[misc]
    r"""A ``Product`` of step bounds that leaves piecewise activations inside their norms.

    sympy's ``Product`` folds every ``Piecewise`` it finds up to the top; it
    finds the one inside a piecewise activation's body (ReLU's derivative) and
    pulls it out of the norm :math:`\lVert\operatorname{diag}(\mathrm{ReLU}'(\cdot))\rVert`
    it belongs to. The norms (and per-unit maxima and rates) are hidden from that fold and put back after.
    """

    def __new__(cls, function: Any, *symbols: Any, **assumptions: Any) -> Any:
        """Build the product; see the class docstring."""
        function = sp.sympify(function)
        hidden = {n: sp.Dummy("norm") for n in function.atoms(*_BOUND_NODES) if n.has(sp.Piecewise)}
        product = super().__new__(cls, function.xreplace(hidden), *symbols, **assumptions)
        if hidden and isinstance(product, cls):
            shown = product._args[0].xreplace({v: k for k, v in hidden.items()})
            product._args = (shown, *product._args[1:])
        return product

    def _sympystr(self, printer: Any) -> str:
        return "Product(" + ", ".join(printer._print(a) for a in self.args) + ")"


def _product(function: sp.Expr, limits: tuple[Any, Any, Any]) -> sp.Expr:
    """``Product`` of step bounds; a :class:`StepProduct` when a norm holds a piecewise activation."""
    if any(n.has(sp.Piecewise) for n in function.atoms(*_BOUND_NODES)):
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
    GradflowError
        For anything but a Cell, or an unknown ``gamma_mode``.

    Examples
    --------
    >>> import gradflow as gf
    >>> b = chain_bound(gf.cells.elman())
    >>> print(gf.export.to_text(b.chain_gamma), "|", b.vanishing)
    (γ ‖W_h‖)^(i - j) | gamma*||W_h||_2 < 1
    """
    if not isinstance(cell, Cell):
        raise GradflowError(
            f"chain_bound needs a Cell (e.g. gradflow.cells.elman()), got {type(cell).__name__} {cell!r}"
        )
    if gamma_mode not in ("symbol", "value"):
        raise GradflowError(f"chain_bound: gamma_mode must be 'symbol' or 'value', got {gamma_mode!r}")
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
