r"""Figures of random instances of cells: the measurements behind ``gradflow plot`` and the report.

Each builder draws instances (:mod:`gradflow.report.instances`), measures them with the numeric
layer and draws the results with :mod:`gradflow.plot`; it returns the figure and the results it
drew, so that a report can quote the same numbers in its tables.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gradflow.cells.specs import parse_cell
from gradflow.errors import GradflowError, UsageError
from gradflow.report.instances import Setting, instance, other_sizes, regime_point

__all__ = [
    "Drawn",
    "chain_norms_figure",
    "gates_figure",
    "gradient_per_step_figure",
    "lyapunov_figure",
    "regime_map_figure",
    "singular_spectrum_figure",
]


@dataclass
class Drawn:
    """A figure and what was measured for it.

    Attributes
    ----------
    figure : matplotlib Figure
    regimes : dict
        ``label -> Regime`` (or None where the cell has no chain bound).
    records : list
        The sweep's records (a regime map).
    """

    figure: Any
    regimes: dict[str, Any] = field(default_factory=dict)
    records: list[Any] = field(default_factory=list)


def has_bound(cell: Any) -> str | None:
    """None when the cell has a chain bound, else the reason it has none."""
    from gradflow.symbolic.bounds import chain_bound

    try:
        chain_bound(cell, gamma_mode="value")
    except GradflowError as err:
        return str(err)
    return None


def directions(cell: Any) -> list[tuple[str, list[str] | None]]:
    """The chains a cell has: one (all states), or one per direction of time (a bidirectional layer)."""
    forward = [s for s in cell.states if s not in cell.backward]
    backward = [s for s in cell.states if s in cell.backward]
    if forward and backward:
        return [("forwards", forward), ("backwards", backward)]
    return [("", None)]


def chain_norms_figure(
    specs: Sequence[str],
    gains: Sequence[float],
    setting: Setting,
    *,
    bounds: bool | None = True,
    norm: str = "spectral",
    title: str | None = None,
    ax: Any = None,
) -> Drawn:
    """Chain norms of every cell at every gain, beside the bound where there is one.

    ``bounds``: True draws the bound and the regime (an error for a cell without a bound), None
    draws them where the cell has a bound, False never.

    Raises
    ------
    UsageError
        With ``bounds=True``, for a cell without a chain bound.
    """
    import gradflow as gf

    series: dict[str, Any] = {}
    regimes: dict[str, Any] = {}
    for spec in specs:
        cell = parse_cell(spec)
        groups = directions(cell)
        reason = has_bound(cell) if bounds is not False else "not asked"
        if reason is not None and bounds is True:
            raise UsageError(
                f"cell {spec!r} has no chain bound to draw ({reason}); pass --no-bound for the measured "
                "norms alone"
            )
        for gain in gains:
            cell, params, inputs, _ = instance(spec, setting, gain)
            label = f"{spec}, gain {gain:g}" if len(gains) > 1 or len(specs) == 1 else spec
            if reason is not None or len(groups) > 1:
                for direction, states in groups:
                    chain = gf.jacobian_chain(cell, params, inputs, states=states)
                    named = f"{label} ({direction})" if direction else label
                    series[named], regimes[named] = chain, None
                continue
            chain = gf.jacobian_chain(cell, params, inputs)
            regimes[label] = gf.regime(cell, params, inputs, chain=chain)
            series[label] = (gf.bound_vs_measured(cell, params, inputs, chain=chain), regimes[label])
    head = title or f"Jacobian chain norms against the lag ({setting.describe()})"
    return Drawn(gf.plot.chain_norms(series, norm=norm, title=head, ax=ax), regimes)


def regime_map_figure(
    spec: str,
    ns: Sequence[int],
    gains: Sequence[float],
    setting: Setting,
    *,
    repeats: int = 1,
    workers: int | None = None,
    executor: Any = None,
    title: str | None = None,
    ax: Any = None,
) -> Drawn:
    """The measured rate over state sizes and gains (a sweep), with the edge of the vanishing condition.

    Raises
    ------
    UsageError
        For a cell without a chain bound, or ``T < 3``.
    """
    import gradflow as gf

    cell = parse_cell(spec)
    sizes = other_sizes(spec, cell, setting.sizes)
    if setting.T < 3:
        raise UsageError(f"-T {setting.T}: a regime fits a rate over lags 1..T and needs T >= 3")
    reason = has_bound(cell)
    if reason is not None:
        raise UsageError(f"cell {spec!r} has no regime to map: {reason}")
    point = functools.partial(
        regime_point, cell=spec, T=setting.T, B=setting.B, sizes=sizes, scheme=setting.scheme
    )
    grid: dict[str, list[Any]] = {"n": list(ns), "gain": list(gains), "repeat": list(range(repeats))}
    records = gf.sweep(point, grid, executor, seed=setting.seed, workers=workers, progress=False)
    head = title or (
        f"Regime map of {spec} (T = {setting.T}, B = {setting.B}, {setting.scheme} init, "
        f"{repeats} repeat{'s' if repeats > 1 else ''}, seed {setting.seed})"
    )
    return Drawn(gf.plot.regime_map(records, title=head, ax=ax), records=records)


def lyapunov_figure(
    spec: str, gains: Sequence[float], setting: Setting, *, title: str | None = None
) -> Drawn:
    """Lyapunov spectra at a few gains (left) and the largest exponent against the gain (right).

    The right panel marks the gain where the bound's rate crosses 0 (interpolated in log gain;
    exact for Elman with orthogonal weights, where the rate is log(γ gain)), when the cell has a
    bound.
    """
    import gradflow as gf
    from gradflow.plot._style import figure_axes

    gains = sorted(gains)
    spectra, rates = {}, []
    bounded = has_bound(parse_cell(spec)) is None
    for gain in gains:
        cell, params, inputs, _ = instance(spec, setting, gain)
        spectra[gain] = gf.numeric.lyapunov_spectrum(cell, params, inputs)
        if bounded:
            rates.append(gf.regime(cell, params, inputs).predicted_rate)
    edge = zero_crossing(gains, rates) if bounded else None
    figure, (left, right) = figure_axes(None, panels=2, size=(6.4, 4.6))
    shown = gains if len(gains) <= 4 else [gains[0], gains[len(gains) // 2], gains[-1]]
    gf.plot.lyapunov({f"gain {g:g}": spectra[g] for g in shown}, ax=left, title="spectra")
    gf.plot.lyapunov_vs_gain(
        spectra, edge=edge, edge_label="bound's rate = 0", ax=right, title="largest exponent"
    )
    figure.suptitle(title or f"Lyapunov exponents of {spec} ({setting.describe()})")
    return Drawn(figure)


def zero_crossing(gains: Sequence[float], rates: Sequence[float]) -> float | None:
    """The gain where the bound's rate crosses 0, interpolated in log gain (exact for log(γ gain)).

    Examples
    --------
    >>> round(zero_crossing([0.5, 2.0], [math.log(0.5), math.log(2.0)]), 12)
    1.0
    """
    for i, (gain, rate) in enumerate(zip(gains, rates, strict=True)):
        if rate == 0:
            return gain
        if i + 1 < len(gains) and (rate < 0) != (rates[i + 1] < 0) and math.isfinite(rate + rates[i + 1]):
            share = rate / (rate - rates[i + 1])
            return math.exp(math.log(gain) + share * (math.log(gains[i + 1]) - math.log(gain)))
    return None


def singular_spectrum_figure(
    specs: Sequence[str], schemes: Sequence[str], gain: float, setting: Setting, *, title: str | None = None
) -> Drawn:
    """Log singular values of ∂s(T)/∂s(0) per cell and initialisation scheme."""
    import gradflow as gf

    series = {}
    for spec in specs:
        for scheme in schemes:
            cell, params, inputs, _ = instance(spec, setting.with_(scheme=scheme), gain)
            series[f"{spec}, {scheme}"] = gf.jacobian_chain(cell, params, inputs, singular_values=True)
    head = title or (
        f"Singular values of ∂s(T)/∂s(0) (n = {setting.n}, T = {setting.T}, B = {setting.B}, "
        f"gain {gain:g}, seed {setting.seed})"
    )
    return Drawn(gf.plot.singular_spectrum(series, title=head))


def gradient_per_step_figure(
    specs: Sequence[str], gain: float, setting: Setting, *, title: str | None = None, ax: Any = None
) -> Drawn:
    """‖∂L/∂x(t)‖ against the steps back from a loss on the last step (a random gradient there)."""
    import numpy as np

    import gradflow as gf

    series = {}
    for spec in specs:
        cell, params, inputs, concrete = instance(spec, setting, gain)
        rng = np.random.default_rng(setting.seed)
        upstream = {}
        for state, size in concrete.states.items():
            if state in cell.backward:
                continue
            array = np.zeros((setting.T, setting.B, int(size)))
            array[-1] = rng.normal(size=(setting.B, int(size)))
            upstream[state] = array
        series[spec] = gf.bptt(cell, params, inputs, upstream)
    head = (
        title
        or f"Gradient reaching each input step from a loss at t = T ({setting.describe()}, gain {gain:g})"
    )
    return Drawn(gf.plot.gradient_per_step(series, title=head, ax=ax))


def gates_figure(
    spec: str, gain: float, setting: Setting, *, kind: str = "heatmap", title: str | None = None
) -> Drawn:
    """Gates and states of the first sequence over time."""
    import gradflow as gf

    cell, params, inputs, _ = instance(spec, setting, gain)
    trajectory = gf.simulate(cell, params, inputs)
    head = title or f"Gates and states of {spec} over time (sequence 0; {setting.describe()}, gain {gain:g})"
    return Drawn(gf.plot.gates(trajectory, kind=kind, title=head))
