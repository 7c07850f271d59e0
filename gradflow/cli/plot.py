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
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gradflow.cli.specs import parse_cell
from gradflow.cli.sweep import COLUMNS, other_sizes, random_instance, regime_point
from gradflow.errors import GradflowError, UsageError
from gradflow.sweep import Record, sweep

__all__ = ["KINDS", "add_parser"]


def _positive(kind: type, text: str) -> Any:
    try:
        value = kind(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'an integer' if kind is int else 'a number'}"
        ) from err
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive and finite")
    return value


_INT = functools.partial(_positive, int)
_REAL = functools.partial(_positive, float)


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


def _setting(args: argparse.Namespace, n: int, T: int, scheme: str) -> str:
    return f"n = {n}, T = {T}, B = {args.B}, {scheme} init, seed {args.seed}"


def _instances(
    args: argparse.Namespace, spec: str, n: int, gain: float, T: int, scheme: str
) -> tuple[Any, ...]:
    """The cell, its parameters and inputs, and the cell at these sizes."""
    cell = parse_cell(spec)
    sizes = {**other_sizes(spec, cell, args.sizes), "n": n}
    params, inputs = random_instance(cell, n, gain, args.seed, T, args.B, sizes, scheme)
    return cell, params, inputs, cell.with_sizes(**{s.name: sizes[s.name] for s in cell.size_symbols})


def _chain_norms(args: argparse.Namespace) -> Any:
    import gradflow as gf

    n = _one(args, "state size --n", args.n, 32)
    scheme = _one(args, "--scheme", args.scheme, "orthogonal")
    T = args.T or 100
    gains = args.gain or [0.5, 1.0, 3.0]
    series: dict[str, Any] = {}
    for spec in args.cells:
        for gain in gains:
            cell, params, inputs, _ = _instances(args, spec, n, gain, T, scheme)
            chain = gf.jacobian_chain(cell, params, inputs)
            label = f"{spec}, gain {gain:g}" if len(gains) > 1 or len(args.cells) == 1 else spec
            if args.no_bound:
                series[label] = chain
                continue
            try:
                series[label] = (
                    gf.bound_vs_measured(cell, params, inputs, chain=chain),
                    gf.regime(cell, params, inputs),
                )
            except GradflowError as err:
                raise UsageError(
                    f"cell {spec!r} has no chain bound to draw ({err}); pass --no-bound for the measured norms alone"
                ) from err
    title = f"Jacobian chain norms against the lag ({_setting(args, n, T, scheme)})"
    return gf.plot.chain_norms(series, norm=args.norm, title=title)


def _regime_map(args: argparse.Namespace) -> Any:
    import gradflow as gf

    spec = _one(args, "CELL", args.cells, None)
    scheme = _one(args, "--scheme", args.scheme, "orthogonal")
    if args.records:
        records = read_records(args.records)
        return gf.plot.regime_map(
            records, title=f"Regime map of {spec} (records of {Path(args.records).name})"
        )
    cell = parse_cell(spec)
    sizes = other_sizes(spec, cell, args.sizes)
    T = args.T or 60
    if T < 3:
        raise UsageError(f"-T {T}: a regime fits a rate over lags 1..T and needs T >= 3")
    try:
        gf.symbolic.chain_bound(cell, gamma_mode="value")
    except GradflowError as err:
        raise UsageError(f"cell {spec!r} has no regime to map: {err}") from err
    point = functools.partial(regime_point, cell=spec, T=T, B=args.B, sizes=sizes, scheme=scheme)
    grid = {
        "n": args.n or [16, 32],
        "gain": args.gain or [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
        "repeat": list(range(args.repeats)),
    }
    records = sweep(point, grid, seed=args.seed, workers=args.workers)
    title = f"Regime map of {spec} (T = {T}, B = {args.B}, {scheme} init, {args.repeats} repeat(s), seed {args.seed})"
    return gf.plot.regime_map(records, title=title)


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
    import gradflow as gf
    from gradflow.plot._style import figure_axes

    spec = _one(args, "CELL", args.cells, None)
    n = _one(args, "state size --n", args.n, 32)
    scheme = _one(args, "--scheme", args.scheme, "orthogonal")
    T = args.T or 100
    gains = sorted(args.gain or [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0])
    spectra, rates = {}, []
    bounded = True
    for gain in gains:
        cell, params, inputs, _ = _instances(args, spec, n, gain, T, scheme)
        spectra[gain] = gf.numeric.lyapunov_spectrum(cell, params, inputs)
        if bounded:
            try:
                rates.append(gf.regime(cell, params, inputs).predicted_rate)
            except GradflowError:  # a cell without a chain bound: no edge to mark
                bounded = False
    edge = _zero_crossing(gains, rates) if bounded else None
    figure, (left, right) = figure_axes(None, panels=2, size=(6.4, 4.6))
    shown = gains if len(gains) <= 4 else [gains[0], *gains[len(gains) // 2 : len(gains) // 2 + 1], gains[-1]]
    gf.plot.lyapunov({f"gain {g:g}": spectra[g] for g in shown}, ax=left, title="spectra")
    gf.plot.lyapunov_vs_gain(
        spectra,
        edge=edge,
        edge_label="bound's rate = 0",
        ax=right,
        title="largest exponent",
    )
    figure.suptitle(f"Lyapunov exponents of {spec} ({_setting(args, n, T, scheme)})")
    return figure


def _zero_crossing(gains: Sequence[float], rates: Sequence[float]) -> float | None:
    """The gain where the bound's rate crosses 0, interpolated in log gain (exact for log(γ gain))."""
    for i, (gain, rate) in enumerate(zip(gains, rates, strict=True)):
        if rate == 0:
            return gain
        if i + 1 < len(gains) and (rate < 0) != (rates[i + 1] < 0) and math.isfinite(rate + rates[i + 1]):
            share = rate / (rate - rates[i + 1])
            return math.exp(math.log(gain) + share * (math.log(gains[i + 1]) - math.log(gain)))
    return None


def _singular_spectrum(args: argparse.Namespace) -> Any:
    import gradflow as gf

    n = _one(args, "state size --n", args.n, 32)
    gain = _one(args, "--gain", args.gain, 1.0)
    schemes = args.scheme or ["orthogonal", "gaussian"]
    T = args.T or 50
    series = {}
    for spec in args.cells:
        for scheme in schemes:
            cell, params, inputs, _ = _instances(args, spec, n, gain, T, scheme)
            series[f"{spec}, {scheme}"] = gf.jacobian_chain(cell, params, inputs, singular_values=True)
    title = (
        f"Singular values of ∂s(T)/∂s(0) (n = {n}, T = {T}, B = {args.B}, gain {gain:g}, seed {args.seed})"
    )
    return gf.plot.singular_spectrum(series, title=title)


def _gradient_per_step(args: argparse.Namespace) -> Any:
    import numpy as np

    import gradflow as gf

    n = _one(args, "state size --n", args.n, 32)
    gain = _one(args, "--gain", args.gain, 1.0)
    scheme = _one(args, "--scheme", args.scheme, "orthogonal")
    T = args.T or 100
    series = {}
    for spec in args.cells:
        cell, params, inputs, concrete = _instances(args, spec, n, gain, T, scheme)
        upstream = {}
        rng = np.random.default_rng(args.seed)
        for state, size in concrete.states.items():
            if state in cell.backward:
                continue
            array = np.zeros((T, args.B, int(size)))
            array[-1] = rng.normal(size=(args.B, int(size)))
            upstream[state] = array
        series[spec] = gf.bptt(cell, params, inputs, upstream)
    title = f"Gradient reaching each input step from a loss at t = T ({_setting(args, n, T, scheme)}, gain {gain:g})"
    return gf.plot.gradient_per_step(series, title=title)


def _gates(args: argparse.Namespace) -> Any:
    import gradflow as gf

    spec = _one(args, "CELL", args.cells, None)
    n = _one(args, "state size --n", args.n, 16)
    gain = _one(args, "--gain", args.gain, 1.0)
    scheme = _one(args, "--scheme", args.scheme, "orthogonal")
    T = args.T or 40
    cell, params, inputs, _ = _instances(args, spec, n, gain, T, scheme)
    trajectory = gf.simulate(cell, params, inputs)
    title = (
        f"Gates and states of {spec} over time (sequence 0; {_setting(args, n, T, scheme)}, gain {gain:g})"
    )
    return gf.plot.gates(trajectory, kind=args.style, title=title)


#: The figures by kind.
KINDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "chain-norms": _chain_norms,
    "regime-map": _regime_map,
    "lyapunov": _lyapunov,
    "singular-spectrum": _singular_spectrum,
    "gradient-per-step": _gradient_per_step,
    "gates": _gates,
}
