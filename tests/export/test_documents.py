"""Derivations as align fragments, documents, Markdown, Jupyter views and files; PDFs with pdflatex."""

import os
import shutil
import subprocess
import sys

import pytest
import sympy as sp

import gradflow as gf
from gradflow.errors import GradflowError
from gradflow.export import (
    CLASSICS,
    ExportError,
    LatexCompileError,
    PdflatexNotFoundError,
    compile_pdf,
    derivation_to_document,
    derivation_to_latex,
    derivation_to_markdown,
    write_document,
)
from gradflow.symbolic import derivation
from gradflow.symbolic.derivation import Derivation, Step

C = gf.cells
HAS_PDFLATEX = shutil.which("pdflatex") is not None
needs_tex = pytest.mark.skipif(
    not HAS_PDFLATEX,
    reason="pdflatex is not installed here (apt-get install texlive-latex-base texlive-latex-recommended); "
    ".ci/run installs it and compiles every derivations/*.tex regardless",
)


def weird_cell():
    """A user-defined cell with Greek, subscripted, primed and underscored names."""
    return gf.Cell(
        "weird & 50% $cell_θ#",
        states={"θ_1": "n", "h_prime": "n"},
        inputs={"x_in": "m"},
        params={"W_θθ": ("n", "n"), "W__x": ("n", "m"), "b_1_2": "n", "α": (), "Ω_hat": ("n", "n")},
        intermediates={"g_tilde": "sigmoid(W_θθ @ θ_1 + b_1_2)"},
        updates={
            "θ_1": "tanh(W_θθ @ θ_1 + W__x @ x_in + b_1_2)",
            "h_prime": "α * h_prime + g_tilde * (Ω_hat @ θ_1)",
        },
        activations={},
    )


def test_align_fragment_one_numbered_line_per_step():
    d = gf.derive(C.elman())
    tex = derivation_to_latex(d)
    assert tex.startswith(
        "% Gradient flow through time in the elman cell (gradflow); Jacobians in numerator layout"
    )
    assert tex.count(r"\begin{align}") == 1 and tex.rstrip().endswith(r"\end{align}")
    assert tex.count(r"\intertext{") == len(d) - 1  # the first step's prose stands before the environment
    rows = [line for line in tex.splitlines() if "&" in line and not line.startswith("&\\quad")]
    assert len(rows) == len(d)
    assert (
        r"\textbf{Bound.} With \ensuremath{\gamma} = sup\textbar{}\ensuremath{\sigma}\ensuremath{'}\textbar{}"
        in tex
    )
    assert r"\emph{(R. Pascanu, T. Mikolov, Y. Bengio" in tex
    assert d.to_latex() == tex


def test_a_derivation_prints_itself_through_the_printers_export_registers(monkeypatch):
    d = gf.derive(C.elman())
    assert d.to_latex(prose="text") == d._repr_latex_() == derivation_to_latex(d, prose="text")
    assert d.to_latex(abbreviate=False) == derivation_to_latex(d, abbreviate=False)
    # registered by importing the export layer, which importing any part of gradflow does
    code = (
        "from gradflow.symbolic.derivation import derive; from gradflow.cells import elman; "
        "print(derive(elman()).to_markdown().splitlines()[0])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "# Gradient flow through time in the elman cell\n"
    monkeypatch.delitem(derivation._PRINTERS, "markdown")
    with pytest.raises(
        GradflowError, match="no markdown printer of derivations is registered; import gradflow"
    ):
        d.to_markdown()


def test_long_steps_are_broken_and_numbered_once():
    d = gf.derive(C.lstm())
    tex = derivation_to_latex(d)
    assert r"&\quad {}+ " in tex and r"\notag \\" in tex
    # the block Jacobian is written by its blocks, the chain by the name of the step Jacobian
    assert (
        r"\frac{\partial s^{(i)}}{\partial s^{(j)}} &= \prod_{j<t\le i} \frac{\partial s^{(t)}}{\partial s^{(t-1)}}"
        in tex
    )
    full = derivation_to_latex(d, abbreviate=False)
    assert r"\prod_{j<t\le i} \begin{bmatrix}" in full


def test_mathjax_view_and_markdown():
    d = gf.derive(C.gru())
    latex = d._repr_latex_()
    assert r"\intertext" not in latex and r"&\text{\textbf{Cell.}" in latex
    md = d._repr_markdown_()
    assert md == d.to_markdown() == derivation_to_markdown(d)
    assert md.startswith("# Gradient flow through time in the gru cell\n\n") and "numerator layout" in md
    assert (
        "$$\nh^{(t)} = z^{(t)} \\circ h^{(t-1)} + \\left(1 - z^{(t)}\\right) \\circ \\tilde{h}^{(t)} \\tag{4}\n$$"
        in md
    )
    assert "\\begin{aligned}" in md and "## References\n\n1. " in md
    blocks = md.count("$$\n")
    assert blocks == 2 * len(d)


def test_document_structure():
    doc = derivation_to_document(gf.derive(C.lstm(forget_gate=False)))
    assert doc.startswith(r"\documentclass[11pt]{article}") and doc.endswith("\\end{document}\n")
    assert r"\section*{The cell}" in doc and r"\begin{thebibliography}{99}" in doc and r"\cite{gf" in doc
    assert r"\date{}" in doc and "numerator layout" in doc
    assert r"\frac{\partial c^{(t)}}{\partial c^{(t-1)}} &= I" in doc


def test_prose_with_special_characters_and_unicode_is_escaped():
    step = Step("Odd & #1", sp.Eq(sp.Symbol("x"), 1), "50% of σ′ ‖W‖ ≤ γ_τ {ξ} $5 ~ ^ \\ — ∏ ∘", "A & B_C #2")
    d = Derivation("Title with $ & _ ∂", (step,), None, ("A & B_C #2",))
    doc = derivation_to_document(d)
    assert r"50\% of \ensuremath{\sigma}\ensuremath{'}" in doc and r"\textbackslash{}" in doc
    assert r"\title{Title with \$ \& \_ \ensuremath{\partial}}" in doc
    md = derivation_to_markdown(d)
    assert r"50% of σ′ ‖W‖ ≤ γ\_τ \{ξ\} \$5 \~ ^ \\ — ∏ ∘ [1]" in md


def test_write_document_atomic_and_refuses_to_overwrite(tmp_path):
    d = gf.derive(C.elman())
    tex = write_document(tmp_path / "elman.tex", d)
    md = write_document(tmp_path / "elman.md", d)
    assert tex.read_text(encoding="utf-8") == derivation_to_document(d)
    assert md.read_text(encoding="utf-8") == derivation_to_markdown(d)
    before = tex.read_bytes()
    with pytest.raises(ExportError, match="already exists; pass overwrite=True"):
        write_document(tex, gf.derive(C.gru()))
    assert tex.read_bytes() == before
    write_document(tex, gf.derive(C.gru()), overwrite=True)
    assert "gru cell" in tex.read_text(encoding="utf-8")
    with pytest.raises(ExportError, match="cannot tell the format"):
        write_document(tmp_path / "elman.txt", d)
    with pytest.raises(ExportError, match="does not exist"):
        write_document(tmp_path / "missing" / "elman.tex", d)
    with pytest.raises(ExportError, match="unknown printer option"):
        write_document(tmp_path / "x.tex", d, colour="red")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elman.md", "elman.tex"]  # no temporary files


def test_a_failing_write_leaves_nothing(tmp_path, monkeypatch):
    import gradflow.export.files as files

    def boom(derivation, **options):
        raise RuntimeError("disk full")

    monkeypatch.setattr(files, "derivation_to_document", boom)
    with pytest.raises(RuntimeError):
        write_document(tmp_path / "elman.tex", gf.derive(C.elman()))
    assert list(tmp_path.iterdir()) == []


def test_pdf_without_pdflatex_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PdflatexNotFoundError, match="apt-get install texlive-latex-base"):
        write_document(tmp_path / "elman.pdf", gf.derive(C.elman()))
    with pytest.raises(FileNotFoundError):  # the built-in a caller would catch
        compile_pdf(gf.derive(C.elman()), tmp_path / "elman.pdf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", list(CLASSICS))
def test_classic_arguments(name):
    d = CLASSICS[name]()
    assert len(d) > 8 and d.references
    doc = derivation_to_document(d)
    assert "operatorname{Signal" not in doc and "PermuteDims" not in doc


def test_classics_say_what_the_seeds_say():
    pascanu = CLASSICS["seed000_pascanu_bound"]()
    assert [str(s.equation.rhs) for s in pascanu.titled("Gamma")] == ["1", "1/4"]
    d2l = CLASSICS["seed001_d2l_bptt"]()
    linear = gf.export.to_latex(d2l.titled("Linear case")[4].equation)
    assert (
        r"\left(W_{h}^{\top}\right)^{T - i} W_{q}^{\top} \frac{\partial^{+} L}{\partial o^{(T+t-i)}}"
        in linear
    )
    hochreiter = CLASSICS["seed002_hochreiter_lstm"]()
    assert str(hochreiter.titled("1997 LSTM")[-2].equation.rhs) == "I"
    assert "diag(f[t])" in str(hochreiter.titled("Forget gate")[1].equation.rhs)


def _pdflatex(tmp_path, source):
    (tmp_path / "doc.tex").write_text(source, encoding="utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    return (tmp_path / "doc.log").read_text(encoding="utf-8", errors="replace")


@needs_tex
def test_user_cell_with_unusual_names_compiles(tmp_path):
    d = gf.derive(weird_cell())
    doc = derivation_to_document(d, activation_derivative="explicit", bold_vectors=True)
    assert r"\theta" in doc and r"\hat{\Omega }" in doc and r"\mathbf{x}_{in}" in doc
    _pdflatex(tmp_path, doc)
    # and the align fragment inside the user's own amsmath document
    fragment = derivation_to_latex(d)
    _pdflatex(
        tmp_path,
        "\\documentclass{article}\\usepackage{amsmath,amssymb}\\begin{document}\n"
        + fragment
        + "\n\\end{document}\n",
    )


@needs_tex
def test_generated_derivation_compiles_to_pdf(tmp_path):
    pdf = write_document(tmp_path / "lstm.pdf", gf.derive(C.lstm()))
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lstm.pdf"
    ]  # the TeX files stay in a temporary folder
    with pytest.raises(ExportError, match="already exists"):
        compile_pdf(gf.derive(C.lstm()), pdf)
    log = _pdflatex(tmp_path, derivation_to_document(CLASSICS["seed002_hochreiter_lstm"]()))
    assert "Overfull" not in log


@needs_tex
def test_compile_errors_quote_the_log(tmp_path):
    broken = "\\documentclass{article}\\begin{document}\n$\\undefinedmacro$\n\\end{document}\n"
    with pytest.raises(LatexCompileError, match=r"(?s)Undefined control sequence.*l\.2"):
        compile_pdf(broken, tmp_path / "broken.pdf")
    assert not (tmp_path / "broken.pdf").exists()
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
