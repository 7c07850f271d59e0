"""What every figure shares: the palette, new axes, batch statistics, checks of inputs, saving.

matplotlib is imported inside the functions: ``import gradflow`` never loads it.
Figures are made as :class:`matplotlib.figure.Figure` objects, not through
``pyplot``, so no window, display or global figure list is involved (the Agg
canvas draws them; Jupyter shows a returned figure as usual).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradflow._io import atomic_write
from gradflow.errors import PlotError

__all__ = [
    "LN10",
    "PALETTE",
    "as_series",
    "band",
    "check_options",
    "colour",
    "figure_axes",
    "save",
    "settings",
    "to_numpy",
]

#: Okabe and Ito's colour-blind-safe palette (blue, vermillion, bluish green, reddish purple,
#: orange, sky blue, black, yellow), in the order the series take them.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

LN10 = math.log(10.0)

#: File formats :func:`save` writes, by suffix.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: Legend labels are wrapped at this many characters.
LEGEND_WIDTH = 40

#: Sizes in inches at 100 dpi: one axes, and one row of panels.
SINGLE = (8.0, 4.8)


def colour(index: int) -> str:
    """The palette's colour for the ``index``-th series (it cycles after eight)."""
    return PALETTE[index % len(PALETTE)]


def figure_axes(
    ax: Any = None, *, panels: int = 1, size: tuple[float, float] = SINGLE
) -> tuple[Any, list[Any]]:
    """A figure and its axes: new ones (a row of ``panels``), or the axes the caller gave.

    Parameters
    ----------
    ax : matplotlib Axes, sequence of Axes, or None
        Where to draw. A figure of ``panels`` panels needs that many axes.

    Raises
    ------
    PlotError
        When ``ax`` is not an Axes (or not as many as ``panels``).
    """
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if ax is None:
        width, height = size
        figure = Figure(figsize=(width * panels if panels > 1 else width, height), layout="constrained")
        axes = figure.subplots(1, panels, squeeze=False)[0]
        return figure, list(axes)
    given = [ax] if isinstance(ax, Axes) else list(ax) if isinstance(ax, Sequence) else [ax]
    if len(given) != panels or not all(isinstance(a, Axes) for a in given):
        kinds = ", ".join(type(a).__name__ for a in given)
        raise PlotError(
            f"ax must be {'a matplotlib Axes' if panels == 1 else f'{panels} matplotlib Axes (one per panel)'}; "
            f"got {kinds}"
        )
    return given[0].figure, given


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy copy of an array of any backend (CuPy, array_api_strict, torch on the CPU)."""
    from gradflow.numeric.backend import to_numpy as convert

    return np.asarray(convert(array), dtype=float)


def band(values: np.ndarray, quantiles: tuple[float, float], axis: int = -1) -> tuple[np.ndarray, ...]:
    """Median and the two quantiles of ``values`` along ``axis`` (the batch), ``-inf`` kept as such."""
    low, high = quantiles
    # -inf (a norm that is exactly 0) as the most negative float, so that interpolating between two
    # of them is not inf - inf; a quantile that lands anywhere near there (an interpolation between it
    # and a real value; no log of a float is below -1e300) is -inf again
    floor = np.finfo(float).min
    finite = np.where(np.isneginf(values), floor, values)
    out = []
    for q in (0.5, low, high):
        value = np.quantile(finite, q, axis=axis)
        out.append(np.where(value < -1e300, -np.inf, value))
    return tuple(out)


def check_options(quantiles: Any) -> tuple[float, float]:
    """A quantile band ``(low, high)`` with ``0 <= low < 0.5 < high <= 1``."""
    try:
        low, high = (float(q) for q in quantiles)
    except (TypeError, ValueError) as err:
        raise PlotError(
            f"quantiles must be two numbers (low, high), e.g. (0.1, 0.9); got {quantiles!r}"
        ) from err
    if not 0.0 <= low < 0.5 < high <= 1.0:
        raise PlotError(
            f"quantiles must satisfy 0 <= low < 0.5 < high <= 1 (a band around the median); got {quantiles!r}"
        )
    return low, high


def as_series(results: Any, accepted: tuple[type, ...], what: str) -> dict[str, Any]:
    """``{label: result}`` from one result, a mapping of labels to results, or a sequence of results.

    A single result or a sequence gets labels from ``label(result)`` where the
    result carries its cell (a chain's trajectory), else ``"1"``, ``"2"``, ...

    Raises
    ------
    PlotError
        For nothing to draw, or an entry that is not one of ``accepted``.
    """
    if isinstance(results, accepted):
        series = {_default_label(results, 0): results}
    elif isinstance(results, Mapping):
        series = {str(label): value for label, value in results.items()}
    elif isinstance(results, Sequence) and not isinstance(results, str | bytes):
        series = {}
        for index, value in enumerate(results):
            label = _default_label(value, index)
            series[label if label not in series else f"{label} ({index + 1})"] = value
    else:
        raise PlotError(f"expected {what}, or a dict of label -> {what}; got {type(results).__name__}")
    if not series:
        raise PlotError(f"nothing to draw: give at least one {what}")
    return series


def _default_label(result: Any, index: int) -> str:
    trajectory = getattr(result, "trajectory", None)
    cell = getattr(trajectory, "cell", None)
    return str(cell.name) if cell is not None else str(index + 1)


def settings(trajectories: list[Any]) -> str:
    """`` (cell, T = .., B = ..)`` for a title: what every one of the trajectories shares ("" if nothing)."""
    if not trajectories or any(t is None for t in trajectories):
        return ""
    cells = {t.cell.name for t in trajectories}
    shapes = {(t.T, t.B) for t in trajectories}
    facts = [next(iter(cells))] if len(cells) == 1 else []
    if len(shapes) == 1:
        T, B = next(iter(shapes))
        facts.append(f"T = {T}, B = {B}")
    return " (" + ", ".join(facts) + ")" if facts else ""


def wrong_kind(label: str, value: Any, what: str, hint: str = "") -> PlotError:
    """The error for a series entry of the wrong kind, naming the entry and what was expected."""
    return PlotError(f"{label!r} is a {type(value).__name__}, not {what}{'; ' + hint if hint else ''}")


_SAVE_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None},
}


def save(figure: Any, path: str | os.PathLike[str], *, overwrite: bool = False, dpi: float = 100.0) -> Path:
    """Write a figure as PNG, SVG or PDF (by the file's suffix), atomically.

    The file appears whole or not at all; an existing file is replaced only
    with ``overwrite=True``. The same figure gives the same bytes on every run
    (no dates or software stamps in the metadata, fixed SVG ids).

    Parameters
    ----------
    figure : matplotlib Figure
        What a :mod:`gradflow.plot` function returned.
    path : str or os.PathLike
        Ends in ``.png``, ``.svg`` or ``.pdf``.
    overwrite : bool, default False
    dpi : float, default 100
        Resolution of a PNG (vector formats ignore it).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    PlotError
        For another suffix, something that is not a figure, a non-positive
        ``dpi``, an existing file without ``overwrite``, or a missing folder.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, gradflow as gf
    >>> params = {"W_h": 0.5 * np.eye(2), "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    >>> chain = gf.jacobian_chain(gf.cells.elman(), params, np.zeros((5, 1, 1)))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chain.png"
    >>> gf.plot.save(gf.plot.chain_norms(chain), path).suffix
    '.png'
    """
    import matplotlib
    from matplotlib.figure import Figure

    if not isinstance(figure, Figure):
        raise PlotError(
            f"save() takes a matplotlib Figure (what a gradflow.plot function returns), got {type(figure).__name__}"
        )
    target = Path(path)
    kind = FORMATS.get(target.suffix.lower())
    if kind is None:
        raise PlotError(f"cannot save {str(target)!r}: the file must end in .png, .svg or .pdf")
    if isinstance(dpi, bool) or not isinstance(dpi, int | float) or not 0 < dpi < math.inf:
        raise PlotError(f"dpi must be a positive number, got {dpi!r}")

    # constrained layout settles on the second pass: draw once first, so that a figure saves the same
    # bytes whether or not it was drawn before
    figure.draw_without_rendering()

    def write(temporary: str) -> None:
        with matplotlib.rc_context({"svg.hashsalt": "gradflow"}):
            figure.savefig(temporary, format=kind, dpi=dpi, metadata=_SAVE_METADATA[kind])
        if kind == "svg":
            _number_clip_paths(Path(temporary))

    return atomic_write(target, write, overwrite, PlotError)


def title(figure: Any, axes: Any, text: str, own: bool) -> None:
    """The title: over the whole figure when it is ours (clear of a colour bar's label), else the axes'."""
    if own:
        figure.suptitle(text, x=0.01, ha="left", wrap=True)
    else:
        axes.set_title(text, loc="left", wrap=True)


def _number_clip_paths(path: Path) -> None:
    """Name an SVG's clip paths ``clip1``, ``clip2``, ... in order of appearance.

    matplotlib hashes a clip path's id from the memory address of its path object, so the same
    figure would get other ids in every run.
    """
    import re

    text = path.read_text(encoding="utf-8")
    names: dict[str, str] = {}
    for found in re.findall(r'<clipPath id="(p[0-9a-f]{10})"', text):
        names.setdefault(found, f"clip{len(names) + 1}")
    if names:
        pattern = re.compile("|".join(map(re.escape, names)))
        text = pattern.sub(lambda match: names[match.group(0)], text)
        path.write_text(text, encoding="utf-8")


def legend(ax: Any, handles: list[Any] | None = None, *, below: bool = False) -> Any:
    """A legend outside the axes (never over the data or the labels): on the right, or below.

    Labels longer than :data:`LEGEND_WIDTH` characters are wrapped, so that a long label never
    squeezes the axes.
    """
    import textwrap

    if handles is None:
        handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return None
    labels = [
        "\n".join(
            textwrap.fill(line, LEGEND_WIDTH, subsequent_indent="  ")
            for line in str(h.get_label()).split("\n")
        )
        for h in handles
    ]
    place: dict[str, Any]
    if below:
        place = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.14)}
    else:
        place = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    return ax.legend(handles, labels, frameon=False, fontsize="small", **place)


def finite_or_none(values: np.ndarray) -> np.ndarray:
    """``values`` with ``±inf`` as NaN, so that matplotlib leaves a gap instead of a spike."""
    out = np.array(values, dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out
