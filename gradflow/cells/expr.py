r"""The sympy nodes of the cell language.

A cell's equations are sympy matrix expressions built from

* :class:`Signal` -- a time-indexed column vector of the cell: a state, an
  input, an intermediate (gate) or an output at time ``t + k``, e.g.
  :math:`h^{(t-1)}` is ``Signal("h", n, t - 1, "state")``;
* parameters -- ``sympy.MatrixSymbol`` (matrices :math:`n \times m`, vectors
  :math:`n \times 1`) and real ``sympy.Symbol`` (scalar parameters such as
  :math:`\alpha`, :math:`\tau`);
* sympy's ``MatMul``, ``MatAdd``, ``HadamardProduct`` and ``OneMatrix``
  (the all-ones vector, for ``1 - z``);
* :class:`Elementwise` -- an activation applied componentwise;
* :class:`Concat` -- the stacked vector :math:`[h; x]`.

Time is the sympy symbol :data:`t`, so shifting a whole expression one step
back is ``expr.xreplace({t: t - 1})``. Nothing here simplifies or reorders:
the tree is the equation as written.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixElement, MatrixExpr

from gradflow.cells.activations import Activation

__all__ = ["ROLES", "Concat", "Elementwise", "Signal", "parameters_of", "signals_of", "t"]

#: The time index of a cell's equations.
t = sp.Symbol("t", integer=True)

#: The roles of a :class:`Signal`.
ROLES = ("state", "input", "intermediate", "output")


class Signal(MatrixExpr):  # type: ignore[misc]
    r"""A time-indexed column vector of a cell: state, input, intermediate or output.

    Parameters
    ----------
    name : str
        The signal's name (``"h"``, ``"c_tilde"``, ``"layer1.h"``).
    size : int or sympy expression
        Its length; the shape is ``(size, 1)``.
    time : sympy expression
        The time index, e.g. ``t - 1``.
    role : {"state", "input", "intermediate", "output"}
        What the signal is.

    Examples
    --------
    >>> import sympy as sp
    >>> h = Signal("h", sp.Symbol("n"), t - 1, "state")
    >>> h.shape, h.lag
    ((n, 1), -1)
    """

    is_commutative = False

    def __new__(cls, name: Any, size: Any, time: Any, role: Any) -> Signal:
        """Build the signal; see the class docstring."""
        name = name if isinstance(name, Str) else Str(str(name))
        role = role if isinstance(role, Str) else Str(str(role))
        if role.name not in ROLES:
            raise ValueError(f"Signal role must be one of {ROLES}, got {role.name!r}")
        return super().__new__(cls, name, sp.sympify(size), sp.sympify(time), role)  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        """The signal's name."""
        return self.args[0].name  # type: ignore[no-any-return]

    @property
    def size(self) -> sp.Expr:
        """Its length."""
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def time(self) -> sp.Expr:
        """Its time index (a sympy expression, usually ``t + k``)."""
        return self.args[2]  # type: ignore[no-any-return]

    @property
    def role(self) -> str:
        """One of :data:`ROLES`."""
        return self.args[3].name  # type: ignore[no-any-return]

    @property
    def lag(self) -> int | sp.Expr:
        """``time - t``: -1 for the previous step; an int when ``time`` is ``t + k``."""
        offset = sp.expand(self.time - t)
        return int(offset) if offset.is_Integer else offset

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """``(size, 1)``: a column vector."""
        return (self.size, sp.S.One)

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> sp.Expr:
        return MatrixElement(self, i, j)

    def _sympystr(self, printer: Any) -> str:
        return f"{self.name}[{sp.sstr(self.time)}]"


class Elementwise(MatrixExpr):  # type: ignore[misc]
    r"""An activation applied componentwise: :math:`\sigma(v)`.

    Parameters
    ----------
    activation : Activation
    arg : sympy matrix expression
    """

    is_commutative = False

    def __new__(cls, activation: Activation, arg: Any) -> Elementwise:
        """Build the node; see the class docstring."""
        if not isinstance(activation, Activation):
            raise TypeError(f"Elementwise needs an Activation, got {activation!r}")
        return super().__new__(cls, activation, arg)  # type: ignore[no-any-return]

    @property
    def activation(self) -> Activation:
        r"""The activation :math:`\sigma`."""
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def arg(self) -> MatrixExpr:
        """The argument it is applied to."""
        return self.args[1]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """The shape of the argument."""
        return self.arg.shape  # type: ignore[no-any-return]

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> sp.Expr:
        return self.activation(self.arg._entry(i, j, **kwargs))

    def _sympystr(self, printer: Any) -> str:
        return f"{self.activation.name}({printer._print(self.arg)})"


class Concat(MatrixExpr):  # type: ignore[misc]
    r"""Vertical concatenation of column vectors, :math:`[h; x]`."""

    is_commutative = False

    def __new__(cls, *parts: Any) -> Concat:
        """Build the node; see the class docstring."""
        if len(parts) < 2:
            raise ValueError("Concat needs at least two parts")
        return super().__new__(cls, *parts)  # type: ignore[no-any-return]

    @property
    def parts(self) -> tuple[MatrixExpr, ...]:
        """The stacked vectors, top first."""
        return self.args  # type: ignore[no-any-return]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """``(sum of the parts' lengths, 1)``."""
        return (sp.Add(*(p.shape[0] for p in self.parts)), sp.S.One)

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> sp.Expr:
        # A symbolic row index (inside a matrix product's sum) gives a Piecewise
        # that collapses once the index is a number.
        numeric = sp.sympify(i).is_Integer
        pieces = []
        offset: sp.Expr = sp.S.Zero
        for part in self.parts:
            rows = part.shape[0]
            if numeric:
                if (i - offset - rows).is_negative:
                    return part._entry(i - offset, j, **kwargs)  # type: ignore[no-any-return]
            else:
                pieces.append((part._entry(i - offset, j, **kwargs), sp.StrictLessThan(i, offset + rows)))
            offset = offset + rows
        if numeric:
            raise IndexError(f"row {i} out of range for {self}")
        return sp.Piecewise(*pieces[:-1], (pieces[-1][0], True))

    def _sympystr(self, printer: Any) -> str:
        return "[" + "; ".join(printer._print(p) for p in self.parts) + "]"


def signals_of(expr: sp.Basic) -> set[Signal]:
    """Every :class:`Signal` in ``expr``."""
    return set(expr.atoms(Signal))


def parameters_of(expr: sp.Basic) -> set[sp.Basic]:
    """Every parameter in ``expr``: MatrixSymbols and scalar Symbols (time excluded)."""
    found: set[sp.Basic] = set(expr.atoms(sp.MatrixSymbol))
    for atom in expr.atoms(sp.Symbol):
        if atom != t and not _inside_shape_or_time(atom, expr):
            found.add(atom)
    return found


def _inside_shape_or_time(symbol: sp.Symbol, expr: sp.Basic) -> bool:
    """True when ``symbol`` occurs only as a size or a time index in ``expr``."""
    return not _occurs_as_value(symbol, expr)


def _occurs_as_value(symbol: sp.Symbol, node: sp.Basic) -> bool:
    if node == symbol:
        return True
    if isinstance(node, Signal | sp.MatrixSymbol | sp.OneMatrix | Activation):
        return False
    return any(_occurs_as_value(symbol, arg) for arg in node.args)
