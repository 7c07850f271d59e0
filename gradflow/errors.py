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
    "ChainError",
    "ExportError",
    "GradflowError",
    "GraphError",
    "LatexCompileError",
    "NonFiniteError",
    "NotDifferentiableError",
    "PdflatexNotFoundError",
    "PlotError",
    "ShapeError",
    "StrategyError",
    "SweepError",
    "UnsupportedCellError",
    "UnsupportedModuleError",
    "UsageError",
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


class ChainError(GradflowError, ValueError):
    """A Jacobian chain was asked of states it cannot be formed for."""


class StrategyError(GradflowError, ValueError):
    """A truncation strategy was given a bad parameter."""


class NonFiniteError(GradflowError, FloatingPointError):
    """A simulation left the floating-point range: a state or node overflowed to inf, or became NaN.

    The message names the node and the first step where it happened.
    """


class SweepError(GradflowError, ValueError):
    """A sweep was given a bad grid or argument, or its function failed at a grid point.

    For a failed point the message names the point, and the function's own
    exception is the cause.
    """


class UsageError(GradflowError, ValueError):
    """A command-line argument is malformed."""


class UnsupportedModuleError(GradflowError, ValueError):
    """A PyTorch module, or an option of one, that gradflow has no cell for.

    Raised by :func:`from_torch` and the other interop functions for anything
    but ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their single-step ``*Cell``
    forms, and for an LSTM with ``proj_size > 0``. The message names the
    module and says what is supported.
    """


class ExportError(GradflowError, ValueError):
    """A document cannot be written as asked.

    Raised when the file exists and overwriting was not asked for, when its
    folder does not exist, or when a format or option is unknown. The message
    names the file or the option and says what to do.
    """


class PlotError(GradflowError, ValueError):
    """A figure was asked of results it cannot be drawn from.

    Raised by :mod:`gradflow.plot` for a result of the wrong kind (a
    :class:`~gradflow.numeric.Regime` where a chain was expected), an empty
    sweep, results of different simulations drawn as one, a figure file whose
    format is unknown, or an option out of range. The message names the
    result or the option and says what the figure needs.
    """


class PdflatexNotFoundError(GradflowError, FileNotFoundError):
    """``pdflatex`` is needed (to make a PDF) but is not installed.

    The message says how to install it (Debian/Ubuntu:
    ``apt-get install texlive-latex-base texlive-latex-recommended``) and that
    the ``.tex`` file can be compiled elsewhere.
    """


class LatexCompileError(GradflowError, RuntimeError):
    """``pdflatex`` failed on a document.

    The message quotes the error lines of the LaTeX log (the lines starting
    with ``!`` and the source line they point at).
    """
