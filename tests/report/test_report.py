"""``gradflow report``: the folder a person opens first, its verdicts, figures and PDF; atomic and repeatable."""

from __future__ import annotations

import io
import re
import shutil

import pytest

import gradflow as gf
from gradflow.cli import main
from gradflow.errors import GradflowError, UsageError
from gradflow.report import cells as report
from gradflow.report.cells import REPORT_CELLS, slug, write_report


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One quick report, with its PDF where pdflatex is installed."""
    out = tmp_path_factory.mktemp("report") / "gradflow-report"
    write_report(out, quick=True, graph_T=2, progress=False)
    return out


def test_the_folder_holds_a_page_per_cell_and_the_figures(folder):
    names = {p.name for p in folder.iterdir()}
    assert {"index.md", "cells", "figures", "graphs", "regimes.md", "skip_paths.md"} <= names
    for spec in REPORT_CELLS:
        page = (folder / "cells" / f"{slug(spec)}.md").read_text(encoding="utf-8")
        assert page.startswith("[← the summary](../index.md)")
        assert f"](../figures/chain-{slug(spec)}.png)" in page and f"](../graphs/{slug(spec)}.png)" in page
        assert "$$" in page  # the derivation in Markdown maths, not text in code blocks
        assert "```" not in page
        for target in re.findall(r"\]\(\.\./([^)]+)\)", page):
            assert (folder / target).exists(), target
        for png in (folder / "figures" / f"chain-{slug(spec)}.png", folder / "graphs" / f"{slug(spec)}.png"):
            assert png.read_bytes()[:4] == b"\x89PNG"
    lstm1997 = (folder / "cells" / "lstm1997.md").read_text(encoding="utf-8")
    assert r"\frac{\partial c^{(t)}}{\partial c^{(t-1)}} = I" in lstm1997  # the constant error carousel
    assert "| 3 | 48 | 56849086 | 16 | 16.0 |" in (folder / "skip_paths.md").read_text(encoding="utf-8")


def test_index_links_resolve_and_say_which_cells_vanish(folder):
    index = (folder / "index.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)]+)\)", index):
        assert (folder / target).exists(), target
    for spec in REPORT_CELLS:
        assert f"[{spec}](cells/{slug(spec)}.md)" in index
    elman = next(line for line in index.splitlines() if line.startswith("| [elman]"))
    assert "vanishing ×" in elman.split("|")[2]  # gain 0.5: gamma ||W_h|| = 0.5 < 1
    assert "- **elman**: $\\gamma \\left\\lVert W_{h} \\right\\rVert_{2} < 1$" in index
    assert "⚠" not in index  # no measurement above its bound
    counts = re.search(r"Of (\d+) measurements: (\d+) vanishing, (\d+) exploding, (\d+) neutral", index)
    assert counts and int(counts[1]) == sum(int(counts[k]) for k in (2, 3, 4))


def test_index_verdicts_are_the_measured_regimes(folder):
    """The summary quotes the same regimes as regimes.md, cell by cell and gain by gain."""
    index = (folder / "index.md").read_text(encoding="utf-8")
    rows = [
        line
        for line in (folder / "regimes.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| ")
    ]
    measured = {}
    for row in rows[2:]:
        cell, gain, _, rate, label = (part.strip() for part in row.strip("|").split("|")[:5])
        if label != "no chain bound":
            measured[(cell, gain)] = (label, float(rate.split(" ± ")[0]))
    assert len(measured) >= 30
    for (cell, gain), (label, rate) in measured.items():
        line = next(x for x in index.splitlines() if x.startswith(f"| [{cell}]("))
        entry = line.split("|")[2 + ["0.5", "1", "3"].index(gain)]
        assert label in entry and report._factor(rate) in entry, (cell, gain, entry)


def test_figures_of_the_index(folder):
    index = (folder / "index.md").read_text(encoding="utf-8")
    for name in ("overview.png", "lyapunov-elman.png", "gradient-per-step.png", "skip.png"):
        assert f"](figures/{name})" in index
    for _, spec in report.FAMILIES:
        assert f"](figures/regime-{slug(spec)}.png)" in index


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (CI installs it)")
def test_the_pdf_holds_the_summary_figures_and_derivations(folder):
    pdf = (folder / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 100_000
    assert pdf.count(b"/Subtype /Image") >= len(REPORT_CELLS) + len(report.FAMILIES) + 4
    assert "[report.pdf](report.pdf)" in (folder / "index.md").read_text(encoding="utf-8")


def test_same_seed_same_files_and_atomic_replacement(folder, tmp_path, monkeypatch):
    """A second run (of a few of the cells, same seed) writes the same bytes as the first."""
    monkeypatch.setattr(report, "REPORT_CELLS", ("lstm", "bidirectional(elman)"))
    monkeypatch.setattr(report, "FAMILIES", (("Elman", "elman"),))
    again = write_report(tmp_path / "again", quick=True, graph_T=2, pdf=False, progress=False)
    compared = 0
    for path in sorted(again.rglob("*")):
        if path.is_file() and path.name not in ("index.md", "regimes.md"):
            assert (folder / path.relative_to(again)).read_bytes() == path.read_bytes(), path
            compared += 1
    assert compared >= 12
    with pytest.raises(UsageError, match="exists; pass --force"):
        write_report(again, quick=True, pdf=False, progress=False)
    monkeypatch.setattr(report, "FAMILIES", ())
    other = write_report(again, quick=True, seed=1, graph_T=1, pdf=False, progress=False, force=True)
    assert (other / "cells" / "lstm.md").exists() and not (other / "figures" / "regime-elman.png").exists()
    assert (other / "figures" / "chain-lstm.png").read_bytes() != (
        folder / "figures" / "chain-lstm.png"
    ).read_bytes()
    assert not list(tmp_path.glob(".again-*"))  # no staging folder left


def test_a_failed_run_leaves_nothing(tmp_path, monkeypatch):
    """A measurement that fails after files were written (the first cell's) leaves no folder behind."""
    calls = []
    real = report.chain_norms_figure

    def broken(*args, **kwargs):
        calls.append(args[0])
        if len(calls) > 1:
            raise GradflowError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "chain_norms_figure", broken)
    with pytest.raises(GradflowError, match="could not measure cell 'jordan': boom"):
        write_report(tmp_path / "r", quick=True, graph_T=1, pdf=False, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_pdf_skipped_without_pdflatex_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    monkeypatch.setattr(report, "REPORT_CELLS", ("elman",))
    monkeypatch.setattr(report, "FAMILIES", (("Elman", "elman"),))
    out = write_report(tmp_path / "r", quick=True, graph_T=1, progress=False)
    assert not (out / "report.pdf").exists()
    assert "report.pdf was not written: pdflatex is not installed" in (out / "index.md").read_text(
        encoding="utf-8"
    )
    with pytest.raises(GradflowError, match="pdflatex is not installed"):
        write_report(tmp_path / "s", quick=True, graph_T=1, pdf=True, progress=False)


def test_progress_bar_on_a_terminal_only():
    from gradflow.report._folder import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = Progress(4, "report", stream)
    for what in ("elman", "gru", "regime map: Elman", "report.pdf"):
        bar.step(what)
    bar.close()
    drawn = stream.getvalue()
    assert "report [######" in drawn and "2/4 gru" in drawn and "4/4 report.pdf" in drawn
    assert drawn.endswith("\r")  # the line is cleared at the end
    quiet = io.StringIO()
    bar = Progress(4, "report", quiet)
    bar.step("elman")
    bar.close()
    assert quiet.getvalue() == ""


def test_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "REPORT_CELLS", ("elman", "lstm"))
    monkeypatch.setattr(report, "FAMILIES", (("Elman", "elman"),))
    out = tmp_path / "rep"
    status, text, err = run(capsys, "report", "--out", str(out), "--quick", "--no-pdf", "-T", "1")
    assert status == 0, err
    assert "report [" not in err  # no progress bar when standard error is not a terminal
    assert f"wrote {out}/" in text and "index.md" in text
    status, _, err = run(capsys, "report", "--out", str(out), "--quick")
    assert status == 2 and "exists" in err and err.count("\n") == 1
    for bad in ("/proc/gradflow-report", str(tmp_path / "rep" / "index.md")):
        status, _, err = run(capsys, "report", "--out", bad, "--quick", "--no-pdf")
        assert status == 2 and err.startswith("gradflow: error:") and err.count("\n") == 1, err
    status, _, err = run(capsys, "report", "--out", str(tmp_path / "x"), "--seed", "-1")
    assert status == 2 and "seed" in err


def test_every_report_cell_has_a_derivation():
    for spec in REPORT_CELLS:
        assert len(gf.derive(report.parse_cell(spec))) > 5
