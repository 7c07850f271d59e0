r"""``gradflow plot KIND CELL ...``: a figure of :mod:`gradflow.plot`, measured on random instances, written to a file.

Every figure draws cells initialised by :func:`gradflow.init_params` (``--scheme``, recurrent
weights times ``--gain``) at state size ``--n``, run on N(0, 1) inputs of ``-T`` steps and
``-B`` sequences, all drawn from ``--seed``: the same command gives the same file.

=================  ==========================================================================
kind               what is drawn
=================  ==========================================================================
chain-norms        ‖∂s(T)/∂s(T-k)‖ against k beside the bound, per cell and gain
regime-map         the fitted rate over gains and state sizes (a sweep), with the bound's edge
lyapunov           Lyapunov spectra per gain, and the largest exponent against the gain
singular-spectrum  log singular values of ∂s(T)/∂s(0), per cell and initialisation scheme
gradient-per-step  ‖∂L/∂x(t)‖ against the steps back from a loss on the last step, per cell
gates              gates and states of one sequence over time
=================  ==========================================================================
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gradflow.cli.specs import parse_sizes, positive
from gradflow.cli.sweep import COLUMNS
from gradflow.errors import UsageError
from gradflow.report.figures import (
    chain_norms_figure,
    gates_figure,
    gradient_per_step_figure,
    lyapunov_figure,
    regime_map_figure,
    singular_spectrum_figure,
)
from gradflow.report.instances import Setting
from gradflow.sweep import Record

__all__ = ["KINDS", "add_parser"]


_INT = functools.partial(positive, int)
_REAL = functools.partial(positive, float)


def add_parser(sub: Any) -> None:
    """Add ``gradflow plot`` to the command line's subparsers."""
    parser = sub.add_parser(
        "plot",
        help="draw a figure (chain norms, regime map, Lyapunov, ...) to a PNG, SVG or PDF file",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="kinds: " + ", ".join(KINDS),
    )
    parser.add_argument("kind", choices=list(KINDS), help="the figure")
    parser.add_argument(
        "cells", nargs="+", metavar="CELL", help="cell specs, e.g. elman lstm 'stack(elman, gru)'"
    )
    parser.add_argument(
        "--n", type=_INT, nargs="+", default=None, help="state sizes (default 32; regime-map 16 32)"
    )
    parser.add_argument(
        "--gain", type=_REAL, nargs="+", default=None, help="recurrent gains (default per kind)"
    )
    parser.add_argument("-T", type=_INT, default=None, help="steps (default 100; regime-map 60; gates 40)")
    parser.add_argument("-B", type=_INT, default=8, help="sequences (default 8)")
    parser.add_argument(
        "--sizes", nargs="*", default=[], help="the cells' other sizes, e.g. m=8 (default 4 each)"
    )
    parser.add_argument(
        "--scheme",
        nargs="+",
        choices=["gaussian", "orthogonal", "identity", "indrnn"],
        default=None,
        help="initialisation (default orthogonal; singular-spectrum: orthogonal gaussian)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    parser.add_argument(
        "--norm", choices=["spectral", "frobenius", "both"], default="spectral", help="chain-norms"
    )
    parser.add_argument(
        "--no-bound", action="store_true", help="chain-norms: measured norms only (cells without a bound)"
    )
    parser.add_argument("--repeats", type=_INT, default=1, help="regime-map: repeats per point (averaged)")
    parser.add_argument("--workers", type=_INT, help="regime-map: processes (default: CPUs)")
    parser.add_argument("--records", help="regime-map: draw the records of 'gradflow sweep -o FILE' instead")
    parser.add_argument("--kind", dest="style", choices=["heatmap", "lines"], default="heatmap", help="gates")
    parser.add_argument("-o", "--output", help="the file: .png, .svg or .pdf (default KIND-CELL.png)")
    parser.add_argument("--force", action="store_true", help="overwrite the file")
    parser.add_argument("--dpi", type=_REAL, default=100.0, help="PNG resolution (default 100)")
    parser.set_defaults(run=_cmd_plot)


def _output(args: argparse.Namespace) -> Path:
    if args.output is None:
        slug = "-".join("".join(ch if ch.isalnum() else "_" for ch in c).strip("_") for c in args.cells)
        target = Path(f"{args.kind}-{slug}.png")
    else:
        target = Path(args.output)
    if target.is_dir():
        raise UsageError(f"-o {target} is a folder; give a file name")
    if target.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"-o {target}: write .png, .svg or .pdf")
    if not target.resolve().parent.is_dir():
        raise UsageError(f"-o {target}: the folder {target.parent} does not exist")
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; pass --force to overwrite it")
    return target


def _cmd_plot(args: argparse.Namespace) -> int:
    from gradflow.plot import save

    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    target = _output(args)  # before any work: a figure must not be lost to a bad path
    figure = KINDS[args.kind](args)
    save(figure, target, overwrite=args.force, dpi=args.dpi)
    print(f"wrote {target}")
    return 0


def _one(args: argparse.Namespace, what: str, values: Sequence[Any] | None, default: Any) -> Any:
    if values is None:
        return default
    if len(values) != 1:
        raise UsageError(f"{args.kind} takes one {what}; got {len(values)}")
    return values[0]


def _setting(args: argparse.Namespace, n: int, T: int, scheme: str = "orthogonal") -> Setting:
    return Setting(n=n, T=T, B=args.B, seed=args.seed, scheme=scheme, sizes=parse_sizes(args.sizes))


def _chain_norms(args: argparse.Namespace) -> Any:
    n = _one(args, "state size --n", args.n, 32)
    setting = _setting(args, n, args.T or 100, _one(args, "--scheme", args.scheme, "orthogonal"))
    gains = args.gain or [0.5, 1.0, 3.0]
    return chain_norms_figure(args.cells, gains, setting, bounds=not args.no_bound, norm=args.norm).figure


def _regime_map(args: argparse.Namespace) -> Any:
    import gradflow as gf

    spec = _one(args, "CELL", args.cells, None)
    if args.records:
        records = read_records(args.records)
        return gf.plot.regime_map(
            records, title=f"Regime map of {spec} (records of {Path(args.records).name})"
        )
    setting = _setting(args, 0, args.T or 60, _one(args, "--scheme", args.scheme, "orthogonal"))
    ns = args.n or [16, 32]
    gains = args.gain or [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
    return regime_map_figure(spec, ns, gains, setting, repeats=args.repeats, workers=args.workers).figure


def read_records(path: str) -> list[Record]:
    """The records of a regime map written by ``gradflow sweep -o FILE`` (.csv or .json).

    Raises
    ------
    UsageError
        For a missing file, another suffix, or rows without the sweep's columns.
    """
    source = Path(path)
    if not source.is_file():
        raise UsageError(f"--records {path}: no such file")
    try:
        if source.suffix.lower() == ".json":
            rows = json.loads(source.read_text(encoding="utf-8"))
        elif source.suffix.lower() == ".csv":
            with source.open(newline="", encoding="utf-8") as file:
                rows = list(csv.DictReader(file))
        else:
            raise UsageError(f"--records {path}: read .csv or .json (as 'gradflow sweep -o' writes)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        raise UsageError(f"--records {path}: cannot read it ({err})") from err
    if not isinstance(rows, list) or not rows:
        raise UsageError(f"--records {path}: no records in it")
    records = []
    for index, row in enumerate(rows):
        missing = [c for c in ("n", "gain", "repeat", *COLUMNS) if not isinstance(row, dict) or c not in row]
        if missing:
            raise UsageError(
                f"--records {path}: row {index + 1} lacks {', '.join(missing)} (written by gradflow sweep?)"
            )
        try:
            point = {"n": int(row["n"]), "gain": float(row["gain"]), "repeat": int(row["repeat"])}
            value = {c: float(row[c]) for c in ("predicted_rate", "rate", "standard_error", "confidence")}
        except ValueError as err:
            raise UsageError(
                f"--records {path}: row {index + 1} holds a value that is not a number ({err})"
            ) from err
        value["label"] = row["label"]
        records.append(Record(index, point, None, value))
    return records


def _lyapunov(args: argparse.Namespace) -> Any:
    spec = _one(args, "CELL", args.cells, None)
    n = _one(args, "state size --n", args.n, 32)
    setting = _setting(args, n, args.T or 100, _one(args, "--scheme", args.scheme, "orthogonal"))
    gains = args.gain or [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]
    return lyapunov_figure(spec, gains, setting).figure


def _singular_spectrum(args: argparse.Namespace) -> Any:
    n = _one(args, "state size --n", args.n, 32)
    gain = _one(args, "--gain", args.gain, 1.0)
    setting = _setting(args, n, args.T or 50)
    return singular_spectrum_figure(
        args.cells, args.scheme or ["orthogonal", "gaussian"], gain, setting
    ).figure


def _gradient_per_step(args: argparse.Namespace) -> Any:
    n = _one(args, "state size --n", args.n, 32)
    gain = _one(args, "--gain", args.gain, 1.0)
    setting = _setting(args, n, args.T or 100, _one(args, "--scheme", args.scheme, "orthogonal"))
    return gradient_per_step_figure(args.cells, gain, setting).figure


def _gates(args: argparse.Namespace) -> Any:
    spec = _one(args, "CELL", args.cells, None)
    n = _one(args, "state size --n", args.n, 16)
    gain = _one(args, "--gain", args.gain, 1.0)
    setting = _setting(args, n, args.T or 40, _one(args, "--scheme", args.scheme, "orthogonal"))
    return gates_figure(spec, gain, setting, kind=args.style).figure


#: The figures by kind.
KINDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "chain-norms": _chain_norms,
    "regime-map": _regime_map,
    "lyapunov": _lyapunov,
    "singular-spectrum": _singular_spectrum,
    "gradient-per-step": _gradient_per_step,
    "gates": _gates,
}
