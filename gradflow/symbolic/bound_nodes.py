r"""Nodes of bounds: a component :math:`v_k`, a maximum :math:`\max_k`, named rates :math:`\rho_k` and block bounds.

A diagonal matrix :math:`\operatorname{diag}(v)` acts on each unit :math:`k` of a
layer by its own number :math:`v_k`; bounds that follow the units one by one
(:func:`~gradflow.symbolic.bounds.norm_bound` of a gated cell, where a gate
:math:`z_k` keeps unit :math:`k` and :math:`1 - z_k` lets its candidate in) are
scalar expressions in such components. Four unevaluated nodes carry them:

* :class:`Unit` -- :math:`v_k`, the component of a column vector at a generic unit :math:`k`;
* :class:`UnitMax` -- :math:`\max_k e_k` of a scalar expression in components
  (the largest over the units; the numeric layer takes it over the vector's length);
* :class:`UnitRate` -- a per-unit expression with a name (:math:`\rho_k`), so that a
  bound that needs it several times prints it once, with its definition beside it;
* :class:`BlockBound` -- the bound of one block of a block Jacobian with a name
  (:math:`\beta_{h,c}`), so that the matrix of the blocks' bounds prints in a line.

A maximum of one component, :math:`\max_k |v_k|`, is the norm
:math:`\lVert v\rVert_\infty = \lVert\operatorname{diag}(v)\rVert_2` and is written
as such (:func:`unit_max`).
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.expr import Elementwise
from gradflow.errors import GradflowError
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Norm

__all__ = [
    "BlockBound",
    "Unit",
    "UnitMax",
    "UnitRate",
    "diagonal_weight",
    "has_units",
    "per_unit",
    "unit_max",
]


class Unit(sp.Expr):  # type: ignore[misc]
    r""":math:`v_k`: the component of the column vector ``v`` at a generic unit :math:`k` (a real scalar).

    Examples
    --------
    >>> import sympy as sp
    >>> u = Unit(sp.MatrixSymbol("u", 3, 1), nonnegative=True)
    >>> print(u, u.is_nonnegative)
    u_k True
    """

    is_commutative = True
    is_real = True

    def __new__(cls, vector: Any, nonnegative: bool = False) -> Unit:
        """Build the component; ``vector`` must be a column vector expression, ``nonnegative`` a known sign."""
        if not isinstance(vector, MatrixExpr) or vector.shape[1] != 1:
            raise GradflowError(f"a per-unit component needs a column vector, got {vector}")
        return super().__new__(cls, vector, sp.true if nonnegative else sp.false)  # type: ignore[no-any-return]

    @property
    def vector(self) -> MatrixExpr:
        """The vector."""
        return self.args[0]

    def _eval_is_nonnegative(self) -> bool | None:
        return True if self.args[1] else None

    def _sympystr(self, printer: Any) -> str:
        text = printer._print(self.vector)
        return f"{text}_k" if isinstance(self.vector, sp.MatrixSymbol) else f"({text})_k"


class UnitMax(sp.Expr):  # type: ignore[misc]
    r""":math:`\max_k e_k`: the largest value over the units of a nonnegative per-unit expression.

    ``expr`` is a scalar expression in :class:`Unit` (and :class:`UnitRate`) atoms; gradflow
    builds it from absolute values and nonnegative factors only, so the node is nonnegative.
    """

    is_commutative = True
    is_real = True
    is_nonnegative = True

    def __new__(cls, expr: Any) -> UnitMax:
        """Build the maximum; see the class docstring."""
        expr = sp.sympify(expr)
        if not has_units(expr):
            raise GradflowError(f"max over the units of {expr}, which depends on no unit")
        return super().__new__(cls, expr)  # type: ignore[no-any-return]

    @property
    def expr(self) -> sp.Expr:
        """The per-unit expression."""
        return self.args[0]  # type: ignore[no-any-return]

    def _sympystr(self, printer: Any) -> str:
        return f"max_k({printer._print(self.expr)})"


class UnitRate(sp.Expr):  # type: ignore[misc]
    r"""A named nonnegative per-unit expression, :math:`\rho_k` (printed by its name, defined by ``definition``).

    Parameters
    ----------
    definition : sympy expression
        In :class:`Unit` atoms.
    name : str
        ``"rho"`` (:math:`\rho_k`) or ``"rhobar"`` (:math:`\bar\rho_k`, the :math:`\gamma` form),
        with primes (``"rho'"``) when one bound holds several.
    """

    is_commutative = True
    is_real = True
    is_nonnegative = True

    def __new__(cls, definition: Any, name: str | Str) -> UnitRate:
        """Build the rate; see the class docstring."""
        name = name if isinstance(name, Str) else Str(name)
        return super().__new__(cls, sp.sympify(definition), name)  # type: ignore[no-any-return]

    @property
    def definition(self) -> sp.Expr:
        """The per-unit expression the name stands for."""
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        """The printed name."""
        return self.args[1].name  # type: ignore[no-any-return]

    def _sympystr(self, printer: Any) -> str:
        return f"{self.name}_k"


class BlockBound(sp.Expr):  # type: ignore[misc]
    r"""A named bound of the block :math:`\partial r^{(t)}/\partial s^{(t-1)}`: :math:`\beta_{r,s}` (:math:`\bar\beta` in the :math:`\gamma` form).

    Parameters
    ----------
    definition : sympy expression
        The bound (nonnegative).
    row, column : str
        The states of the block (or their positions, "1", "2", ...).
    gamma_form : bool
        Printed :math:`\bar\beta`: the bound with :math:`\gamma`.
    """

    is_commutative = True
    is_real = True
    is_nonnegative = True

    def __new__(
        cls, definition: Any, row: str | Str, column: str | Str, gamma_form: Any = False
    ) -> BlockBound:
        """Build the named bound; see the class docstring."""
        row, column = (name if isinstance(name, Str) else Str(name) for name in (row, column))
        flag = sp.true if gamma_form else sp.false
        return super().__new__(cls, sp.sympify(definition), row, column, flag)  # type: ignore[no-any-return]

    @property
    def definition(self) -> sp.Expr:
        """The bound the name stands for."""
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def block(self) -> tuple[str, str]:
        """The names of the block's row and column."""
        return self.args[1].name, self.args[2].name

    @property
    def gamma_form(self) -> bool:
        r"""Whether this is the :math:`\gamma` form."""
        return bool(self.args[3])

    def _sympystr(self, printer: Any) -> str:
        return f"{'betabar' if self.gamma_form else 'beta'}_{{{','.join(self.block)}}}"


def has_units(expr: sp.Basic) -> bool:
    """Whether ``expr`` depends on the unit (holds a :class:`Unit` or a :class:`UnitRate`)."""
    return bool(expr.has(Unit, UnitRate))


def per_unit(vector: sp.Basic) -> sp.Expr:
    r"""The component :math:`v_k` of a column-vector expression, as a scalar expression in :class:`Unit` atoms.

    Sums, Hadamard products and multiples by scalars are taken apart
    (:math:`(a \circ (1 - z))_k = a_k (1 - z_k)`); any other vector (a signal, an
    activation, :math:`W h`) is one atom.

    Examples
    --------
    >>> import sympy as sp
    >>> z = sp.MatrixSymbol("z", 3, 1)
    >>> print(per_unit(sp.HadamardProduct(z, sp.OneMatrix(3, 1) - z)))
    (1 - z_k)*z_k
    """
    if isinstance(vector, sp.OneMatrix | sp.Identity):  # sympy writes the 1 x 1 ones as I
        return sp.S.One
    if isinstance(vector, sp.ZeroMatrix):
        return sp.S.Zero
    if isinstance(vector, sp.MatAdd):
        return sp.Add(*(per_unit(a) for a in vector.args))
    if isinstance(vector, sp.HadamardProduct):
        return sp.Mul(*(per_unit(a) for a in vector.args))
    if isinstance(vector, sp.MatMul):
        scalars = [a for a in vector.args if not isinstance(a, MatrixExpr)]
        matrices = [a for a in vector.args if isinstance(a, MatrixExpr)]
        weights = [diagonal_weight(m) for m in matrices[:-1]]
        if all(w is not None for w in weights):  # c diag(a) v = c (a o v)
            return sp.Mul(*scalars, *weights, per_unit(matrices[-1]))
    return Unit(vector)


def diagonal_weight(matrix: sp.Basic) -> sp.Expr | None:
    r"""The diagonal :math:`d_k` of a diagonal matrix expression, per unit; None for any other matrix.

    Diagonal are :math:`I`, :math:`\operatorname{diag}(v)`, their multiples, products and sums
    (:math:`\operatorname{diag}(h) - \operatorname{diag}(\tilde h)` is :math:`h_k - \tilde h_k`).

    Examples
    --------
    >>> import sympy as sp
    >>> print(diagonal_weight(sp.Symbol("alpha") * sp.Identity(3)))
    alpha
    """
    if isinstance(matrix, sp.Identity):
        return sp.S.One
    if isinstance(matrix, Diag):
        return per_unit(matrix.vector)
    if isinstance(matrix, sp.ZeroMatrix) and matrix.shape[0] == matrix.shape[1]:
        return sp.S.Zero
    if isinstance(matrix, sp.MatMul | sp.MatAdd):
        parts: list[sp.Expr] = []
        for a in matrix.args:
            if not isinstance(a, MatrixExpr):
                parts.append(a)
                continue
            weight = diagonal_weight(a)
            if weight is None:
                return None
            parts.append(weight)
        return sp.Mul(*parts) if isinstance(matrix, sp.MatMul) else sp.Add(*parts)
    return None


def unit_max(expr: sp.Expr) -> sp.Expr:
    r""":math:`\max_k e_k` of a per-unit product of nonnegative factors: unit-free factors outside, norms where they are norms.

    ``expr`` must be a product of nonnegative factors (absolute values, components
    known to be nonnegative, sums proven nonnegative), as
    :func:`~gradflow.symbolic.bounds.norm_bound` builds them. Each factor is then
    :math:`|v_k|` of a vector :math:`v`, and the product :math:`c\,|a_k|\,|b_k|` (with
    :math:`c` free of the unit) is :math:`c\,\lVert a \circ b\rVert_\infty`; a lone
    derivative factor :math:`\sigma'(u)_k` is :math:`\lVert\operatorname{diag}(\sigma'(u))\rVert_2`
    (Pascanu's notation). Anything else (a :class:`UnitRate` among the factors) is a
    :class:`UnitMax`.

    Examples
    --------
    >>> import sympy as sp
    >>> z = sp.MatrixSymbol("z", 3, 1)
    >>> print(unit_max(2 * sp.Abs(Unit(z))), unit_max(Unit(z, nonnegative=True) * UnitRate(Unit(z), "rho")))
    2*||z||_oo max_k(z_k*rho_k)
    """
    if not has_units(expr):
        return expr
    factors = sp.Mul.make_args(expr)
    outside = [f for f in factors if not has_units(f)]
    vectors = [_as_vector(f.args[0] if isinstance(f, sp.Abs) else f) for f in factors if has_units(f)]
    if any(v is None for v in vectors):
        return sp.Mul(*outside, UnitMax(sp.Mul(*(f for f in factors if has_units(f)))))
    if len(vectors) == 1 and isinstance(vectors[0], Elementwise) and vectors[0].activation.primitive:
        return sp.Mul(*outside, Norm(Diag(vectors[0])))
    vector = vectors[0] if len(vectors) == 1 else sp.HadamardProduct(*vectors)
    return sp.Mul(*outside, Norm(vector, sp.oo))


def _as_vector(component: sp.Expr) -> Any:
    """The vector whose component is ``component`` (in :class:`Unit` atoms and numbers), or None."""
    if isinstance(component, Unit):
        return component.vector
    if isinstance(component, sp.Pow) and component.exp.is_Integer and component.exp > 1:
        base = _as_vector(component.base)
        return None if base is None else sp.HadamardProduct(*[base] * int(component.exp))
    if not isinstance(component, sp.Add | sp.Mul):
        return None
    numbers = [a for a in component.args if a.is_number]
    parts = [_as_vector(a) for a in component.args if not a.is_number]
    if not parts or any(p is None for p in parts):
        return None
    if isinstance(component, sp.Mul):
        vector = parts[0] if len(parts) == 1 else sp.HadamardProduct(*parts)
        return sp.MatMul(*numbers, vector) if numbers else vector
    if not numbers:
        return sp.MatAdd(*parts)
    total, ones = sp.Add(*numbers), sp.OneMatrix(*parts[0].shape)
    if total != 1 and ones.shape == (1, 1):  # sympy turns c times the 1 x 1 ones into c I
        return None
    return sp.MatAdd(ones if total == 1 else sp.MatMul(total, ones), *parts)
