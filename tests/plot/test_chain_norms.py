"""gf.plot.chain_norms: the lines are the chains' own log norms, the legend the regimes' rates."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import gradflow as gf
from gradflow.errors import GradflowError, PlotError

LN10 = np.log(10.0)


def lines_by_label(axes):
    return {line.get_label(): line for line in axes.get_lines()}


def test_lines_are_the_medians_of_the_log_norms(elman_runs, rendered):
    series = {f"gain {g}": run for g, run in elman_runs.items()}
    figure = gf.plot.chain_norms(series)
    rendered(figure)
    axes = figure.axes[0]
    lines = axes.get_lines()
    # per series: measured, bound with the actual sigma', gamma bound
    assert len(lines) == 3 * len(series)
    for index, (chain, comparison, regime) in enumerate(elman_runs.values()):
        measured, bound, gamma = lines[3 * index : 3 * index + 3]
        np.testing.assert_array_equal(measured.get_xdata(), chain.lags)
        np.testing.assert_allclose(measured.get_ydata(), np.median(chain.log_spectral, axis=1) / LN10)
        np.testing.assert_allclose(bound.get_ydata(), np.median(comparison.log_bound, axis=1) / LN10)
        np.testing.assert_allclose(gamma.get_ydata(), np.median(comparison.log_bound_gamma, axis=1) / LN10)
        assert bound.get_linestyle() == "--" and gamma.get_linestyle() == ":"
        assert measured.get_color() == bound.get_color() == gamma.get_color()
        assert f"fit {regime.rate / LN10:+.3f}" in measured.get_label()
        assert f"bound {regime.predicted_rate / LN10:+.3f}" in measured.get_label()
    # the band is the batch's 10%-90% quantiles
    band = axes.collections[0].get_paths()[0].vertices
    chain = elman_runs[0.5][0]
    lower = np.quantile(chain.log_spectral / LN10, 0.1, axis=1)
    assert np.allclose(np.sort(band[:, 1])[: len(lower)].min(), lower.min())
    assert "Jacobian chain norms" in axes.get_title(loc="left")


def test_vanishing_below_exploding_above(elman_runs):
    figure = gf.plot.chain_norms({f"gain {g}": run for g, run in elman_runs.items()})
    slow, fast = figure.axes[0].get_lines()[0], figure.axes[0].get_lines()[3]
    assert slow.get_ydata()[-1] < 0 < fast.get_ydata()[-1]


def test_frobenius_and_both(elman_runs, rendered):
    chain, comparison, _ = elman_runs[0.5]
    figure = gf.plot.chain_norms({"a": chain}, norm="frobenius")
    rendered(figure)
    (line,) = figure.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), np.median(chain.log_frobenius, axis=1) / LN10)
    both = gf.plot.chain_norms({"a": (chain, comparison)}, norm="both")
    rendered(both)
    styles = [line.get_linestyle() for line in both.axes[0].get_lines()]
    assert styles == ["-", "-.", "--", ":"]
    # Frobenius >= spectral, lag by lag
    spectral, frobenius = both.axes[0].get_lines()[:2]
    assert np.all(frobenius.get_ydata() >= spectral.get_ydata() - 1e-12)


def test_bound_comparison_alone_and_without_bounds(elman_runs):
    _, comparison, _ = elman_runs[3.0]
    figure = gf.plot.chain_norms(comparison)
    assert len(figure.axes[0].get_lines()) == 3
    np.testing.assert_allclose(
        figure.axes[0].get_lines()[0].get_ydata(), np.median(comparison.log_actual, axis=1) / LN10
    )
    assert len(gf.plot.chain_norms(comparison, bounds=False).axes[0].get_lines()) == 1


def test_draws_into_given_axes(elman_runs):
    figure = Figure()
    axes = figure.subplots()
    assert gf.plot.chain_norms(elman_runs[0.5][0], ax=axes) is figure
    assert len(axes.get_lines()) == 1


def test_a_chain_that_becomes_zero_leaves_a_gap(rendered):
    cell = gf.cells.elman()
    params = {"W_h": np.zeros((2, 2)), "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    chain = gf.jacobian_chain(cell, params, np.zeros((4, 1, 1)))
    figure = gf.plot.chain_norms(chain, bounds=False)
    rendered(figure)
    y = figure.axes[0].get_lines()[0].get_ydata()
    assert y[0] == 0.0 and np.isnan(y[1:]).all()


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({}, "nothing to draw"),
        ("elman", "expected a ChainResult"),
        ({"a": 3.0}, "'a' is a float, not a ChainResult"),
    ],
)
def test_bad_results(results, message):
    with pytest.raises(PlotError, match=message):
        gf.plot.chain_norms(results)


def test_regime_alone_two_chains_and_mismatched_simulations(elman_runs):
    slow, fast = elman_runs[0.5], elman_runs[3.0]
    with pytest.raises(PlotError, match="no norms to draw"):
        gf.plot.chain_norms({"a": slow[2]})
    with pytest.raises(PlotError, match="two ChainResults"):
        gf.plot.chain_norms({"a": (slow[0], fast[0])})
    with pytest.raises(PlotError, match="different simulations"):
        gf.plot.chain_norms({"a": (slow[0], fast[1])})
    with pytest.raises(PlotError, match="no Frobenius norms"):
        gf.plot.chain_norms({"a": slow[1]}, norm="frobenius")
    with pytest.raises(PlotError, match="norm must be one of"):
        gf.plot.chain_norms(slow[0], norm="nuclear")
    with pytest.raises(PlotError, match="quantiles"):
        gf.plot.chain_norms(slow[0], quantiles=(0.6, 0.9))
    with pytest.raises(PlotError, match="ax must be a matplotlib Axes"):
        gf.plot.chain_norms(slow[0], ax="left")


def test_a_chain_without_spectral_norms():
    cell = gf.cells.elman()
    params = {"W_h": 0.5 * np.eye(2), "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    chain = gf.jacobian_chain(cell, params, np.zeros((4, 1, 1)), spectral=None)
    with pytest.raises(PlotError, match="no spectral norms"):
        gf.plot.chain_norms(chain)
    assert len(gf.plot.chain_norms(chain, norm="frobenius").axes[0].get_lines()) == 1


def test_a_cell_without_a_bound_is_a_gradflow_error():
    cell = gf.cells.skip(delay=2)
    params = gf.init_params(cell, sizes={"n": 3, "m": 2}, seed=0)
    x = np.zeros((6, 1, 2))
    with pytest.raises(GradflowError, match="delays"):
        gf.plot.chain_norms(gf.bound_vs_measured(cell, params, x))
    assert len(gf.plot.chain_norms(gf.jacobian_chain(cell, params, x)).axes[0].get_lines()) == 1


def test_a_median_between_zero_and_a_norm_is_minus_infinity():
    """Two sequences, one chain exactly 0: the median lands between -inf and a real log, and is -inf."""
    from gradflow.plot._style import band

    values = np.array([[0.0, 0.0], [-np.inf, -1e-16], [-np.inf, -np.inf]])
    median, low, high = band(values, (0.1, 0.9), axis=1)
    assert median[0] == 0.0 and np.isneginf(median).tolist() == [False, True, True]
    assert np.isneginf(low[1]) and np.isneginf(high[1])
    median, low, high = band(np.array([[-np.inf, -1.0, -2.0]]), (0.1, 0.9), axis=1)
    assert median[0] == -2.0 and np.isneginf(low[0]) and high[0] == pytest.approx(-1.2)
