r"""``gradflow sweep CELL``: a regime map over state sizes, gains and repeats, on a process pool.

Each point initialises the cell (:func:`gradflow.init_params`: recurrent
weights scaled by the gain), simulates it on Gaussian inputs and fits the
exponential rate of :math:`\lVert\partial s^{(T)}/\partial s^{(T-k)}\rVert_2`
(:func:`gradflow.regime`), beside the bound's predicted rate (Pascanu et al.
2013). The points run through :func:`gradflow.sweep`; each has its own seed,
so the table is the same on any number of workers.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradflow._io import atomic_write
from gradflow.cli.specs import parse_cell, parse_sizes, positive
from gradflow.errors import GradflowError, UsageError
from gradflow.report.instances import other_sizes, regime_point
from gradflow.sweep import Record, sweep
from gradflow.symbolic.bounds import chain_bound

__all__ = ["add_parser", "regime_point"]

#: The measured and predicted quantities of one point, in the table's order.
COLUMNS = ("predicted_rate", "rate", "standard_error", "label", "confidence", "consistent")


def _threads(text: str) -> int | None:
    """``--blas-threads``: a positive int, or ``default`` (None: the libraries' own numbers)."""
    return None if text == "default" else positive(int, text)


def add_parser(sub: Any) -> None:
    """Add ``gradflow sweep`` to the command line's subparsers."""
    parser = sub.add_parser(
        "sweep",
        help="regime map: measured vs predicted rates over sizes and gains (a process pool)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("cell", help="a cell spec, e.g. elman, lstm, 'stack(elman, gru)'")
    parser.add_argument("--n", type=functools.partial(positive, int), nargs="+", default=[16])
    parser.add_argument(
        "--gain",
        type=functools.partial(positive, float),
        nargs="+",
        default=[0.5, 1.0, 2.0],
        help="gains of the recurrent weights (default 0.5 1 2)",
    )
    parser.add_argument("-T", type=functools.partial(positive, int), default=60, help="steps (default 60)")
    parser.add_argument("-B", type=functools.partial(positive, int), default=2, help="batch (default 2)")
    parser.add_argument(
        "--sizes", nargs="*", default=[], help="the cell's other sizes, e.g. m=8 (each defaults to 4)"
    )
    parser.add_argument(
        "--scheme", choices=["gaussian", "orthogonal", "identity", "indrnn"], default="orthogonal"
    )
    parser.add_argument("--repeats", type=functools.partial(positive, int), default=1)
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--workers", type=functools.partial(positive, int), help="processes (default: CPUs)")
    parser.add_argument(
        "--blas-threads",
        type=_threads,
        default=1,
        metavar="N|default",
        help="BLAS/OpenMP threads each point runs on (default 1: the workers share the cores, and the "
        "numbers do not depend on BLAS's threads; 'default': each library's own, usually one per core)",
    )
    parser.add_argument("-o", "--output", help="also write the records: FILE.csv or FILE.json")
    parser.add_argument("--force", action="store_true", help="overwrite the file")
    parser.set_defaults(run=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    cell = parse_cell(args.cell)  # a bad spec fails here, before any worker starts
    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    sizes = other_sizes(args.cell, cell, parse_sizes(args.sizes))
    suffix = Path(args.output).suffix.lower() if args.output else None
    if suffix not in (None, ".csv", ".json"):
        raise UsageError(f"-o {args.output}: write .csv or .json")
    if args.output:  # before any worker starts: a sweep must not be lost to a bad path
        target = Path(args.output)
        if target.is_dir():
            raise UsageError(f"-o {args.output} is a folder; give a file name ending in .csv or .json")
        if not target.resolve().parent.is_dir():
            raise UsageError(f"-o {args.output}: the folder {target.parent} does not exist")
        if target.exists() and not args.force:
            raise UsageError(f"{args.output} exists; pass --force to overwrite it")
    if args.T < 3:
        raise UsageError(f"-T {args.T}: a regime fits a rate over lags 1..T and needs T >= 3")
    try:  # a cell the bound does not cover fails here, not on every worker
        chain_bound(cell, gamma_mode="value")
    except GradflowError as err:
        raise UsageError(f"cell {args.cell!r} has no regime to map: {err}") from err
    point = functools.partial(
        regime_point, cell=args.cell, T=args.T, B=args.B, sizes=sizes, scheme=args.scheme
    )
    grid = {"n": args.n, "gain": args.gain, "repeat": list(range(args.repeats))}
    records = sweep(point, grid, seed=args.seed, workers=args.workers, blas_threads=args.blas_threads)
    print(_table(args.cell, records))
    if args.output:
        write = _write_json if suffix == ".json" else _write_csv
        atomic_write(args.output, functools.partial(write, records), args.force, UsageError)
        print(f"wrote {args.output}")
    return 0


def _table(cell: str, records: Sequence[Record]) -> str:
    rows = [
        f"regime map of {cell}: rates are per step (natural log) of log ||ds(T)/ds(T-k)||_2",
        "",
        "| n | gain | repeat | bound's rate | measured rate | regime | confidence | within the bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        v = r.value
        rows.append(
            f"| {r.point['n']} | {r.point['gain']:g} | {r.point['repeat']} | {v['predicted_rate']:+.4f} | "
            f"{v['rate']:+.4f} ± {v['standard_error']:.1e} | {v['label']} | {v['confidence']:.3f} | "
            f"{'yes' if v['consistent'] else 'NO'} |"
        )
    return "\n".join(rows)


def _rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [
        {**r.as_dict(), "seconds": r.seconds, **{f"provenance.{k}": v for k, v in r.provenance.items()}}
        for r in records
    ]


def _write_csv(records: Sequence[Record], path: str) -> None:
    rows = _rows(records)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_json(records: Sequence[Record], path: str) -> None:
    """Strict JSON: a rate of -inf (a chain that became exactly 0) is written as the string "-inf"."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    rows = [{k: plain(v) for k, v in row.items()} for row in _rows(records)]
    Path(path).write_text(json.dumps(rows, indent=1, allow_nan=False) + "\n", encoding="utf-8")
