r"""The ``gradflow`` command.

``gradflow report`` is the main job: on built-in defaults it writes a folder
(:mod:`gradflow.report.cells`) whose ``index.md`` says which built-in cells'
gradients vanish, which explode, and why (measured rates beside the bound's,
the vanishing conditions, the figures), with a page per cell (its whole
derivation, its chain norms, its unrolled graph) and, with pdflatex, all of it
as ``report.pdf``. ``gradflow plot KIND CELL`` draws one figure
(:mod:`gradflow.cli.plot`); ``gradflow analyze MODEL`` diagnoses a trained
PyTorch model (:mod:`gradflow.cli.analyze`). ``gradflow derive CELL`` (as text, LaTeX, a
standalone document, Markdown or PDF), ``gradflow graph CELL`` and
``gradflow paths CELL`` do one part each; ``gradflow cells`` lists the cells;
``gradflow derivations`` regenerates the repository's ``derivations/`` folder
(every report cell and the source documents' three classic arguments, as
``.tex`` and ``.md``); ``gradflow sweep CELL`` draws a regime map over state
sizes and gains on a process pool (:mod:`gradflow.cli.sweep`); ``gradflow check
CELL`` checks a cell's Jacobians, kernels and gradients against independent
referees (:mod:`gradflow.cli.check`). Your own cell is ``FILE.py:NAME``.

A CELL is a built-in name, optionally called with literal arguments, and
combinators nest: ``lstm``, ``"skip(delay=4)"``, ``"elman('relu')"``,
``"stack(lstm, gru)"``, ``"bidirectional(gru(reset_after=True))"``.

Errors exit with status 2 and one line on standard error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gradflow._io import atomic_write
from gradflow.cells.cell import Cell
from gradflow.cli.analyze import add_parser as add_analyze_parser
from gradflow.cli.check import add_parser as add_check_parser
from gradflow.cli.plot import add_parser as add_plot_parser
from gradflow.cli.specs import BUILTIN, parse_cell, parse_sizes
from gradflow.cli.sweep import add_parser as add_sweep_parser
from gradflow.errors import GradflowError, UsageError
from gradflow.export import (
    compile_pdf,
    derivation_to_document,
    derivation_to_latex,
    derivation_to_markdown,
    write_derivations,
)
from gradflow.export.text import derivation_to_text
from gradflow.graph import (
    count_paths,
    shortest_path_length,
    to_dot,
    unroll,
    write_dot,
    write_graphml,
    write_node_link,
    write_png,
)
from gradflow.report.cells import REPORT_CELLS
from gradflow.symbolic.derivation import derive

__all__ = ["BUILTIN", "main", "parse_cell"]


def describe(cell: Cell) -> str:
    """The cell's whole derivation (:func:`gradflow.derive`) as plain text."""
    return derivation_to_text(derive(cell))


def _node(text: str) -> tuple[str, int | None]:
    name, _, time = text.rpartition(":")
    if not name:
        return text, None
    try:
        return name, int(time)
    except ValueError as err:
        raise UsageError(f"node {text!r} must look like h:3 (name:time)") from err


# -- commands ------------------------------------------------------------------


def _cmd_cells(args: argparse.Namespace) -> int:
    for name in BUILTIN:
        cell = parse_cell(name)
        print(f"{name:16} {cell.description}")
    print(f"{'stack(a, b, ...)':16} layers stacked, each reading the one below")
    print(f"{'bidirectional(a)':16} a forwards and a copy backwards in time")
    return 0


_PRINTERS: dict[str, Callable[..., str]] = {
    "text": lambda d, **options: derivation_to_text(d),
    "latex": derivation_to_latex,
    "document": derivation_to_document,
    "markdown": derivation_to_markdown,
}


def _cmd_derive(args: argparse.Namespace) -> int:
    cell = parse_cell(args.cell)
    if args.sizes:
        cell = cell.with_sizes(**parse_sizes(args.sizes))
    derivation = derive(cell)
    options: dict[str, Any] = {}
    if args.format != "text":
        options = {"activation_derivative": args.activation_derivative, "bold_vectors": args.bold_vectors}
    if args.output is None:
        if args.format == "pdf":
            raise UsageError("--format pdf needs -o FILE")
        print(_PRINTERS[args.format](derivation, **options))
        return 0
    if Path(args.output).exists() and not args.force:
        raise UsageError(f"{args.output} exists; pass --force to overwrite it")
    if args.format == "pdf":
        compile_pdf(derivation, args.output, overwrite=args.force, **options)
    else:
        text = _PRINTERS[args.format](derivation, **options) + "\n"
        atomic_write(
            args.output, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), args.force, UsageError
        )
    print(f"wrote {args.output}")
    return 0


def _cmd_derivations(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.is_dir():
        if not out.parent.is_dir():
            raise UsageError(f"cannot create {out}: its folder {out.parent} does not exist")
        out.mkdir()
    written = write_derivations(out, {spec: parse_cell(spec) for spec in REPORT_CELLS}, overwrite=args.force)
    print(f"wrote {len(written)} files to {out}/")
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    ug = unroll(parse_cell(args.cell), args.T, loss=args.loss)
    if args.output is None:
        if args.format != "dot":
            raise UsageError(f"--format {args.format} needs -o FILE")
        sys.stdout.write(to_dot(ug))
        return 0
    writers = {"dot": write_dot, "graphml": write_graphml, "json": write_node_link}
    writers = {**writers, "png": write_png}
    if Path(args.output).exists() and not args.force:
        raise UsageError(f"{args.output} exists; pass --force to overwrite it")
    writers[args.format](ug, args.output, overwrite=args.force)
    print(f"wrote {args.output}")
    return 0


def _cmd_paths(args: argparse.Namespace) -> int:
    ug = unroll(parse_cell(args.cell), args.T)
    source, target = _node(args.source), _node(args.target)
    print(f"paths {source} -> {target}: {count_paths(ug, source, target)}")
    print(f"shortest path: {shortest_path_length(ug, source, target)} edges")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from gradflow.report.cells import write_report

    out = write_report(
        args.out,
        quick=args.quick,
        seed=args.seed,
        force=args.force,
        graph_T=args.T,
        pdf=False if args.no_pdf else None,
    )
    pdf = " report.pdf," if (out / "report.pdf").exists() else ""
    print(f"wrote {out}/ (index.md,{pdf} cells/, figures/, graphs/, regimes.md, skip_paths.md)")
    print(f"open {out / 'index.md'} first: which cells vanish, which explode, and why")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradflow", description=__doc__.split("\n\n")[0].strip("r"))
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report", help="the main job: a folder with the verdicts, figures and derivations of every cell"
    )
    report.add_argument("--out", default="gradflow-report", help="folder to write (default gradflow-report)")
    report.add_argument("--force", action="store_true", help="replace the folder if it exists")
    report.add_argument("--quick", action="store_true", help="small sizes: seconds instead of minutes")
    report.add_argument("--seed", type=int, default=0, help="seed of every random instance (default 0)")
    report.add_argument("--no-pdf", action="store_true", help="do not write report.pdf (needs pdflatex)")
    report.add_argument(
        "-T", type=int, default=4, help="steps of the drawn graphs (default 4; more where a delay needs it)"
    )
    report.set_defaults(run=_cmd_report)
    sub.add_parser("cells", help="list the built-in cells").set_defaults(run=_cmd_cells)
    derive = sub.add_parser("derive", help="a cell's whole derivation: text, LaTeX, Markdown or PDF")
    derive.add_argument("cell")
    derive.add_argument("--sizes", nargs="*", default=[], help="fix sizes, e.g. n=3 m=2")
    derive.add_argument(
        "--format",
        choices=["text", "latex", "document", "markdown", "pdf"],
        default="text",
        help="text (default); latex: an align fragment; document: a standalone .tex; markdown; pdf (needs -o)",
    )
    derive.add_argument("-o", "--output", help="file to write (standard output without it)")
    derive.add_argument("--force", action="store_true", help="overwrite the file")
    derive.add_argument(
        "--activation-derivative",
        choices=["prime", "explicit"],
        default="prime",
        help="LaTeX: tanh'(u) (prime) or 1 - tanh^2(u) (explicit)",
    )
    derive.add_argument("--bold-vectors", action="store_true", help="LaTeX: bold vectors")
    derive.set_defaults(run=_cmd_derive)
    derivations = sub.add_parser(
        "derivations", help="regenerate the derivations/ folder (.tex and .md of every cell and classic)"
    )
    derivations.add_argument("--out", default="derivations", help="folder to write (default derivations)")
    derivations.add_argument("--force", action="store_true", help="replace the files that exist")
    derivations.set_defaults(run=_cmd_derivations)
    graph = sub.add_parser("graph", help="unroll a cell and export its graph")
    graph.add_argument("cell")
    graph.add_argument("-T", type=int, default=3)
    graph.add_argument("--format", choices=["dot", "graphml", "json", "png"], default="dot")
    graph.add_argument("-o", "--output", help="file to write (DOT goes to stdout without it)")
    graph.add_argument("--force", action="store_true", help="overwrite the file")
    graph.add_argument("--loss", action="store_true", help="add the losses E(t) and L")
    graph.set_defaults(run=_cmd_graph)
    paths = sub.add_parser("paths", help="count dependency paths between two nodes")
    paths.add_argument("cell")
    paths.add_argument("-T", type=int, required=True)
    paths.add_argument("--from", dest="source", required=True, help="e.g. h:0")
    paths.add_argument("--to", dest="target", required=True, help="e.g. h:100")
    paths.set_defaults(run=_cmd_paths)
    add_check_parser(sub)
    add_sweep_parser(sub)
    add_plot_parser(sub)
    add_analyze_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on any error)."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except GradflowError as err:
        print(f"gradflow: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
