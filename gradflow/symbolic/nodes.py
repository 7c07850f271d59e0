r"""Unevaluated nodes of derivations: chain products, sums over time, norms, adjoints.

They keep formulas in the shape the textbooks write them --
:math:`\prod_{j<t\le i} J_t`, :math:`\sum_{t=1}^{T}`, :math:`\lVert\cdot\rVert`,
:math:`\delta^{(t)}` -- so that their size does not grow with :math:`T`.
Each offers ``.doit()``, which expands it when its bounds are integers.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.expr import Signal, t

__all__ = ["BOUND_T", "Adjoint", "Chain", "MatSum", "Norm", "Partial", "Rows"]

#: The bound time variable inside a :class:`Chain` (printed t, but distinct from the
#: free time symbol, so that shifting an expression in t leaves the product intact).
BOUND_T = sp.Symbol("t", integer=True, positive=True)


def _is_int(value: sp.Basic) -> bool:
    return bool(sp.sympify(value).is_Integer)


class Chain(MatrixExpr):  # type: ignore[misc]
    r"""The chain product :math:`\prod_{j<t\le i} J_t` (numerator layout: later steps on the left).

    Parameters
    ----------
    factor : sympy matrix expression
        :math:`J_t`, written in the time symbol :data:`~gradflow.cells.expr.t`.
    lower, upper : int or sympy expression
        :math:`j` and :math:`i`; the product runs over :math:`j < t \le i`.
    backward : bool, default False
        For a state running backwards in time: :math:`\prod_{j\le t<i}`
        with earlier steps on the left (:math:`\partial s^{(j)}/\partial s^{(i)}`, :math:`j < i`).

    Notes
    -----
    Unevaluated: ``doit()`` multiplies the factors out when ``upper - lower``
    is an integer, and gives :math:`J^{i-j}` (a ``MatPow``) when the factor
    does not depend on :math:`t` (a linear cell).

    Examples
    --------
    >>> import sympy as sp
    >>> W = sp.MatrixSymbol("W", 2, 2)
    >>> i, j = sp.symbols("i j", integer=True)
    >>> Chain(W, j, i).doit()
    W**(i - j)
    """

    is_commutative = False

    def __new__(cls, factor: Any, lower: Any, upper: Any, backward: bool = False) -> Chain:
        """Build the product; see the class docstring."""
        factor = factor.xreplace({t: BOUND_T})
        return super().__new__(  # type: ignore[no-any-return]
            cls, factor, sp.sympify(lower), sp.sympify(upper), sp.true if backward else sp.false
        )

    @property
    def factor(self) -> MatrixExpr:
        r""":math:`J_t` in the time symbol ``t``."""
        return self.args[0].xreplace({BOUND_T: t})

    @property
    def bound_factor(self) -> MatrixExpr:
        r""":math:`J_t` in the bound variable :data:`BOUND_T`."""
        return self.args[0]

    @property
    def lower(self) -> sp.Expr:
        """:math:`j`."""
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def upper(self) -> sp.Expr:
        """:math:`i`."""
        return self.args[2]  # type: ignore[no-any-return]

    @property
    def backward(self) -> bool:
        """True for a chain of a state that runs backwards in time."""
        return bool(self.args[3])

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """The shape of the factor (square)."""
        return self.factor.shape  # type: ignore[no-any-return]

    def doit(self, **hints: Any) -> sp.Basic:
        """Multiply the factors out (integer length), or a power for a time-independent factor."""
        length = sp.expand(self.upper - self.lower)
        if not self.bound_factor.has(BOUND_T):
            if length == 0:
                return sp.Identity(self.shape[0])
            return sp.MatPow(self.factor, length)
        if not _is_int(length):
            return self
        if length < 0:
            raise ValueError(f"a chain product needs lower <= upper, got {self.lower} > {self.upper}")
        if length == 0:
            return sp.Identity(self.shape[0])
        if self.backward:  # earlier steps on the left: J_j J_{j+1} ... J_{i-1}
            times = [self.lower + k for k in range(int(length))]
        else:  # later steps on the left: J_i J_{i-1} ... J_{j+1}
            times = [self.upper - k for k in range(int(length))]
        factors = [self.bound_factor.xreplace({BOUND_T: time}) for time in times]
        return factors[0] if len(factors) == 1 else sp.MatMul(*factors)

    def _sympystr(self, printer: Any) -> str:
        if self.backward:
            return f"prod_{{{printer._print(self.lower)}<=t<{printer._print(self.upper)}}}({printer._print(self.factor)})"
        return f"prod_{{{printer._print(self.lower)}<t<={printer._print(self.upper)}}}({printer._print(self.factor)})"


class MatSum(MatrixExpr):  # type: ignore[misc]
    r"""A finite sum of matrix expressions :math:`\sum_{k=a}^{b} M_k` (sympy's Sum is scalar-only).

    Examples
    --------
    >>> import sympy as sp
    >>> k = sp.Symbol("k", integer=True)
    >>> W = sp.MatrixSymbol("W", 2, 2)
    >>> MatSum(k * W, (k, 1, 3)).doit()
    W + 2*W + 3*W
    """

    is_commutative = False

    def __new__(cls, summand: Any, limits: tuple[Any, Any, Any]) -> MatSum:
        """Build the sum; ``limits`` is ``(index, lower, upper)``, both bounds included."""
        index, lower, upper = limits
        return super().__new__(cls, summand, sp.Tuple(index, lower, upper))  # type: ignore[no-any-return]

    @property
    def summand(self) -> MatrixExpr:
        """The term, in the summation index."""
        return self.args[0]

    @property
    def limits(self) -> tuple[sp.Symbol, sp.Expr, sp.Expr]:
        """``(index, lower, upper)``."""
        return tuple(self.args[1])  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """The shape of the term."""
        return self.summand.shape  # type: ignore[no-any-return]

    @property
    def free_symbols(self) -> set[sp.Basic]:
        """The free symbols, without the summation index."""
        index, lower, upper = self.limits
        return (self.summand.free_symbols - {index}) | lower.free_symbols | upper.free_symbols  # type: ignore[no-any-return]

    def doit(self, **hints: Any) -> sp.Basic:
        """Expand the sum when its bounds are integers (empty: a zero matrix)."""
        index, lower, upper = self.limits
        if not (_is_int(lower) and _is_int(upper)):
            return self
        terms = [self.summand.xreplace({index: k}) for k in range(int(lower), int(upper) + 1)]
        if hints.get("deep", True):
            terms = [term.doit(**hints) for term in terms]
        if not terms:
            return sp.ZeroMatrix(*self.shape)
        return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)

    def _sympystr(self, printer: Any) -> str:
        index, lower, upper = self.limits
        return f"Sum_{{{index}={printer._print(lower)}}}^{{{printer._print(upper)}}}({printer._print(self.summand)})"


class Norm(sp.Expr):  # type: ignore[misc]
    r"""The matrix (operator) norm :math:`\lVert A \rVert_p`, unevaluated: a nonnegative scalar.

    ``p`` is 2 (spectral norm, the default), ``sympy.oo`` (for vectors: the
    largest absolute entry, so :math:`\lVert\operatorname{diag}(v)\rVert_2 = \lVert v\rVert_\infty`)
    or ``"F"`` (Frobenius).
    """

    is_commutative = True
    is_real = True
    is_nonnegative = True

    def __new__(cls, arg: Any, p: Any = 2) -> Norm:
        """Build the norm; see the class docstring."""
        p = Str(p) if isinstance(p, str) else sp.sympify(p)
        return super().__new__(cls, arg, p)  # type: ignore[no-any-return]

    @property
    def arg(self) -> MatrixExpr:
        """The matrix or vector."""
        return self.args[0]

    @property
    def p(self) -> sp.Basic:
        """Which norm."""
        return self.args[1]

    def _sympystr(self, printer: Any) -> str:
        return f"||{printer._print(self.arg)}||_{printer._print(self.p)}"


class Adjoint(MatrixExpr):  # type: ignore[misc]
    r"""The gradient of the loss with respect to a signal, as a column vector.

    ``total=True`` is :math:`\delta_s^{(t)} = (dL/ds^{(t)})^\top`, through
    every later step; ``total=False`` is the direct part
    :math:`(\partial^{+} L / \partial s^{(t)})^\top` that the loss at step
    :math:`t` contributes (the upstream of backpropagation, e.g. through
    :math:`o^{(t)}` in d2l's notation).
    """

    is_commutative = False

    def __new__(cls, signal: Signal, total: Any = True, variant: Any = "") -> Adjoint:
        """Build the node; ``variant`` ("", "truncated", "randomized") names an estimate of it."""
        if not isinstance(signal, Signal):
            raise TypeError(f"Adjoint needs a Signal, got {signal!r}")
        variant = variant if isinstance(variant, Str) else Str(variant)
        return super().__new__(cls, signal, sp.true if total else sp.false, variant)  # type: ignore[no-any-return]

    @property
    def variant(self) -> str:
        """The empty string for the exact adjoint, or the strategy of an estimate of it."""
        return self.args[2].name  # type: ignore[no-any-return]

    @property
    def signal(self) -> Signal:
        """The signal the loss is differentiated against."""
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def total(self) -> bool:
        """Total derivative (through later steps) or the direct part."""
        return bool(self.args[1])

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """The shape of the signal."""
        return self.signal.shape

    def _sympystr(self, printer: Any) -> str:
        prefix = "delta" if self.total else "dL+"
        suffix = f"<{self.variant}>" if self.variant else ""
        return f"{prefix}{suffix}_{self.signal.name}[{sp.sstr(self.signal.time)}]"


class Rows(MatrixExpr):  # type: ignore[misc]
    r"""Rows ``start`` to ``start + size`` of a column vector, :math:`v_{[a:b]}` (for concatenations)."""

    is_commutative = False

    def __new__(cls, vector: Any, start: Any, size: Any) -> Rows:
        """Build the slice; see the class docstring."""
        return super().__new__(cls, vector, sp.sympify(start), sp.sympify(size))  # type: ignore[no-any-return]

    @property
    def vector(self) -> MatrixExpr:
        """The sliced vector."""
        return self.args[0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """``(size, 1)``."""
        return (self.args[2], sp.S.One)

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> sp.Expr:
        return self.vector._entry(i + self.args[1], j, **kwargs)  # type: ignore[no-any-return]

    def _sympystr(self, printer: Any) -> str:
        start, size = self.args[1], self.args[2]
        return f"{printer._print(self.vector)}[{sp.sstr(start)}:{sp.sstr(start + size)}]"


class Partial(MatrixExpr):  # type: ignore[misc]
    r"""The unevaluated Jacobian :math:`\partial a / \partial b` of two signals (numerator layout).

    A name for a derivative on the left of an equation, e.g.
    :math:`\partial h^{(t)}/\partial h^{(t-1)}`; ``total=False`` marks an
    immediate partial :math:`\partial^{+}`.
    """

    is_commutative = False

    def __new__(cls, numerator: Any, denominator: Any, total: bool = True) -> Partial:
        """Build the node; see the class docstring."""
        return super().__new__(cls, numerator, denominator, sp.true if total else sp.false)  # type: ignore[no-any-return]

    @property
    def numerator(self) -> sp.Basic:
        """What is differentiated."""
        return self.args[0]

    @property
    def denominator(self) -> sp.Basic:
        """What it is differentiated against."""
        return self.args[1]

    @property
    def total(self) -> bool:
        """False for an immediate partial."""
        return bool(self.args[2])

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """(dim numerator, dim denominator)."""
        rows = self.numerator.shape[0] if isinstance(self.numerator, MatrixExpr) else sp.S.One
        den = self.denominator
        cols = den.shape[0] * den.shape[1] if isinstance(den, MatrixExpr) else sp.S.One
        return (rows, cols)

    def _sympystr(self, printer: Any) -> str:
        mark = "d" if self.total else "d+"
        return f"{mark}{printer._print(self.numerator)}/d{printer._print(self.denominator)}"
