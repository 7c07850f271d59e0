r"""The export layer: printers of cells, Jacobians and derivations (plain text, LaTeX, Markdown, PDF).

>>> import gradflow as gf
>>> J = gf.symbolic.step_jacobian(gf.cells.elman(), "h")
>>> print(gf.export.to_text(J))
diag(tanh'(W_h h^(t-1) + W_x x^(t) + b)) W_h
>>> print(gf.export.to_latex(J))
\operatorname{diag}\left(\tanh'\left(W_{h} h^{(t-1)} + W_{x} x^{(t)} + b\right)\right) W_{h}
"""

from gradflow.errors import ExportError, LatexCompileError, PdflatexNotFoundError
from gradflow.export.classics import CLASSICS, d2l_bptt, hochreiter_cec, pascanu_bound
from gradflow.export.document import (
    NOTATION,
    derivation_to_document,
    derivation_to_latex,
    derivation_to_markdown,
)
from gradflow.export.files import compile_pdf, write_document
from gradflow.export.folder import derivation_files, slug, write_derivations
from gradflow.export.latex import LatexPrinter, to_latex
from gradflow.export.text import TextPrinter, derivation_to_text, relation_to_text, to_text

__all__ = [
    "CLASSICS",
    "NOTATION",
    "ExportError",
    "LatexCompileError",
    "LatexPrinter",
    "PdflatexNotFoundError",
    "TextPrinter",
    "compile_pdf",
    "d2l_bptt",
    "derivation_files",
    "derivation_to_document",
    "derivation_to_latex",
    "derivation_to_markdown",
    "derivation_to_text",
    "hochreiter_cec",
    "pascanu_bound",
    "relation_to_text",
    "slug",
    "to_latex",
    "to_text",
    "write_derivations",
    "write_document",
]
