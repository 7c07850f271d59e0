r"""``gradflow check CELL``: a cell's derivation and kernels against independent referees.

Step Jacobians against sympy's componentwise differentiation, the compiled
forward step against sympy, BPTT gradients and the Jacobian chain against
central finite differences, truncation at full depth against the full
gradient, and the chain bound against the actual norms
(:func:`gradflow.numeric.check.check_cell`). Exits with 1 when a check fails.
"""

from __future__ import annotations

import argparse
from typing import Any

from gradflow.cli.specs import parse_cell, parse_sizes
from gradflow.errors import UsageError
from gradflow.numeric.check import Check, check_cell

__all__ = ["add_parser", "format_checks"]


def add_parser(sub: Any) -> None:
    """Add ``gradflow check`` to the command line's subparsers."""
    parser = sub.add_parser(
        "check",
        help="check a cell's Jacobians, kernels and gradients against referees (sympy, finite differences)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("cell", help="a cell spec: elman, 'stack(lstm, gru)', or your own FILE.py:NAME")
    parser.add_argument("--sizes", nargs="*", default=[], help="integer sizes, e.g. n=3 m=2 (default 2 each)")
    parser.add_argument("-T", type=int, default=4, help="steps of the numeric checks (default 4)")
    parser.add_argument("-B", type=int, default=2, help="batch of the numeric checks (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random numbers (default 0)")
    parser.set_defaults(run=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    cell = parse_cell(args.cell)
    sizes = parse_sizes(args.sizes)
    unknown = set(sizes) - {s.name for s in cell.size_symbols}
    if unknown:
        raise UsageError(
            f"--sizes: cell {args.cell!r} has no symbolic size {', '.join(sorted(unknown))} "
            f"(its sizes: {', '.join(sorted(s.name for s in cell.size_symbols)) or 'none'})"
        )
    if args.T < 1 or args.B < 1 or args.seed < 0:
        raise UsageError(
            f"-T and -B must be positive and --seed non-negative; got {args.T}, {args.B}, {args.seed}"
        )
    checks = check_cell(cell, sizes, T=args.T, B=args.B, seed=args.seed)
    print(format_checks(args.cell, checks))
    return 1 if any(c.passed is False for c in checks) else 0


def format_checks(title: str, checks: list[Check]) -> str:
    """A Markdown table of the checks, and a verdict line."""
    rows = [
        f"checks of {title}",
        "",
        "| check | result | worst relative error | tolerance | where |",
        "|---|---|---|---|---|",
    ]
    for c in checks:
        result = {True: "pass", False: "FAIL", None: "n/a"}[c.passed]
        error = "" if c.error is None else f"{c.error:.1e}"
        rows.append(f"| {c.name} | {result} | {error} | {c.tolerance:.0e} | {c.note} |")
    failed = [c.name for c in checks if c.passed is False]
    rows += ["", f"FAILED: {', '.join(failed)}" if failed else "all checks passed"]
    return "\n".join(rows)
