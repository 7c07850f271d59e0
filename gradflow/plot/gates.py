r"""Gate and state activity over time: what a gated cell remembers, and when it forgets.

One panel per signal of a :class:`~gradflow.numeric.Trajectory` (gates, candidate, cell
state, hidden state), time along the x axis: a heatmap (units by time) or one line per unit. It
shows the hand-set memory of seed 004 (the input gate opens to write, the forget gate closes to
reset, the output gate opens to read) and the saturated forget gates of a trained LSTM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradflow._checks import is_int
from gradflow.errors import PlotError
from gradflow.numeric.simulate import Trajectory
from gradflow.plot._style import colour, figure_axes, to_numpy, wrong_kind
from gradflow.plot._style import title as title_

__all__ = ["gates"]

_KINDS = ("heatmap", "lines")

#: Lines are drawn for at most this many units per signal.
_MAX_LINES = 12


def _times(trajectory: Trajectory, name: str, steps: int) -> np.ndarray:
    """The time of each row of ``trajectory[name]``."""
    cell = trajectory.cell
    if name in cell.states and steps == trajectory.T + 1:
        return np.arange(1, trajectory.T + 2) if name in cell.backward else np.arange(0, trajectory.T + 1)
    return np.arange(1, trajectory.T + 1)


def gates(
    trajectory: Any,
    names: Sequence[str] | None = None,
    *,
    sequence: int = 0,
    kind: str = "heatmap",
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw gates and states of one sequence over time, one panel per signal.

    Parameters
    ----------
    trajectory : Trajectory
        :func:`gradflow.simulate`'s result (or ``gradients.trajectory``).
    names : sequence of str, optional
        The signals, top to bottom; default every intermediate (gates, candidates) and state of
        the cell, in evaluation order.
    sequence : int, default 0
        Which sequence of the batch.
    kind : {"heatmap", "lines"}
        A heatmap (rows: units) or one line per unit (at most 12 units per signal).
    title : str, optional
    ax : sequence of matplotlib Axes, optional
        One per signal. The title then goes on the first of them, and the figure's own title
        (``suptitle``) is left as the caller set it.

    Returns
    -------
    matplotlib.figure.Figure
        Signals whose values lie in [0, 1] (sigmoid gates) are drawn on a fixed 0--1 sequential
        scale; the others on a diverging scale centred at 0.

    Raises
    ------
    PlotError
        For something that is not a Trajectory, a name the cell lacks, a sequence outside the
        batch, an unknown ``kind``, or lines asked for more than 12 units.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> cell = gf.cells.lstm()
    >>> params = gf.init_params(cell, sizes={"n": 3, "m": 2}, seed=0)
    >>> trajectory = gf.simulate(cell, params, np.zeros((10, 1, 2)))
    >>> figure = gf.plot.gates(trajectory, ["f", "c"])
    >>> figure.axes[0].images[0].get_array().shape  # units by time
    (3, 10)
    """
    if not isinstance(trajectory, Trajectory):
        raise wrong_kind(
            "trajectory", trajectory, "a Trajectory", "give gf.simulate(...) or gradients.trajectory"
        )
    if kind not in _KINDS:
        raise PlotError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
    cell = trajectory.cell
    chosen = (
        list(names) if names is not None else [n for k, n in cell.order if k in ("intermediate", "state")]
    )
    if not chosen:
        raise PlotError("names is empty: give at least one signal to draw")
    for name in chosen:
        if name not in trajectory:
            raise PlotError(f"cell {cell.name!r} has no signal {name!r}; it has {', '.join(trajectory)}")
    B = trajectory.B
    if not is_int(sequence) or not 0 <= sequence < B:
        raise PlotError(f"sequence must be an int in 0..{B - 1} (the batch); got {sequence!r}")
    data = {name: to_numpy(trajectory[name])[:, int(sequence), :] for name in chosen}  # (time, units)
    if kind == "lines":
        wide = [
            f"{name} ({values.shape[1]} units)"
            for name, values in data.items()
            if values.shape[1] > _MAX_LINES
        ]
        if wide:
            raise PlotError(
                f"lines are drawn for at most {_MAX_LINES} units; {', '.join(wide)}: use kind='heatmap'"
            )
    height = sum(1.0 + (0.12 * min(v.shape[1], 40) if kind == "heatmap" else 1.2) for v in data.values())
    figure, axes = _stacked_axes(ax, len(chosen), height)
    for index, (panel, (name, values)) in enumerate(zip(axes, data.items(), strict=True)):
        times = _times(trajectory, name, values.shape[0])
        gate = bool(values.size) and values.min() >= 0.0 and values.max() <= 1.0
        if kind == "heatmap":
            _heatmap(figure, panel, name, times, values, gate)
        else:
            _lines(panel, name, times, values, gate, first=index == 0)
    axes[-1].set_xlabel("time $t$ (steps)")
    head = title if title is not None else f"Gates and states of {cell.name} over time (sequence {sequence})"
    # over the whole figure when it is ours; on the top panel when the caller's figure has its own title
    title_(figure, axes[0], head, own=ax is None)
    return figure


def _stacked_axes(ax: Any, count: int, height: float) -> tuple[Any, list[Any]]:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if ax is None:
        figure = Figure(figsize=(8.5, max(2.4, height + 0.8)), layout="constrained")
        axes = list(figure.subplots(count, 1, sharex=True, squeeze=False)[:, 0])
        return figure, axes
    if isinstance(ax, Axes):
        ax = [ax]
    return figure_axes(ax, panels=count)


def _heatmap(figure: Any, panel: Any, name: str, times: np.ndarray, values: np.ndarray, gate: bool) -> None:
    if gate:
        options: dict[str, Any] = {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}
    else:
        scale = float(np.max(np.abs(values))) or 1.0
        options = {"cmap": "RdBu_r", "vmin": -scale, "vmax": scale}
    step = float(times[1] - times[0]) if times.size > 1 else 1.0
    extent = (times[0] - step / 2, times[-1] + step / 2, -0.5, values.shape[1] - 0.5)
    image = panel.imshow(
        values.T, origin="lower", aspect="auto", interpolation="nearest", extent=extent, **options
    )
    bar = figure.colorbar(image, ax=panel, fraction=0.04, pad=0.01)
    bar.ax.tick_params(labelsize="small")
    panel.set_ylabel(f"${_latex_name(name)}$\nunit")
    if values.shape[1] <= 8:
        panel.set_yticks(range(values.shape[1]))


def _lines(panel: Any, name: str, times: np.ndarray, values: np.ndarray, gate: bool, first: bool) -> None:
    for unit in range(values.shape[1]):
        panel.plot(
            times,
            values[:, unit],
            "-",
            drawstyle="steps-mid",
            color=colour(unit),
            lw=1.5,
            label=f"unit {unit}" if values.shape[1] > 1 else "_nolegend_",
        )
    if gate:
        panel.set_ylim(-0.05, 1.05)
    panel.set_ylabel(f"${_latex_name(name)}$")
    panel.grid(True, alpha=0.3)
    if values.shape[1] > 1 and first:  # the units have the same colours in every panel
        panel.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")


def _latex_name(name: str) -> str:
    r"""``c_tilde`` -> ``\tilde{c}``, ``layer1.h`` -> ``\mathrm{layer1.}h``, ``W_h`` -> ``W_{h}``."""
    prefix, _, base = name.rpartition(".")
    if base.endswith("_tilde"):
        body = rf"\tilde{{{base.removesuffix('_tilde')}}}"
    elif "_" in base:
        head, _, tail = base.partition("_")
        body = f"{head}_{{{tail}}}"
    else:
        body = base
    return (rf"\mathrm{{{prefix}.}}" if prefix else "") + body
