r"""Norms of Jacobian chains against the lag, beside the bound: the picture of vanishing and exploding.

:math:`\log_{10}\lVert\partial s^{(a)}/\partial s^{(a-k)}\rVert` against :math:`k`, one colour per
series (cells, gains), its median over the batch as a line and a quantile band around it; with a
:class:`~gradflow.numeric.BoundComparison`, the bound with the actual
:math:`\prod\lVert\operatorname{diag}\sigma'\rVert` (dashed) and the :math:`\gamma` bound (dotted)
(Pascanu, Mikolov, Bengio 2013, eq. 7); with a :class:`~gradflow.numeric.Regime`, the fitted
and the predicted rates in the legend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradflow.errors import PlotError
from gradflow.numeric.analysis import BoundComparison, Regime
from gradflow.numeric.chain import ChainResult
from gradflow.plot._style import (
    LN10,
    as_series,
    band,
    check_options,
    colour,
    figure_axes,
    finite_or_none,
    legend,
    settings,
    to_numpy,
    wrong_kind,
)

__all__ = ["chain_norms"]

_KINDS = (ChainResult, BoundComparison, Regime)
_NORMS = ("spectral", "frobenius", "both")


def _parts(label: str, entry: Any) -> tuple[ChainResult | None, BoundComparison | None, Regime | None]:
    """The chain, the comparison and the regime of one series (each at most once)."""
    items = list(entry) if isinstance(entry, tuple | list) else [entry]
    found: dict[type, Any] = {}
    for item in items:
        kind = next((k for k in _KINDS if isinstance(item, k)), None)
        if kind is None:
            raise wrong_kind(
                label,
                item,
                "a ChainResult, BoundComparison or Regime",
                "give gf.jacobian_chain(...), gf.bound_vs_measured(...) and/or gf.regime(...) of one simulation",
            )
        if kind in found:
            raise PlotError(f"{label!r} holds two {kind.__name__}s; give one of each kind per series")
        found[kind] = item
    chain, comparison, fitted = found.get(ChainResult), found.get(BoundComparison), found.get(Regime)
    if chain is None and comparison is None:
        raise PlotError(
            f"{label!r} has no norms to draw (only a Regime); add its gf.jacobian_chain(...) "
            "or gf.bound_vs_measured(...)"
        )
    if chain is not None and comparison is not None:
        same = np.array_equal(to_numpy(chain.lags), to_numpy(comparison.lags))
        if (
            chain.log_spectral is None
            or not same
            or not np.array_equal(to_numpy(chain.log_spectral), to_numpy(comparison.log_actual))
        ):
            raise PlotError(
                f"the chain and the bound comparison of {label!r} are of different simulations; "
                "pass bound_vs_measured(..., chain=chain) or results of the same inputs"
            )
    return chain, comparison, fitted


def chain_norms(
    results: Any,
    *,
    norm: str = "spectral",
    quantiles: tuple[float, float] = (0.1, 0.9),
    bounds: bool = True,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw :math:`\log_{10}\lVert\partial s^{(a)}/\partial s^{(a-k)}\rVert` against the lag :math:`k`.

    Parameters
    ----------
    results : result, tuple of results, or dict of label -> result or tuple
        Each series is what gradflow measured on one simulation: a
        :class:`~gradflow.numeric.ChainResult` (``gf.jacobian_chain``), a
        :class:`~gradflow.numeric.BoundComparison` (``gf.bound_vs_measured``: the actual
        spectral norms and the two bounds), and optionally its
        :class:`~gradflow.numeric.Regime` (``gf.regime``: the rates, in the legend) -- alone or
        as a tuple. Several series share the axes: cells, gains, initialisations.
    norm : {"spectral", "frobenius", "both"}
        The norm of the measured line (Frobenius needs a ChainResult).
    quantiles : (low, high), default (0.1, 0.9)
        The band drawn around the median over the batch.
    bounds : bool, default True
        Draw the bounds of a series that has a BoundComparison.
    title : str, optional
        Default: what is measured, and the cell, ``T`` and ``B`` where the results carry them.
    ax : matplotlib Axes, optional
        Draw into it instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    PlotError
        For an empty ``results``, a result of another kind, a series with two results of one
        kind or without norms, a chain and a comparison of different simulations, Frobenius norms
        asked of a BoundComparison alone, or a bad ``norm`` or ``quantiles``.

    Notes
    -----
    The lines are medians over the batch of the logs of the norms the results hold, divided by
    :math:`\ln 10`; a norm that is exactly 0 (:math:`-\infty`) leaves a gap. The legend's rates
    are the Regime's fitted slope and the bound's rate, also in :math:`\log_{10}` per step: the
    slope the line and the dotted bound have on these axes.

    References
    ----------
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent neural networks",
    ICML 2013, §3.2.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> cell = gf.cells.elman()
    >>> x = np.random.default_rng(0).normal(size=(40, 4, 2))
    >>> series = {}
    >>> for gain in (0.5, 2.0):
    ...     params = gf.init_params(cell, sizes={"n": 8, "m": 2}, seed=0, scheme="orthogonal", gain=gain)
    ...     series[f"gain {gain}"] = (gf.bound_vs_measured(cell, params, x), gf.regime(cell, params, x))
    >>> figure = gf.plot.chain_norms(series)
    >>> print(figure.axes[0].get_lines()[0].get_label())
    gain 0.5
      fit -0.322, bound -0.301 per step
    """
    if norm not in _NORMS:
        raise PlotError(f"norm must be one of {', '.join(_NORMS)}; got {norm!r}")
    low, high = check_options(quantiles)
    series = as_series(results, (*_KINDS, tuple, list), "a ChainResult, BoundComparison or Regime")
    parts = {label: _parts(label, entry) for label, entry in series.items()}
    figure, (axes,) = figure_axes(ax)
    for index, (label, (chain, comparison, fitted)) in enumerate(parts.items()):
        tint = colour(index)
        lags = to_numpy(chain.lags if chain is not None else comparison.lags)  # type: ignore[union-attr]
        measured: list[tuple[np.ndarray, str]] = []
        if norm in ("spectral", "both"):
            logs = chain.log_spectral if chain is not None else comparison.log_actual  # type: ignore[union-attr]
            if logs is None:
                raise PlotError(
                    f"the chain of {label!r} has no spectral norms; compute it with spectral='power' or "
                    "draw norm='frobenius'"
                )
            measured.append((to_numpy(logs), "-"))
        if norm in ("frobenius", "both"):
            if chain is None:
                raise PlotError(
                    f"{label!r} has no Frobenius norms (a BoundComparison holds spectral ones); "
                    "add its gf.jacobian_chain(...) to the series"
                )
            measured.append((to_numpy(chain.log_frobenius), "-."))
        for logs, style in measured:
            median, lower, upper = band(logs / LN10, (low, high), axis=1)
            text = _legend_text(label, fitted) if style == "-" or norm == "frobenius" else None
            axes.plot(lags, finite_or_none(median), style, color=tint, lw=1.8, label=text or "_nolegend_")
            axes.fill_between(
                lags, finite_or_none(lower), finite_or_none(upper), color=tint, alpha=0.18, lw=0
            )
        if comparison is not None and bounds:
            bound = np.quantile(to_numpy(comparison.log_bound) / LN10, 0.5, axis=1)
            gamma = np.quantile(to_numpy(comparison.log_bound_gamma) / LN10, 0.5, axis=1)
            axes.plot(lags, finite_or_none(bound), "--", color=tint, lw=1.2, label="_nolegend_")
            axes.plot(lags, finite_or_none(gamma), ":", color=tint, lw=1.4, label="_nolegend_")
    styles = _style_handles(norm, any(c is not None for _, c, _ in parts.values()) and bounds, (low, high))
    axes.set_xlabel("lag $k$ (steps)")
    which = {"spectral": r"\|_2", "frobenius": r"\|_F", "both": r"\|"}[norm]
    axes.set_ylabel(r"$\log_{10}\,\|\partial s^{(a)}/\partial s^{(a-k)}" + which + "$")
    axes.set_title(title if title is not None else _title(parts), loc="left", wrap=True)
    axes.grid(True, alpha=0.3)
    handles, _ = axes.get_legend_handles_labels()
    legend(axes, handles + styles)
    return figure


def _legend_text(label: str, fitted: Regime | None) -> str:
    if fitted is None:
        return label
    rate, predicted = fitted.rate / LN10, fitted.predicted_rate / LN10
    text = f"{label}\n  fit {rate:+.3f}, bound {predicted:+.3f} per step"
    return text + ("  (above the bound!)" if not fitted.consistent else "")


def _style_handles(norm: str, with_bounds: bool, quantiles: tuple[float, float]) -> list[Any]:
    """Legend entries that explain the line styles (grey: they hold for every colour)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grey = "#555555"
    low, high = quantiles
    handles: list[Any] = []
    if norm in ("spectral", "both"):
        handles.append(Line2D([], [], color=grey, ls="-", label="measured $\\|\\cdot\\|_2$ (median)"))
    if norm in ("frobenius", "both"):
        handles.append(Line2D([], [], color=grey, ls="-.", label="measured $\\|\\cdot\\|_F$ (median)"))
    handles.append(Patch(color=grey, alpha=0.25, label=f"batch quantiles {low:g}-{high:g}"))
    if with_bounds:
        handles.append(
            Line2D([], [], color=grey, ls="--", label="bound, actual $\\|\\mathrm{diag}\\,\\sigma'\\|$")
        )
        handles.append(Line2D([], [], color=grey, ls=":", lw=1.4, label="bound with $\\gamma$"))
    return handles


def _title(parts: dict[str, Any]) -> str:
    """What is drawn, and the cell, T and B when every series says the same."""
    trajectories = [chain.trajectory if chain is not None else None for chain, _, _ in parts.values()]
    return "Jacobian chain norms against the lag" + settings(trajectories)
