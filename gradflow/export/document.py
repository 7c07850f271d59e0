r"""Derivations as LaTeX fragments, standalone documents, Markdown and PDF.

A :class:`~gradflow.symbolic.derivation.Derivation` is data (steps of sympy
equations with prose and citations); this module prints it:

* :func:`derivation_to_latex` -- an ``align`` environment, one numbered step
  per line (long ones broken over several, numbered once), its prose as an
  ``\intertext`` (or a ``\text{}`` line, for MathJax);
* :func:`derivation_to_document` -- a standalone amsmath document (title,
  notation, the cell's equations, the steps, references) that compiles with
  ``pdflatex``;
* :func:`derivation_to_markdown` -- ``$$`` blocks for GitHub and Jupyter;
* files (:mod:`gradflow.export.files`): :func:`~gradflow.export.files.write_document`
  and :func:`~gradflow.export.files.compile_pdf`.

With ``abbreviate=True`` (the default) the block Jacobian :math:`J_t` of a
multi-state cell, and a long step Jacobian, are written by name in the chain
and the adjoints (:math:`\prod_{j<t\le i} \partial s^{(t)}/\partial s^{(t-1)}`),
each being written out in full in its own earlier step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp

from gradflow.cells.expr import t
from gradflow.errors import ExportError
from gradflow.export.latex import LatexPrinter
from gradflow.export.layout import equation_lines, visible_width
from gradflow.export.names import escape_markdown, escape_text
from gradflow.symbolic.bptt import state_jacobian, state_signal
from gradflow.symbolic.derivation import Derivation, Step, register_printer
from gradflow.symbolic.nodes import BOUND_T, Partial

__all__ = [
    "NOTATION",
    "PREAMBLE",
    "bibliography",
    "derivation_body",
    "derivation_to_document",
    "derivation_to_latex",
    "derivation_to_markdown",
]

#: What every printed derivation states first (valid LaTeX and Markdown alike).
NOTATION = (
    r"Vectors are columns: $h^{(t)}$ is a state at step $t$, $x^{(t)}$ an input, $W_{h}$ a parameter. "
    r"Jacobians are in numerator layout: $\partial y/\partial x$ has one row per component of $y$ and "
    r"one column per component of $x$, so a chain of step Jacobians multiplies later steps on the left. "
    r"$\circ$ is the elementwise (Hadamard) product, $\operatorname{diag}(v)$ the diagonal matrix of $v$, "
    r"$\sigma'$ the derivative of an activation (elementwise), $\lVert\cdot\rVert_2$ the spectral norm, "
    r"$\gamma = \sup\lvert\sigma'\rvert$, $\delta^{(t)}$ the gradient of the loss $L$ with respect to "
    r"the state at step $t$, and $\partial^{+}$ an immediate partial derivative (every other argument held fixed)."
)

_PROSE_STYLES = ("intertext", "text")
_WIDTH = 66  # characters of a line (visible_width) beside a left-hand side, A4 with 2 cm margins
#: The preamble of every document: amsmath, amssymb, graphicx, geometry and the ``\\gffit`` macro.
PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[utf8]{inputenc}
\usepackage{amsmath}
\usepackage{amssymb}
\usepackage{graphicx}
\usepackage[a4paper,margin=2cm]{geometry}
\allowdisplaybreaks
\setlength{\emergencystretch}{3em}
% \gffit{formula}: the formula at its natural size, or shrunk to the line when it is wider.
\newsavebox{\gfbox}
\newlength{\gfwidth}
\setlength{\gfwidth}{0.8\textwidth}
\newcommand{\gffit}[1]{\sbox{\gfbox}{$\displaystyle #1$}%
  \ifdim\wd\gfbox>\gfwidth\resizebox{\gfwidth}{!}{\usebox{\gfbox}}\else\usebox{\gfbox}\fi}
"""


def _abbreviations(derivation: Derivation, printer: LatexPrinter) -> dict[sp.Basic, sp.Basic]:
    """Long step Jacobians -> their names, for chains and adjoints (their own steps keep them in full)."""
    cell = derivation.cell
    if cell is None or cell.backward or any(d != 1 for s in cell.states for d in cell.delays(s)):
        return {}
    jacobian = state_jacobian(cell)
    several = len(cell.states) > 1
    if not several and visible_width(str(printer._print(jacobian))) <= 60:
        return {}
    named = Partial(state_signal(cell, BOUND_T), state_signal(cell, BOUND_T - 1))
    rules: dict[sp.Basic, sp.Basic] = {jacobian.xreplace({t: BOUND_T}): named}
    if several:  # the block Jacobian by its blocks, each an earlier step
        names = list(cell.states)
        rows = [
            [
                jacobian.blocks[a, b]
                if isinstance(jacobian.blocks[a, b], sp.ZeroMatrix)
                else Partial(cell.signal(names[a], t), cell.signal(names[b], t - 1))
                for b in range(len(names))
            ]
            for a in range(len(names))
        ]
        rules[jacobian] = sp.BlockMatrix(rows)
    return rules


def _groups(steps: Sequence[Step]) -> list[tuple[str, list[Step]]]:
    """Consecutive steps with the same title."""
    groups: list[tuple[str, list[Step]]] = []
    for step in steps:
        if groups and groups[-1][0] == step.title:
            groups[-1][1].append(step)
        else:
            groups.append((step.title, [step]))
    return groups


def _rows(equation: Any, printer: LatexPrinter, fit: bool, width: float) -> list[str]:
    r"""The ``align`` rows of one equation: ``lhs &= ...``, continuations ``&\quad {}+ ...``."""
    layout = equation_lines(equation, printer, width)
    pieces = [rf"\gffit{{{p}}}" if fit and visible_width(p) > 0.75 * width else p for p in layout.rhs]
    head = rf"{layout.lhs} &{layout.op} {pieces[0]}" if layout.op else f"& {pieces[0]}"
    return [head, *(rf"&\quad {p}" for p in pieces[1:])]


def _align(
    steps: Sequence[Step],
    printer: LatexPrinter,
    rules: dict[sp.Basic, sp.Basic],
    *,
    prose: str,
    cite: Callable[[str], str],
    fit: bool = False,
    titles: bool = True,
) -> str:
    r"""One ``align``: the first step's prose as a paragraph before it (``\intertext`` first leaves a gap)."""
    lines: list[str] = []
    for k, step in enumerate(steps):
        title = rf"\textbf{{{escape_text(step.title)}.}} " if titles else ""
        words = f"{title}{escape_text(step.prose)}{cite(step.citation)}"
        if prose == "text":
            lines += [r"\begin{align}"] if k == 0 else []
            lines.append(rf"&\text{{{words}}} \notag \\")
        elif k == 0:
            lines += [r"\noindent " + words, r"\begin{align}"]
        else:
            lines.append(rf"\intertext{{{words}}}")
        equation = step.equation.xreplace(rules) if rules else step.equation
        rows = _rows(equation, printer, fit, _WIDTH)
        for r, row in enumerate(rows):
            last = r == len(rows) - 1
            end = "" if last and k == len(steps) - 1 else (r" \\" if last else r" \notag \\")
            lines.append(row + end)
    lines.append(r"\end{align}")
    return "\n".join(lines)


def _printer(options: dict[str, Any]) -> LatexPrinter:
    try:
        return LatexPrinter(options)
    except TypeError as err:  # sympy: "Unknown setting ..."
        raise ExportError(f"unknown printer option: {err}") from err


def derivation_to_latex(
    derivation: Derivation, *, prose: str = "intertext", abbreviate: bool = True, **options: Any
) -> str:
    r"""A derivation as one ``align`` environment: a numbered line per step, its prose above it.

    Parameters
    ----------
    derivation : Derivation
    prose : {"intertext", "text"}
        ``\intertext{...}`` between the lines (LaTeX documents), or a
        ``\text{...}`` line of its own (MathJax, which lacks ``\intertext``).
    abbreviate : bool, default True
        Write a long step Jacobian by name in chains and adjoints (see the module).
    **options
        Printer options (:func:`~gradflow.export.latex.to_latex`):
        ``activation_derivative``, ``bold_vectors``.

    Returns
    -------
    str
        A LaTeX fragment for an amsmath document; citations in parentheses.

    Raises
    ------
    ExportError
        For an unknown ``prose`` style or printer option.

    Examples
    --------
    >>> import gradflow as gf
    >>> tex = derivation_to_latex(gf.derive(gf.cells.elman()))
    >>> print(tex.splitlines()[3])
    h^{(t)} &= \tanh\left(W_{h} h^{(t-1)} + W_{x} x^{(t)} + b\right) \\
    """
    if prose not in _PROSE_STYLES:
        raise ExportError(f"prose must be one of {_PROSE_STYLES}, got {prose!r}")
    printer = _printer(options)
    rules = _abbreviations(derivation, printer) if abbreviate else {}
    header = f"% {escape_text(derivation.title)} (gradflow); Jacobians in numerator layout"
    body = _align(
        derivation.steps,
        printer,
        rules,
        prose=prose,
        cite=lambda citation: rf" \emph{{({escape_text(citation)})}}" if citation else "",
    )
    return header + "\n" + body


def _references(derivation: Derivation) -> list[str]:
    """The derivation's references, then any citation of a step that is not among them."""
    refs = list(dict.fromkeys(derivation.references))
    for step in derivation.steps:
        if step.citation and step.citation not in refs:
            refs.append(step.citation)
    return refs


def derivation_to_document(derivation: Derivation, *, abbreviate: bool = True, **options: Any) -> str:
    r"""A standalone LaTeX document (amsmath) of a derivation that compiles with ``pdflatex``.

    Title, the notation (numerator layout stated), the cell's equations,
    the steps grouped by their titles (each group one ``align``, prose as
    ``\intertext``, citations as ``\cite``), and the references. It needs
    only ``amsmath``, ``amssymb``, ``graphicx``, ``geometry`` and
    ``inputenc`` (texlive-latex-base and texlive-latex-recommended); no date
    and nothing else that changes between runs.

    Parameters
    ----------
    derivation : Derivation
    abbreviate : bool, default True
    **options
        Printer options, as for :func:`derivation_to_latex`.

    Returns
    -------
    str

    Examples
    --------
    >>> import gradflow as gf
    >>> doc = derivation_to_document(gf.derive(gf.cells.lstm()))
    >>> doc.startswith(r"\documentclass") and doc.rstrip().endswith(r"\end{document}")
    True
    """
    refs = _references(derivation)

    def cite(citation: str) -> str:
        return rf"~\cite{{gf{refs.index(citation) + 1}}}" if citation else ""

    parts = [
        PREAMBLE,
        rf"\title{{{escape_text(derivation.title)}}}",
        r"\author{gradflow}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        "",
        r"\noindent " + NOTATION,
        derivation_body(derivation, cite=cite, abbreviate=abbreviate, **options),
    ]
    if refs:
        parts += ["", bibliography(refs)]
    parts += ["", r"\end{document}", ""]
    return "\n".join(parts)


def bibliography(references: Sequence[str]) -> str:
    r"""A ``thebibliography`` of the references, keyed ``gf1``, ``gf2``, ... in their order."""
    items = [rf"\bibitem{{gf{k}}} {escape_text(ref)}" for k, ref in enumerate(references, start=1)]
    return "\n".join([r"\begin{thebibliography}{99}", *items, r"\end{thebibliography}"])


def derivation_body(
    derivation: Derivation,
    *,
    cite: Callable[[str], str] = lambda citation: "",
    heading: str = "section*",
    abbreviate: bool = True,
    **options: Any,
) -> str:
    r"""The steps of a derivation as LaTeX: one ``\section*`` (or ``heading``) and ``align`` per group.

    The body of :func:`derivation_to_document`, for documents that hold several derivations
    (a report): no preamble, title or references.

    Parameters
    ----------
    derivation : Derivation
    cite : callable, optional
        The LaTeX that follows a step's prose for its citation (default: nothing).
    heading : str, default "section*"
        The sectioning command of each group (``subsection*`` inside a section).
    abbreviate : bool, default True
    **options
        Printer options, as for :func:`derivation_to_latex`.

    Examples
    --------
    >>> import gradflow as gf
    >>> body = derivation_body(gf.derive(gf.cells.elman()), heading="subsection*")
    >>> body.lstrip().startswith(r"\subsection*{The cell}")
    True
    """
    printer = _printer(options)
    rules = _abbreviations(derivation, printer) if abbreviate else {}
    parts = []
    for title, steps in _groups(derivation.steps):
        name = "The cell" if title == "Cell" else escape_text(title)
        block = _align(steps, printer, rules, prose="intertext", cite=cite, fit=True, titles=False)
        parts += ["", rf"\{heading}{{{name}}}", block]
    return "\n".join(parts)


def _markdown_math(equation: Any, printer: LatexPrinter, number: int) -> str:
    layout = equation_lines(equation, printer, _WIDTH)
    if len(layout.rhs) == 1:
        body = " ".join(p for p in (layout.lhs, layout.op, layout.rhs[0]) if p)
    else:
        rows = [f"{layout.lhs} &{layout.op} {layout.rhs[0]}", *(rf"&\quad {p}" for p in layout.rhs[1:])]
        body = "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"
    return f"$$\n{body} \\tag{{{number}}}\n$$"


def derivation_to_markdown(derivation: Derivation, *, abbreviate: bool = True, **options: Any) -> str:
    r"""A derivation as Markdown with ``$$`` math blocks, for GitHub and Jupyter.

    One section per group of steps; each step's prose, its citation as a
    reference number, then its equation, numbered (``\tag``); references last.

    Parameters
    ----------
    derivation : Derivation
    abbreviate : bool, default True
    **options
        Printer options, as for :func:`derivation_to_latex`.

    Returns
    -------
    str

    Examples
    --------
    >>> import gradflow as gf
    >>> md = derivation_to_markdown(gf.derive(gf.cells.elman()))
    >>> print(md.splitlines()[0])
    # Gradient flow through time in the elman cell
    """
    printer = _printer(options)
    rules = _abbreviations(derivation, printer) if abbreviate else {}
    refs = _references(derivation)
    lines = [f"# {escape_markdown(derivation.title)}", "", NOTATION, ""]
    number = 0
    for title, steps in _groups(derivation.steps):
        lines += [f"## {'The cell' if title == 'Cell' else escape_markdown(title)}", ""]
        for step in steps:
            number += 1
            cite = f" [{refs.index(step.citation) + 1}]" if step.citation else ""
            equation = step.equation.xreplace(rules) if rules else step.equation
            lines += [escape_markdown(step.prose) + cite, "", _markdown_math(equation, printer, number), ""]
    if refs:
        lines += ["## References", ""]
        lines += [f"{k}. {escape_markdown(ref)}" for k, ref in enumerate(refs, start=1)]
        lines.append("")
    return "\n".join(lines)


# Derivation.to_latex(), .to_markdown() and Jupyter's views print through these (the symbolic
# layer cannot import this one).
register_printer("latex", derivation_to_latex)
register_printer("markdown", derivation_to_markdown)
