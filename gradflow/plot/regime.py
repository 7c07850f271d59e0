r"""Regime maps: the measured rate of a sweep over two of its axes, with the edge of the vanishing condition.

A heatmap of the rate :math:`\lambda` fitted by :func:`gradflow.regime` (the slope of
:math:`\log\lVert\partial s^{(T)}/\partial s^{(T-k)}\rVert_2` in :math:`k`) at every point of a
:func:`gradflow.sweep` (or ``gradflow sweep -o``), blue where gradients vanish and red where they
explode, on a diverging scale centred at 0; over it, the line where the bound's rate crosses 0
-- for Elman :math:`\gamma\lVert W_h\rVert_2 = 1`, Pascanu et al.'s sufficient condition for
vanishing holding on one side of it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradflow.errors import PlotError
from gradflow.plot._style import figure_axes
from gradflow.plot._style import title as title_
from gradflow.sweep import Record

__all__ = ["regime_map"]

_DEFAULT = object()

#: At most this many cells carry their value as text.
_ANNOTATE_AT_MOST = 144


def _rows(
    records: Any, x: str, y: str, value: str
) -> list[tuple[Mapping[str, Any], float, Mapping[str, Any]]]:
    """``(point, value, measured)`` per record; a failed record has value NaN and no measurement."""
    if isinstance(records, Record):
        records = [records]
    if not isinstance(records, Sequence) or isinstance(records, str | bytes):
        raise PlotError(
            f"regime_map takes the records of gf.sweep (a list of Record); got {type(records).__name__}"
        )
    if not records:
        raise PlotError("the sweep is empty: no records to draw")
    rows: list[tuple[Mapping[str, Any], float, Mapping[str, Any]]] = []
    for index, record in enumerate(records):
        if not isinstance(record, Record):
            raise PlotError(
                f"record {index} is a {type(record).__name__}, not a gradflow.sweep.Record "
                "(what gf.sweep returns)"
            )
        for axis in (x, y):
            if axis not in record.point:
                raise PlotError(
                    f"record {index} has no axis {axis!r}; its point has {', '.join(record.point) or 'nothing'}"
                )
        if record.error is not None:
            rows.append((record.point, math.nan, {}))
            continue
        measured = record.value if isinstance(record.value, Mapping) else {"value": record.value}
        if value not in measured:
            raise PlotError(
                f"record {index} ({_point_text(record.point)}) has no {value!r}; it holds "
                f"{', '.join(map(str, measured))}"
            )
        number = measured[value]
        if isinstance(number, bool) or not isinstance(number, numbers.Real) or math.isnan(number):
            raise PlotError(
                f"record {index} ({_point_text(record.point)}) has {value} = {number!r}, not a number"
            )
        rows.append((record.point, float(number), measured))
    return rows


def _point_text(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def _levels(values: list[Any]) -> list[Any]:
    """The distinct values of an axis: sorted when they are numbers, else in the sweep's order."""
    distinct = list(dict.fromkeys(values))
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in distinct):
        return sorted(distinct)
    return distinct


def _check_other_axes(rows: list[Any], x: str, y: str, average: Sequence[str]) -> None:
    for name in dict.fromkeys(k for point, _, _ in rows for k in point):
        if name in (x, y) or name in average:
            continue
        seen = list(dict.fromkeys(repr(point.get(name)) for point, _, _ in rows))
        if len(seen) > 1:
            raise PlotError(
                f"axis {name!r} varies in the records ({', '.join(seen[:4])}{', ...' if len(seen) > 4 else ''}) "
                f"but is neither x, y nor averaged over; pass average=({', '.join(map(repr, [*average, name]))})"
            )


def _grid(
    rows: list[Any], x: str, y: str, pick: Any
) -> tuple[list[Any], list[Any], np.ndarray, np.ndarray, np.ndarray]:
    """The axes' levels, the mean of ``pick(row)`` per cell, and per cell the records and failures."""
    xs = _levels([point[x] for point, _, _ in rows])
    ys = _levels([point[y] for point, _, _ in rows])
    total = np.zeros((len(ys), len(xs)))
    count = np.zeros((len(ys), len(xs)), dtype=int)
    failed = np.zeros((len(ys), len(xs)), dtype=int)
    for row in rows:
        point = row[0]
        j, i = ys.index(point[y]), xs.index(point[x])
        number = pick(row)
        if number is None or math.isnan(number):
            failed[j, i] += 1
            continue
        total[j, i] += number
        count[j, i] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return xs, ys, mean, count, failed


def regime_map(
    records: Any,
    x: str = "gain",
    y: str = "n",
    *,
    value: str = "rate",
    boundary: Any = _DEFAULT,
    average: Sequence[str] = ("repeat",),
    limit: float | None = None,
    annotate: bool | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw the measured rate of a sweep as a heatmap over two of its axes.

    Parameters
    ----------
    records : list of Record
        What :func:`gradflow.sweep` returned (e.g. with ``gradflow.cli.sweep.regime_point``);
        each record's value is a mapping holding ``value`` (and ``boundary``).
    x, y : str, default "gain" and "n"
        The grid's axes along the columns and the rows. Numeric levels are sorted; others
        (an activation's name) keep the sweep's order. Cells are equally wide whatever the
        spacing of the levels.
    value : str, default "rate"
        The number drawn: :attr:`gradflow.numeric.Regime.rate` (natural log per step).
    boundary : str or None, default "predicted_rate"
        A number whose sign change is drawn as a line: by default the bound's rate (its sign is
        the vanishing condition: below 0 vanishing is guaranteed), when the records have it.
        None draws no line.
    average : sequence of str, default ("repeat",)
        Axes the cells average over. Any other axis that varies in the records is an error.
    limit : float, optional
        The colour scale spans ``[-limit, limit]``; default the largest finite ``|value|``.
    annotate : bool, optional
        Write each cell's value in it (default: when there are at most 144 cells).
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Its image holds the cells' mean values (``-inf``, a chain that became exactly zero, is
        shown at the scale's end and written "−∞"; cells whose points all failed, or that the
        sweep did not reach, are grey and say so).

    Raises
    ------
    PlotError
        For no records, something that is not a Record, a record without the axes or the
        value, an axis that varies but is not drawn or averaged, a ``boundary`` the records
        lack (when named), or a bad ``limit``.

    Examples
    --------
    >>> import gradflow as gf
    >>> from gradflow.cli.sweep import regime_point
    >>> from functools import partial
    >>> point = partial(regime_point, cell="elman", repeat=0, T=30, B=2, sizes={"m": 2}, scheme="orthogonal")
    >>> records = gf.sweep(point, {"n": [4, 8], "gain": [0.5, 2.0]}, executor="serial", progress=False)
    >>> figure = gf.plot.regime_map(records)
    >>> figure.axes[0].images[0].get_array().shape
    (2, 2)
    """
    if x == y:
        raise PlotError(f"x and y must be different axes; both are {x!r}")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, numbers.Real) or not 0 < limit < math.inf
    ):
        raise PlotError(f"limit must be a positive finite number, got {limit!r}")
    rows = _rows(records, x, y, value)
    _check_other_axes(rows, x, y, tuple(average))
    xs, ys, mean, count, failed = _grid(rows, x, y, lambda row: row[1])
    if not count.any():
        raise PlotError("every point of the sweep failed: there is no rate to draw")
    if boundary is _DEFAULT:
        boundary = "predicted_rate" if all("predicted_rate" in m for _, _, m in rows if m) else None
    edge = None
    if boundary is not None:
        missing = [p for p, _, m in rows if m and boundary not in m]
        if missing:
            raise PlotError(
                f"the records have no {boundary!r} to draw the boundary from (e.g. at {_point_text(missing[0])})"
            )
        edge = _grid(rows, x, y, lambda row: float(row[2][boundary]) if row[2] else None)[2]
    finite = mean[np.isfinite(mean)]
    scale = float(limit) if limit is not None else float(np.max(np.abs(finite))) if finite.size else 1.0
    scale = scale if scale > 0 else 1.0
    shown = np.where(np.isneginf(mean), -scale, np.where(np.isposinf(mean), scale, mean))

    from matplotlib import colormaps

    figure, (axes,) = figure_axes(
        ax, size=(max(5.5, 1.0 + 0.7 * len(xs) + 2.5), max(3.6, 1.6 + 0.55 * len(ys)))
    )
    cmap = colormaps["RdBu_r"].with_extremes(bad="#BBBBBB")
    image = axes.imshow(
        np.ma.masked_invalid(shown),
        origin="lower",
        aspect="auto",
        cmap=cmap,
        vmin=-scale,
        vmax=scale,
        interpolation="nearest",
    )
    colourbar = figure.colorbar(image, ax=axes, fraction=0.06, pad=0.03)
    colourbar.set_label(f"measured {value} (natural log per step)" if value == "rate" else value)
    axes.set_xticks(range(len(xs)), [_level_text(v) for v in xs])
    axes.set_yticks(range(len(ys)), [_level_text(v) for v in ys])
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    if annotate is None:
        annotate = mean.size <= _ANNOTATE_AT_MOST
    if annotate:
        _annotate(axes, image, mean, shown, count, failed, scale)
    if edge is not None:
        segments = _sign_changes(edge)
        for index, ((x0, y0), (x1, y1)) in enumerate(segments):
            axes.plot(
                [x0, x1],
                [y0, y1],
                color="black",
                lw=2.2,
                solid_capstyle="butt",
                zorder=2,
                label=_edge_label(boundary) if index == 0 else "_nolegend_",
            )
        if segments:
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize="small")
    averaged = [a for a in average if any(a in point for point, _, _ in rows)]
    head = title if title is not None else f"Regime map: {value} over {x} and {y}"
    if title is None and averaged:
        head += f" (mean over {', '.join(averaged)})"
    title_(figure, axes, head, own=ax is None)
    axes.set_xlim(-0.5, len(xs) - 0.5)
    axes.set_ylim(-0.5, len(ys) - 0.5)
    return figure


def _edge_label(boundary: str) -> str:
    if boundary == "predicted_rate":
        return "bound's rate = 0 (vanishing is guaranteed where the bound's rate is below 0)"
    return f"{boundary} = 0"


def _level_text(level: Any) -> str:
    return f"{level:g}" if isinstance(level, float) else str(level)


def _annotate(
    axes: Any,
    image: Any,
    mean: np.ndarray,
    shown: np.ndarray,
    count: np.ndarray,
    failed: np.ndarray,
    scale: float,
) -> None:
    for (j, i), number in np.ndenumerate(mean):
        if count[j, i] == 0:
            text, dark = ("failed" if failed[j, i] else "no data"), False
        elif np.isneginf(number):
            text, dark = "−∞", True
        else:
            text, dark = f"{number:+.2f}", abs(number) > 0.6 * scale
        ink = "white" if dark else "black"
        # the cell's own colour behind the text: a boundary line through the centre stays off the digits
        background = image.cmap(image.norm(shown[j, i])) if count[j, i] else image.cmap.get_bad()
        axes.text(
            i,
            j,
            text,
            ha="center",
            va="center",
            fontsize="small",
            color=ink,
            zorder=3,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": background, "edgecolor": "none"},
        )


def _sign_changes(values: np.ndarray) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Segments between cells where ``values`` changes sign (linear interpolation between centres).

    A change between two columns of a row is a vertical segment across that row; between two
    rows of a column, a horizontal one. Cells with NaN take no part.
    """
    segments = []
    rows, columns = values.shape
    for j in range(rows):
        for i in range(columns - 1):
            at = _crossing(values[j, i], values[j, i + 1])
            if at is not None:
                segments.append(((i + at, j - 0.5), (i + at, j + 0.5)))
    for i in range(columns):
        for j in range(rows - 1):
            at = _crossing(values[j, i], values[j + 1, i])
            if at is not None:
                segments.append(((i - 0.5, j + at), (i + 0.5, j + at)))
    return list(dict.fromkeys(segments))  # a level exactly at 0 is reached from both sides


def _crossing(a: float, b: float) -> float | None:
    """Where between 0 (at ``a``) and 1 (at ``b``) a line through them crosses 0, if it does."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    if a == 0.0:
        return 0.0 if b != 0.0 else None
    if b == 0.0:
        return 1.0
    return a / (a - b) if (a < 0.0) != (b < 0.0) else None
