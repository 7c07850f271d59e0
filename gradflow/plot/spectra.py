r"""Spectra of Jacobian products: singular values of a whole chain, and Lyapunov exponents.

:func:`singular_spectrum` draws the distribution of :math:`\log_{10}\sigma_i` of
:math:`\partial s^{(a)}/\partial s^{(a-k)}` (Pennington, Schoenholz, Ganguli 2017: orthogonal
weights keep the spectrum of a deep tanh network concentrated near 1 -- dynamical isometry --
where Gaussian weights or ReLU spread it over many decades). :func:`lyapunov` draws the exponents
of :func:`gradflow.numeric.lyapunov_spectrum` against their index, and :func:`lyapunov_vs_gain` the
largest one against the gain of the recurrent weights: it crosses 0 at the edge of chaos.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradflow._checks import is_int
from gradflow.errors import PlotError
from gradflow.numeric.chain import ChainResult
from gradflow.plot._style import (
    LN10,
    as_series,
    band,
    check_options,
    colour,
    figure_axes,
    legend,
    settings,
    to_numpy,
    wrong_kind,
)

__all__ = ["lyapunov", "lyapunov_vs_gain", "singular_spectrum"]


def singular_spectrum(
    chains: Any,
    *,
    lag: int | None = None,
    bins: int = 40,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw the distribution of :math:`\log_{10}` singular values of :math:`\partial s^{(a)}/\partial s^{(a-k)}`.

    Parameters
    ----------
    chains : ChainResult or dict of label -> ChainResult
        Results of ``gf.jacobian_chain(..., singular_values=True)``.
    lag : int, optional
        :math:`k`; default the longest lag of the chain (:math:`\partial s^{(T)}/\partial s^{(0)}`).
    bins : int, default 40
        Histogram bins, shared by every series (so the densities compare).
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        One step histogram (density over the singular values of every sequence of the batch) per
        series; singular values that are exactly 0 cannot be drawn on a log scale and are counted
        in the legend.

    Raises
    ------
    PlotError
        For something that is not a ChainResult, a chain without singular values, a lag outside
        the chains, chains whose singular values are all 0, or a bad ``bins``.

    References
    ----------
    J. Pennington, S. Schoenholz, S. Ganguli, "Resurrecting the sigmoid in deep learning through
    dynamical isometry: theory and practice", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> cell = gf.cells.elman()
    >>> params = gf.init_params(cell, sizes={"n": 8, "m": 2}, seed=0, scheme="orthogonal")
    >>> chain = gf.jacobian_chain(cell, params, np.zeros((20, 2, 2)), singular_values=True)
    >>> figure = gf.plot.singular_spectrum({"orthogonal": chain})
    >>> len(figure.axes[0].patches)
    1
    """
    if not is_int(bins) or bins < 1:
        raise PlotError(f"bins must be a positive int, got {bins!r}")
    series = as_series(chains, (ChainResult,), "a ChainResult")
    samples: dict[str, tuple[np.ndarray, int, int]] = {}
    for label, chain in series.items():
        if not isinstance(chain, ChainResult):
            raise wrong_kind(
                label, chain, "a ChainResult", "give gf.jacobian_chain(..., singular_values=True)"
            )
        if chain.log_singular_values is None:
            raise PlotError(
                f"the chain of {label!r} has no singular values; compute it with "
                "gf.jacobian_chain(..., singular_values=True)"
            )
        logs = to_numpy(chain.log_singular_values)
        count = logs.shape[0]
        k = count - 1 if lag is None else lag
        if not is_int(k) or not 0 <= k < count:
            raise PlotError(f"lag must be an int in 0..{count - 1} (the lags of {label!r}); got {lag!r}")
        values = logs[int(k)].ravel() / LN10
        finite = values[np.isfinite(values)]
        samples[label] = (finite, values.size - finite.size, int(k))
    pooled = np.concatenate([v for v, _, _ in samples.values()])
    if pooled.size == 0:
        raise PlotError("every singular value is exactly 0: there is no spectrum to draw on a log scale")
    low, high = float(pooled.min()), float(pooled.max())
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, int(bins) + 1)
    figure, (axes,) = figure_axes(ax)
    for index, (label, (values, zeros, _)) in enumerate(samples.items()):
        density, _ = np.histogram(values, bins=edges, density=True) if values.size else (np.zeros(bins), None)
        text = label + (f" ({zeros} exactly 0, not drawn)" if zeros else "")
        axes.stairs(density, edges, color=colour(index), lw=1.8, fill=False, label=text)
    axes.axvline(0.0, color="#555555", ls="--", lw=1.0, label=r"$\sigma = 1$ (isometry)")
    lags = {k for _, _, k in samples.values()}
    which = f"k = {next(iter(lags))}" if len(lags) == 1 else "k per series"
    axes.set_xlabel(r"$\log_{10}\,\sigma_i(\partial s^{(a)}/\partial s^{(a-k)})$" + f", {which}")
    axes.set_ylabel("density (over units and sequences)")
    head = "Singular values of the Jacobian chain" + settings([c.trajectory for c in series.values()])
    axes.set_title(title if title is not None else head, loc="left", wrap=True)
    axes.grid(True, alpha=0.3)
    legend(axes)
    return figure


def _spectrum(label: str, value: Any) -> np.ndarray:
    """A (B, N) array of exponents in descending order, as :func:`lyapunov_spectrum` returns."""
    if isinstance(value, ChainResult | Mapping | str | bytes) or not hasattr(value, "shape"):
        raise wrong_kind(
            label, value, "a Lyapunov spectrum", "give gf.numeric.lyapunov_spectrum(...): (B, N)"
        )
    array = to_numpy(value)
    if array.ndim != 2 or array.shape[1] == 0 or array.shape[0] == 0:
        raise PlotError(
            f"the spectrum of {label!r} has shape {array.shape}; a Lyapunov spectrum is (B, N), "
            "as gf.numeric.lyapunov_spectrum returns"
        )
    if np.isnan(array).any():
        raise PlotError(f"the spectrum of {label!r} holds NaN")
    if (np.diff(array, axis=1) > 0).any():
        raise PlotError(
            f"the exponents of {label!r} are not in descending order; is it gf.numeric.lyapunov_spectrum's result?"
        )
    return array


def lyapunov(
    spectra: Any,
    *,
    quantiles: tuple[float, float] = (0.1, 0.9),
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw Lyapunov spectra: the exponents :math:`\lambda_i` against their index :math:`i`.

    Parameters
    ----------
    spectra : array (B, N) or dict of label -> array (B, N)
        Results of :func:`gradflow.numeric.lyapunov_spectrum` (descending per sequence).
    quantiles : (low, high), default (0.1, 0.9)
        The band over the batch around the median.
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        One line per series: the median over the batch of :math:`\lambda_i` (natural log per
        step), with :math:`\lambda_1` in the legend; the line :math:`\lambda = 0` that separates
        contracting from expanding directions.

    Raises
    ------
    PlotError
        For something that is not a (B, N) array of exponents in descending order, or bad
        ``quantiles``.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": np.diag([0.5, 0.25]), "W_x": np.zeros((2, 1)), "b": np.zeros(2)}
    >>> spectrum = gf.numeric.lyapunov_spectrum(gf.cells.elman(), params, np.zeros((4, 1, 1)))
    >>> [round(float(y), 4) for y in gf.plot.lyapunov(spectrum).axes[0].get_lines()[0].get_ydata()]
    [-0.6931, -1.3863]
    """
    low, high = check_options(quantiles)
    series = _spectra(spectra)
    figure, (axes,) = figure_axes(ax)
    for index, (label, array) in enumerate(series.items()):
        median, lower, upper = band(array, (low, high), axis=0)
        i = np.arange(1, array.shape[1] + 1)
        tint = colour(index)
        axes.plot(
            i,
            median,
            "-",
            marker="o" if i.size <= 40 else None,
            ms=3,
            color=tint,
            lw=1.6,
            label=f"{label}: $\\lambda_1$ = {median[0]:+.3f}",
        )
        if array.shape[0] > 1:
            axes.fill_between(i, lower, upper, color=tint, alpha=0.18, lw=0)
    axes.axhline(0.0, color="#555555", ls="--", lw=1.0, label=r"$\lambda = 0$")
    axes.set_xlabel("index $i$ (descending)")
    axes.set_ylabel(r"Lyapunov exponent $\lambda_i$ (natural log per step)")
    axes.set_title(
        title if title is not None else "Lyapunov spectrum (QR method, Benettin et al. 1980)",
        loc="left",
        wrap=True,
    )
    axes.grid(True, alpha=0.3)
    legend(axes)
    return figure


def _spectra(spectra: Any) -> dict[str, np.ndarray]:
    if isinstance(spectra, Mapping):
        if not spectra:
            raise PlotError("nothing to draw: give at least one Lyapunov spectrum")
        return {str(label): _spectrum(str(label), value) for label, value in spectra.items()}
    return {"spectrum": _spectrum("spectrum", spectra)}


def _log_ticks(gains: list[float]) -> tuple[list[float], list[str]]:
    """Ticks at the gains, labelled as plain numbers where their labels keep apart on a log axis."""
    span = math.log10(gains[-1] / gains[0])
    labels, last = [], -math.inf
    for gain in gains:
        far = math.log10(gain) - last >= span / 12
        labels.append(f"{gain:g}" if far else "")
        last = math.log10(gain) if far else last
    return gains, labels


def lyapunov_vs_gain(
    spectra: Mapping[Any, Any],
    *,
    edge: float | None = None,
    edge_label: str = "edge of chaos",
    quantiles: tuple[float, float] = (0.1, 0.9),
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw the largest Lyapunov exponent :math:`\lambda_1` against the gain of the recurrent weights.

    Parameters
    ----------
    spectra : dict of gain -> array (B, N), or dict of label -> (dict of gain -> array)
        Lyapunov spectra (:func:`gradflow.numeric.lyapunov_spectrum`) at several gains; a dict of
        such dicts draws several cells.
    edge : float, optional
        A gain to mark with a vertical line: where theory puts the edge of chaos
        (:math:`1/\gamma`: :math:`\gamma \cdot \text{gain} = 1`).
    edge_label : str, default "edge of chaos"
    quantiles : (low, high), default (0.1, 0.9)
        The error bars over the batch around the median.
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        The median over the batch of :math:`\lambda_1` at each gain (sorted), with the quantiles
        as error bars; the gain axis is logarithmic when the gains span a factor of 8 or more.

    Raises
    ------
    PlotError
        For an empty dict, a gain that is not a positive number, a spectrum as for
        :func:`lyapunov`, or a bad ``edge`` or ``quantiles``.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> spectra = {}
    >>> for gain in (0.5, 2.0):
    ...     params = {"W_h": gain * np.eye(2), "W_x": np.zeros((2, 1)), "b": np.zeros(2)}
    ...     spectra[gain] = gf.numeric.lyapunov_spectrum(gf.cells.elman("identity"), params, np.zeros((3, 1, 1)))
    >>> line = gf.plot.lyapunov_vs_gain(spectra, edge=1.0).axes[0].get_lines()[0]
    >>> [round(float(v), 4) for v in line.get_ydata()]
    [-0.6931, 0.6931]
    """
    low, high = check_options(quantiles)
    if not isinstance(spectra, Mapping) or not spectra:
        raise PlotError(
            "lyapunov_vs_gain takes a dict gain -> gf.numeric.lyapunov_spectrum(...) (or a dict of such dicts); "
            f"got {type(spectra).__name__}{' (empty)' if isinstance(spectra, Mapping) else ''}"
        )
    if edge is not None and (
        isinstance(edge, bool) or not isinstance(edge, numbers.Real) or not 0 < float(edge) < math.inf
    ):
        raise PlotError(f"edge must be a positive gain, got {edge!r}")
    nested = all(isinstance(v, Mapping) for v in spectra.values())
    groups = {str(k): v for k, v in spectra.items()} if nested else {"": spectra}
    figure, (axes,) = figure_axes(ax)
    every_gain: list[float] = []
    for index, (label, by_gain) in enumerate(groups.items()):
        if not by_gain:
            raise PlotError(f"{label!r} has no gains")
        gains = []
        for gain in by_gain:
            if isinstance(gain, bool) or not isinstance(gain, numbers.Real) or not 0 < float(gain) < math.inf:
                raise PlotError(f"the keys must be gains (positive numbers); got {gain!r}")
            gains.append(float(gain))
        order = np.argsort(gains)
        keys = list(by_gain)
        tops = [_spectrum(f"gain {keys[j]}", by_gain[keys[j]])[:, 0] for j in order]
        stats = np.array([band(top, (low, high), axis=0) for top in tops])
        x = np.array(gains)[order]
        every_gain += list(x)
        axes.errorbar(
            x,
            stats[:, 0],
            yerr=[stats[:, 0] - stats[:, 1], stats[:, 2] - stats[:, 0]],
            fmt="-o",
            ms=4,
            lw=1.6,
            capsize=3,
            color=colour(index),
            label=label or r"$\lambda_1$ (median)",
        )
    axes.axhline(0.0, color="#555555", ls="--", lw=1.0)
    if edge is not None:
        axes.axvline(float(edge), color="#000000", ls=":", lw=1.4, label=f"{edge_label} (gain {edge:g})")
    if max(every_gain) / min(every_gain) >= 8:
        axes.set_xscale("log")
        axes.set_xticks(*_log_ticks(sorted(set(every_gain))))
        axes.minorticks_off()
    axes.set_xlabel("gain of the recurrent weights")
    axes.set_ylabel(r"largest Lyapunov exponent $\lambda_1$ (per step)")
    axes.set_title(
        title if title is not None else "Largest Lyapunov exponent against the gain", loc="left", wrap=True
    )
    axes.grid(True, alpha=0.3)
    legend(axes)
    return figure
