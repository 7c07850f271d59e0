"""The gradflow exception hierarchy.

Every error gradflow raises on bad input is a :class:`GradflowError`. Each
subclass also inherits the built-in exception a caller would naturally catch,
so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CellDefinitionError",
    "CellShapeError",
    "GradflowError",
    "GraphError",
    "NotDifferentiableError",
    "ShapeError",
    "UnsupportedCellError",
]


class GradflowError(Exception):
    """Base class of every error gradflow raises on purpose."""


class CellDefinitionError(GradflowError, ValueError):
    """A cell definition is malformed.

    Raised when a cell is built: an unknown name, a missing or unused
    parameter, a cycle among intermediates, a state without an update, an
    invalid size, a non-elementwise activation, or a malformed equation.
    The message names the equation and the operands involved.
    """


class ShapeError(GradflowError, ValueError):
    """Operands or arrays have incompatible shapes.

    The message names the objects involved, their shapes and the shape that
    was expected.
    """


class CellShapeError(ShapeError, CellDefinitionError):
    """Operands of a cell equation have incompatible shapes.

    Both a :class:`ShapeError` and a :class:`CellDefinitionError`: the message
    names the equation, the operands and their shapes.
    """


class GraphError(GradflowError, ValueError):
    """An unrolling or graph query was asked for something impossible.

    For instance ``T <= 0``, a delay that is not shorter than the sequence,
    or a path query between nodes the graph does not have.
    """


class NotDifferentiableError(GradflowError, ValueError):
    """sympy cannot differentiate an activation or an expression."""


class UnsupportedCellError(GradflowError, ValueError):
    """An analysis does not apply to this cell (a valid cell, but outside what the analysis covers).

    For instance Hochreiter's unit-by-unit error flow of a gated or
    multi-state cell, a path sum through a cell running backwards with
    delays, or a single closed-form adjoint of a cell whose states run in
    both directions of time. The message names the cell, says what the
    analysis needs and, where there is one, what to use instead.
    """


class BackendUnavailableError(GradflowError, ImportError):
    """An array backend (CuPy, a GPU, PyTorch) was asked for but is missing."""
