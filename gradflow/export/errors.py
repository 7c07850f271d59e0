"""The errors of the export layer: files that cannot be written, LaTeX that cannot be compiled.

They are :class:`~gradflow.errors.GradflowError` subclasses like every error
gradflow raises on purpose, and each also inherits the built-in exception a
caller would catch.
"""

from __future__ import annotations

from gradflow.errors import GradflowError

__all__ = ["ExportError", "LatexCompileError", "PdflatexNotFoundError"]


class ExportError(GradflowError, ValueError):
    """A document cannot be written as asked.

    Raised when the file exists and overwriting was not asked for, when its
    folder does not exist, or when a format or option is unknown. The message
    names the file or the option and says what to do.
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
