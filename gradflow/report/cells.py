r"""The report of every built-in cell: the folder ``gradflow report`` writes, the one a person opens first.

::

    gradflow-report/
      index.md             which cells vanish, which explode, and why: the verdicts at three gains
                           (measured rate beside the bound's), the vanishing conditions, the figures
      report.pdf           the same, and every derivation, as one document (when pdflatex is installed)
      cells/NAME.md        one page per cell: its chain norms against the bound, its regimes, its
                           unrolled graph and its whole derivation in $$ maths
      figures/*.png        chain norms per cell; Elman vs LSTM vs GRU; a regime map per cell family;
                           Lyapunov spectra; the gradient reaching each step; skip connections
      graphs/NAME.dot|png  the unrolled graphs
      regimes.md           every measured regime, with its confidence
      skip_paths.md        path counts of skip connections through time (decay in k/d)

Every number comes from random instances drawn from one seed (:mod:`gradflow.report.instances`),
so the same seed writes the same files. The folder is written atomically.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gradflow._checks import is_int
from gradflow.cells.specs import parse_cell
from gradflow.errors import GradflowError, UsageError
from gradflow.report._folder import Progress, markdown_table, staged_folder
from gradflow.report.figures import (
    Drawn,
    chain_norms_figure,
    gradient_per_step_figure,
    has_bound,
    lyapunov_figure,
    regime_map_figure,
)
from gradflow.report.instances import Setting

__all__ = ["FAMILIES", "REPORT_CELLS", "ReportSettings", "write_report"]

#: The cells the report covers (combinators included).
REPORT_CELLS = (
    "elman",
    "jordan",
    "lstm1997",
    "lstm",
    "lstm_peephole",
    "gru",
    "gru_reset_after",
    "leaky",
    "skip(delay=3)",
    "ctrnn",
    "indrnn",
    "minimal",
    "stack(elman, elman)",
    "bidirectional(elman)",
)

#: One regime map per family of cells: (family, the cell that stands for it).
FAMILIES = (
    ("Elman", "elman"),
    ("Jordan", "jordan"),
    ("LSTM", "lstm"),
    ("GRU", "gru"),
    ("leaky units", "leaky"),
    ("CTRNN", "ctrnn"),
)

#: The cells side by side in the overview and in the gradient reaching each step.
COMPARED = ("elman", "lstm", "gru")


@dataclass(frozen=True)
class ReportSettings:
    """The sizes of a report: full, or ``quick`` (seconds).

    Attributes
    ----------
    setting : Setting
        Instances of the verdicts and the figures.
    gains : tuple of float
        The gains of the verdicts.
    map_setting, map_ns, map_gains
        The regime maps' sweeps.
    lyapunov_gains : tuple of float
    graph_T : int
        Steps of the drawn graphs.
    """

    setting: Setting
    gains: tuple[float, ...]
    map_setting: Setting
    map_ns: tuple[int, ...]
    map_gains: tuple[float, ...]
    lyapunov_gains: tuple[float, ...]
    graph_T: int = 4  # noqa: N815 (T, the number of steps, as everywhere)

    @classmethod
    def of(cls, quick: bool, seed: int, graph_T: int = 4) -> ReportSettings:
        """The full or the quick sizes, everything drawn from ``seed``."""
        if quick:
            return cls(
                Setting(n=8, T=30, B=2, seed=seed),
                (0.5, 1.0, 3.0),
                Setting(T=20, B=2, seed=seed),
                (4, 8),
                (0.5, 1.0, 2.0),
                (0.5, 1.0, 2.0),
                graph_T,
            )
        return cls(
            Setting(n=32, T=100, B=8, seed=seed),
            (0.5, 1.0, 3.0),
            Setting(T=60, B=4, seed=seed),
            (16, 32),
            (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
            (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0),
            graph_T,
        )


def slug(spec: str) -> str:
    """A file name for a cell spec (as the derivations folder names them)."""
    from gradflow.export import slug as name

    return str(name(spec))


def _factor(rate: float) -> str:
    """The factor per step of a rate: ``×0.493``."""
    if rate == -math.inf:
        return "×0"
    return f"×{math.exp(rate):.3g}" if abs(rate) < 50 else f"×e^{rate:.0f}"


def compact(regime: Any) -> str:
    """A short verdict for a printed table: ``vanishing ×0.49 ≤ ×0.5``."""
    mark = "" if regime.consistent else " (!)"
    return f"{regime.label} {_factor(regime.rate)} ≤ {_factor(regime.predicted_rate)}{mark}"


def verdict(regime: Any) -> str:
    """One cell of the summary: ``vanishing ×0.49 (bound ×0.50)``, exploding in bold."""
    label = f"**{regime.label}**" if regime.label == "exploding" else regime.label
    text = f"{label} {_factor(regime.rate)} (bound {_factor(regime.predicted_rate)})"
    return text + (" ⚠ above the bound" if not regime.consistent else "")


def regime_cells(found: Any) -> list[str]:
    """A regime as table cells: bound's rate, measured rate, regime, confidence, within the bound."""
    if found is None:
        return ["—", "—", "no chain bound", "—", "—"]
    return [
        f"{found.predicted_rate:+.4f}",
        f"{found.rate:+.4f} ± {found.standard_error:.1e}",
        found.label,
        f"{found.confidence:.3f}",
        "yes" if found.consistent else "NO",
    ]


@dataclass
class _CellResult:
    spec: str
    drawn: Drawn
    condition: str | None
    condition_latex: str | None
    no_bound: str | None


def write_report(
    out: str | os.PathLike[str],
    *,
    quick: bool = False,
    seed: int = 0,
    force: bool = False,
    graph_T: int = 4,
    pdf: bool | None = None,
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> Path:
    """Write the report folder (see the module): derivations, figures, verdicts, and the PDF.

    Parameters
    ----------
    out : str or os.PathLike
        The folder to write.
    quick : bool, default False
        Small sizes: seconds instead of a minute or two.
    seed : int, default 0
        The seed of every random instance.
    force : bool, default False
        Replace an existing folder.
    graph_T : int, default 4
        Steps of the drawn graphs (more where a delay needs it).
    pdf : bool, optional
        Write ``report.pdf``: default when ``pdflatex`` is installed; True makes a missing
        pdflatex an error.
    progress : bool, optional
        Draw a progress bar (default: on a terminal).
    stream : text stream, optional
        Where the progress bar goes (standard error).

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    UsageError
        For an existing folder without ``force``, a folder that cannot be written, a negative
        seed, or a ``graph_T`` below 1.
    GradflowError
        Whatever a measurement raises (with the cell named).

    Examples
    --------
    A quick report (``gradflow report --quick``) takes seconds; its sizes:

    >>> ReportSettings.of(quick=True, seed=0).setting.describe()
    'n = 8, T = 30, B = 2, orthogonal init, seed 0'

    ``write_report("gradflow-report", quick=True)`` writes the folder (tests/report runs it).
    """
    if not is_int(seed) or seed < 0:
        raise UsageError(f"the seed must be an int >= 0, got {seed!r}")
    if not is_int(graph_T) or graph_T < 1:
        raise UsageError(f"-T (steps of the drawn graphs) must be an int >= 1, got {graph_T!r}")
    make_pdf = shutil.which("pdflatex") is not None if pdf is None else pdf
    if make_pdf and shutil.which("pdflatex") is None:
        from gradflow.errors import PdflatexNotFoundError

        raise PdflatexNotFoundError("pdflatex is not installed; install texlive-latex-base, or pass --no-pdf")
    sizes = ReportSettings.of(quick, seed, graph_T)
    tasks = len(REPORT_CELLS) + len(FAMILIES) + 4 + (1 if make_pdf else 0)
    bar = Progress(tasks, "report", stream, progress)
    try:
        with staged_folder(out, force, UsageError) as folder:
            for sub in ("cells", "figures", "graphs"):
                (folder / sub).mkdir()
            results = []
            for spec in REPORT_CELLS:
                bar.step(spec)
                results.append(_cell(folder, spec, sizes))
            overview = _overview(folder, sizes, bar)
            _skip_paths(folder)
            _regimes_page(folder, results, sizes)
            if make_pdf:
                bar.step("report.pdf")
                _pdf(folder, results, overview, sizes)
            _index(folder, results, overview, sizes, pdf_made=make_pdf)
    finally:
        bar.close()
    return Path(out)


def _cell(folder: Path, spec: str, sizes: ReportSettings) -> _CellResult:
    """One cell: its graph, its chain figure at the three gains, its page."""
    import gradflow as gf
    from gradflow.export import derivation_to_markdown, to_latex, to_text
    from gradflow.graph import unroll, write_dot, write_png
    from gradflow.symbolic.bounds import chain_bound

    cell = parse_cell(spec)
    name = slug(spec)
    longest = max((d for state in cell.states for d in cell.delays(state)), default=1)
    graph = unroll(cell, max(sizes.graph_T, longest + 1))
    write_dot(graph, folder / "graphs" / f"{name}.dot")
    write_png(graph, folder / "graphs" / f"{name}.png")
    reason = has_bound(cell)
    try:
        drawn = chain_norms_figure(
            [spec],
            sizes.gains,
            sizes.setting,
            bounds=None,
            title=f"{spec}: chain norms against the lag ({sizes.setting.describe()})",
        )
    except GradflowError as err:
        raise GradflowError(f"the report could not measure cell {spec!r}: {err}") from err
    gf.plot.save(drawn.figure, folder / "figures" / f"chain-{name}.png")
    condition = condition_latex = None
    if reason is None:
        bound = chain_bound(cell)
        condition, condition_latex = to_text(bound.vanishing), to_latex(bound.vanishing)
    rows = []
    for label, found in drawn.regimes.items():
        rows.append([label.removeprefix(f"{spec}, gain "), *regime_cells(found)])
    header = ["gain", "bound's rate", "measured rate", "regime", "confidence", "within the bound"]
    derivation = derivation_to_markdown(gf.derive(cell))
    demoted = "\n".join("#" + line if line.startswith("#") else line for line in derivation.splitlines())
    page = [
        "[← the summary](../index.md)",
        "",
        f"# {spec}",
        "",
        f"{cell.description}" if getattr(cell, "description", "") else "",
        "",
        f"Random instances: {sizes.setting.describe()}; the recurrent weights scaled by the gain, inputs "
        "N(0, 1). Rates are per step, natural log, of ‖∂s(T)/∂s(T−k)‖₂ against k; the bound's rate is "
        "the γ-bound of one step (Pascanu et al. 2013).",
        "",
        markdown_table(header, rows),
        "",
        (
            f"Vanishing is guaranteed when ${condition_latex}$."
            if condition_latex
            else f"No chain bound: {reason}."
        ),
        "",
        f"![chain norms of {spec}](../figures/chain-{name}.png)",
        "",
        f"![the unrolled graph of {spec}](../graphs/{name}.png)",
        "",
        demoted,
    ]
    (folder / "cells" / f"{name}.md").write_text("\n".join(page) + "\n", encoding="utf-8")
    return _CellResult(spec, drawn, condition, condition_latex, reason)


def _overview(folder: Path, sizes: ReportSettings, bar: Progress) -> dict[str, tuple[str, str]]:
    """The figures of the index: file name -> (title, caption)."""
    import gradflow as gf

    figures: dict[str, tuple[str, str]] = {}

    def keep(name: str, drawn: Any, heading: str, caption: str) -> None:
        gf.plot.save(drawn.figure, folder / "figures" / name)
        figures[name] = (heading, caption)

    setting = sizes.setting
    bar.step("overview")
    keep(
        "overview.png",
        chain_norms_figure(
            list(COMPARED),
            [1.0],
            setting,
            bounds=False,
            title=f"Elman, LSTM and GRU at gain 1 ({setting.describe()})",
        ),
        "Elman, LSTM and GRU side by side",
        "The norm of the Jacobian chain against the lag at gain 1: how fast each cell forgets.",
    )
    for family, spec in FAMILIES:
        bar.step(f"regime map: {family}")
        keep(
            f"regime-{slug(spec)}.png",
            regime_map_figure(
                spec,
                sizes.map_ns,
                sizes.map_gains,
                sizes.map_setting,
                executor="serial",
                title=f"Regime map of {family} ({spec}; T = {sizes.map_setting.T}, B = {sizes.map_setting.B}, "
                f"orthogonal init, seed {setting.seed})",
            ),
            f"Regime map: {family}",
            "The measured rate over the gain and the state size; the black line is where the bound's rate "
            "is 0 (vanishing is guaranteed on its negative side).",
        )
    bar.step("Lyapunov spectra")
    keep(
        "lyapunov-elman.png",
        lyapunov_figure("elman", sizes.lyapunov_gains, setting.with_(B=min(setting.B, 4))),
        "Lyapunov spectrum of the Elman cell",
        "The exponents of the Jacobian product (QR method), and the largest against the gain: the "
        "chain contracts in every direction while the largest is below 0.",
    )
    bar.step("gradient per step")
    keep(
        "gradient-per-step.png",
        gradient_per_step_figure(list(COMPARED), 1.0, setting),
        "The gradient reaching each input step",
        "‖∂L/∂x(t)‖ for a loss on the last step, against the steps back from it (gain 1).",
    )
    bar.step("skip connections")
    keep(
        "skip.png",
        chain_norms_figure(
            ["elman", "skip(delay=2)", "skip(delay=4)"],
            [0.5],
            setting,
            bounds=False,
            title=f"Skip connections through time at gain 0.5 ({setting.describe()})",
        ),
        "Skip connections through time",
        "With connections d steps back, the shortest path from h(j) to h(i) has ⌊k/d⌋ + k mod d "
        "edges: the chain decays in k/d instead of k (see skip_paths.md).",
    )
    return figures


def _skip_paths(
    folder: Path, delays: Sequence[int] = (2, 3, 4), lags: Sequence[int] = (6, 12, 24, 48)
) -> None:
    """skip_paths.md: path counts and shortest paths of skip connections."""
    from gradflow import cells
    from gradflow.graph import count_paths, shortest_path_length, unroll

    rows = []
    for d in delays:
        graph = unroll(cells.skip(delay=d), max(lags) + 1)
        for k in lags:
            count = count_paths(graph, ("h", 0), ("h", k))
            short = shortest_path_length(graph, ("h", 0), ("h", k))
            rows.append([d, k, count, short, f"{k / d:.1f}"])
    table = markdown_table(["d", "k = i − j", "paths h(j) → h(i)", "shortest path", "k/d"], rows)
    (folder / "skip_paths.md").write_text(
        "# Skip connections through time (seed 003, C16)\n\n"
        "Paths from h(j) to h(i) are the compositions of k into parts 1 and d; the shortest has\n"
        "⌊k/d⌋ + (k mod d) edges, so the gradient's decay exponent scales with k/d.\n\n" + table + "\n",
        encoding="utf-8",
    )


def _regimes_page(folder: Path, results: list[_CellResult], sizes: ReportSettings) -> None:
    rows = []
    for result in results:
        for label, found in result.drawn.regimes.items():
            rows.append([result.spec, label.removeprefix(f"{result.spec}, gain "), *regime_cells(found)])
    header = ["cell", "gain", "bound's rate", "measured rate", "regime", "confidence", "within the bound"]
    (folder / "regimes.md").write_text(
        "# Predicted and measured regimes\n\n"
        f"Each cell is simulated ({sizes.setting.describe()}; orthogonal recurrent weights times the gain, "
        "inputs N(0, 1)); the rate is the fitted slope of log ‖∂s(T)/∂s(T−k)‖₂ in k (per step, natural "
        "log), the bound's rate the log of the step bound with γ (Pascanu et al. 2013): vanishing is "
        "guaranteed when it is negative, and no measured rate may exceed it.\n\n"
        + markdown_table(header, rows)
        + "\n",
        encoding="utf-8",
    )


def _provenance(sizes: ReportSettings) -> str:
    import numpy
    import sympy

    import gradflow

    return (
        f"gradflow {gradflow.__version__}, Python {platform.python_version()}, NumPy {numpy.__version__}, "
        f"sympy {sympy.__version__}; seed {sizes.setting.seed}"
    )


def _index(
    folder: Path,
    results: list[_CellResult],
    figures: dict[str, tuple[str, str]],
    sizes: ReportSettings,
    *,
    pdf_made: bool,
) -> None:
    gains = sizes.gains
    rows = []
    for result in results:
        cells = []
        for gain in gains:
            found = next(
                (r for label, r in result.drawn.regimes.items() if label.endswith(f"gain {gain:g}")), None
            )
            cells.append(verdict(found) if found is not None else "no bound")
        name = slug(result.spec)
        links = f"[page](cells/{name}.md) · [figure](figures/chain-{name}.png)"
        rows.append([f"[{result.spec}](cells/{name}.md)", *cells, links])
    header = ["cell", *(f"gain {g:g}" for g in gains), "details"]
    counts = {"vanishing": 0, "exploding": 0, "neutral": 0}
    for result in results:
        for found in result.drawn.regimes.values():
            if found is not None:
                counts[found.label] += 1
    conditions = [
        f"- **{r.spec}**: ${r.condition_latex}$"
        if r.condition_latex
        else f"- **{r.spec}**: no chain bound ({r.no_bound})"
        for r in results
    ]
    if pdf_made:
        pdf_line = "The whole report, derivations included, is also [report.pdf](report.pdf)."
    else:
        pdf_line = (
            "report.pdf was not written: pdflatex is not installed (Debian/Ubuntu: apt-get install "
            "texlive-latex-base texlive-latex-recommended), or --no-pdf was given."
        )
    lines = [
        "# gradflow report: which gradients vanish, which explode, and why",
        "",
        f"Every built-in cell, simulated on random instances ({sizes.setting.describe()}; recurrent weights "
        "scaled by the gain, inputs N(0, 1)), its Jacobian chain ‖∂s(T)/∂s(T−k)‖₂ measured at every lag, "
        "and the measured rate per step set beside the bound's (Pascanu, Mikolov and Bengio's bound with "
        "γ = sup|σ′|). Each entry reads: the regime, the measured factor per step (e^rate), and the "
        "bound's factor, which no measurement may exceed; below 1 the bound guarantees vanishing.",
        "",
        f"Of {sum(counts.values())} measurements: {counts['vanishing']} vanishing, {counts['exploding']} "
        f"exploding, {counts['neutral']} neutral. Confidences and standard errors: [regimes.md](regimes.md).",
        "",
        markdown_table(header, rows),
        "",
        "## Why: the vanishing conditions",
        "",
        "The bound of one step, with γ, below 1 (each cell's page derives it):",
        "",
        *conditions,
        "",
        pdf_line,
        "",
        "## Figures",
        "",
    ]
    for name, (title, caption) in figures.items():
        lines += [f"### {title}", "", caption, "", f"![{title}](figures/{name})", ""]
    lines += [
        "## Also here",
        "",
        "- [skip_paths.md](skip_paths.md): path counts of skip connections through time",
        "- graphs/: every cell's unrolled graph (DOT and PNG)",
        "",
        f"Made by {_provenance(sizes)}.",
        "",
    ]
    (folder / "index.md").write_text("\n".join(lines), encoding="utf-8")


def _pdf(
    folder: Path,
    results: list[_CellResult],
    figures: dict[str, tuple[str, str]],
    sizes: ReportSettings,
) -> None:
    """report.pdf: the summary, the figures and every derivation in one document."""
    import gradflow as gf
    from gradflow.export import compile_pdf
    from gradflow.export.document import NOTATION, PREAMBLE, bibliography, derivation_body
    from gradflow.export.names import escape_text

    references: list[str] = []

    def cite(citation: str) -> str:
        if not citation:
            return ""
        if citation not in references:
            references.append(citation)
        return rf"~\cite{{gf{references.index(citation) + 1}}}"

    def plain(text: str) -> str:
        return str(escape_text(text.replace("**", "")))

    rows = []
    for result in results:
        cells = []
        for gain in sizes.gains:
            found = next(
                (r for label, r in result.drawn.regimes.items() if label.endswith(f"gain {gain:g}")), None
            )
            cells.append(plain(compact(found)) if found is not None else "no bound")
        rows.append(" & ".join([plain(result.spec), *cells]) + r" \\")
    parts = [
        PREAMBLE,
        r"\usepackage{longtable}",
        r"\title{gradflow report: which gradients vanish, which explode, and why}",
        r"\author{gradflow}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        r"\noindent "
        + plain(
            f"Every built-in cell on random instances ({sizes.setting.describe()}; recurrent weights scaled "
            "by the gain, inputs N(0, 1)). Each entry: the regime, the measured factor per step of "
            "‖∂s(T)/∂s(T−k)‖₂ (e to the fitted rate) ≤ the bound's factor (Pascanu's bound with "
            "γ = sup|σ′|); (!) marks a measurement above the bound."
        ),
        "",
        r"\section*{At a glance}",
        r"{\footnotesize",
        r"\begin{longtable}{l" + "l" * len(sizes.gains) + "}",
        " & ".join(["cell", *(f"gain {g:g}" for g in sizes.gains)]) + r" \\ \hline",
        *rows,
        r"\end{longtable}}",
        r"\section*{The vanishing conditions}",
        r"\begin{itemize}",
    ]
    for result in results:
        if result.condition_latex:
            parts.append(rf"\item {plain(result.spec)}: $\gffit{{{result.condition_latex}}}$")
        else:
            parts.append(rf"\item {plain(result.spec)}: no chain bound.")
    parts += [r"\end{itemize}", r"\section*{Figures}"]
    resources = {}
    for name, (title, caption) in figures.items():
        resources[f"figures/{name}"] = folder / "figures" / name
        parts += [
            r"\begin{figure}[h!]\centering",
            rf"\includegraphics[width=0.95\textwidth]{{figures/{name}}}",
            rf"\caption{{{plain(title)}: {plain(caption)}}}",
            r"\end{figure}",
        ]
    parts += [r"\clearpage", r"\section*{The cells}", r"\noindent " + NOTATION]
    for result in results:
        name = slug(result.spec)
        resources[f"figures/chain-{name}.png"] = folder / "figures" / f"chain-{name}.png"
        parts += [
            r"\clearpage",
            rf"\section{{{plain(result.spec)}}}",
            r"\begin{center}",
            rf"\includegraphics[width=0.9\textwidth]{{figures/chain-{name}.png}}",
            r"\end{center}",
            derivation_body(gf.derive(parse_cell(result.spec)), cite=cite, heading="subsection*"),
        ]
    if references:
        parts += ["", bibliography(references)]
    parts += ["", r"\end{document}", ""]
    compile_pdf("\n".join(parts), folder / "report.pdf", timeout=300.0, resources=resources)
