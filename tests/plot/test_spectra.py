"""Singular spectra and Lyapunov exponents: the drawn data are the results' own numbers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import StepPatch

import gradflow as gf
from gradflow.errors import PlotError

LN10 = np.log(10.0)


@pytest.fixture(scope="module")
def chains():
    x = 0.5 * np.random.default_rng(2).normal(size=(20, 3, 2))
    out = {}
    for scheme in ("orthogonal", "gaussian"):
        cell = gf.cells.elman()
        params = gf.init_params(cell, sizes={"n": 6, "m": 2}, seed=3, scheme=scheme)
        out[scheme] = gf.jacobian_chain(cell, params, x, singular_values=True)
    return out


def test_histograms_are_the_log_singular_values(chains, rendered):
    figure = gf.plot.singular_spectrum(chains, bins=12)
    rendered(figure)
    axes = figure.axes[0]
    patches = [p for p in axes.patches if isinstance(p, StepPatch)]
    assert len(patches) == 2
    values = {k: c.log_singular_values[-1].ravel() / LN10 for k, c in chains.items()}
    pooled = np.concatenate(list(values.values()))
    edges = np.linspace(pooled.min(), pooled.max(), 13)
    for patch, sample in zip(patches, values.values(), strict=True):
        density, drawn_edges, _ = patch.get_data()
        np.testing.assert_allclose(drawn_edges, edges)
        np.testing.assert_allclose(density, np.histogram(sample, bins=edges, density=True)[0])
    assert "k = 20" in axes.get_xlabel()
    # orthogonal weights keep the spectrum closer to 1 than Gaussian ones (Pennington et al. 2017)
    assert np.median(values["orthogonal"]) > np.median(values["gaussian"])


def test_lag_and_errors(chains):
    figure = gf.plot.singular_spectrum(chains["orthogonal"], lag=1)
    assert "k = 1" in figure.axes[0].get_xlabel()
    with pytest.raises(PlotError, match=r"lag must be an int in 0\.\.20"):
        gf.plot.singular_spectrum(chains, lag=21)
    with pytest.raises(PlotError, match="bins must be"):
        gf.plot.singular_spectrum(chains, bins=0)
    plain = gf.jacobian_chain(
        gf.cells.elman(), {"W_h": np.eye(2), "W_x": np.ones((2, 1)), "b": np.zeros(2)}, np.zeros((3, 1, 1))
    )
    with pytest.raises(PlotError, match="singular_values=True"):
        gf.plot.singular_spectrum(plain)
    with pytest.raises(PlotError, match="not a ChainResult"):
        gf.plot.singular_spectrum({"a": np.ones(3)})


@pytest.fixture(scope="module")
def spectra():
    cell = gf.cells.elman()
    x = 0.3 * np.random.default_rng(4).normal(size=(40, 3, 2))
    out = {}
    for gain in (0.5, 1.0, 2.0, 4.0):
        params = gf.init_params(cell, sizes={"n": 5, "m": 2}, seed=5, scheme="orthogonal", gain=gain)
        out[gain] = gf.numeric.lyapunov_spectrum(cell, params, x)
    return out


def test_lyapunov_lines_are_the_median_exponents(spectra, rendered):
    figure = gf.plot.lyapunov({f"gain {g}": s for g, s in spectra.items()})
    rendered(figure)
    lines = figure.axes[0].get_lines()
    for line, spectrum in zip(lines, spectra.values(), strict=False):
        np.testing.assert_allclose(line.get_xdata(), np.arange(1, 6))
        np.testing.assert_allclose(line.get_ydata(), np.median(spectrum, axis=0))
        assert f"{np.median(spectrum[:, 0]):+.3f}" in line.get_label()
    assert lines[-1].get_label() == r"$\lambda = 0$"


def test_largest_exponent_against_gain(spectra, rendered):
    figure = gf.plot.lyapunov_vs_gain(spectra, edge=1.0)
    rendered(figure)
    axes = figure.axes[0]
    line = axes.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [0.5, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(line.get_ydata(), [np.median(s[:, 0]) for s in spectra.values()])
    assert axes.get_xscale() == "log"  # the gains span a factor of 8
    assert any("edge of chaos (gain 1)" in t.get_text() for t in axes.get_legend().get_texts())
    # lambda_1 is below log(gamma gain) = log(gain), the bound's rate, and near it where tanh is linear
    assert np.all(line.get_ydata() <= np.log([0.5, 1.0, 2.0, 4.0]) + 1e-9)
    assert line.get_ydata()[0] == pytest.approx(np.log(0.5), abs=0.05)
    several = gf.plot.lyapunov_vs_gain({"a": spectra, "b": {1.0: spectra[1.0], 2.0: spectra[2.0]}})
    containers = several.axes[0].containers
    assert [c.get_label() for c in containers] == ["a", "b"]
    np.testing.assert_allclose(
        containers[1].lines[0].get_ydata(), [np.median(spectra[g][:, 0]) for g in (1.0, 2.0)]
    )


def test_lyapunov_errors(spectra, chains):
    with pytest.raises(PlotError, match="shape"):
        gf.plot.lyapunov(np.ones(3))
    with pytest.raises(PlotError, match="not a Lyapunov spectrum"):
        gf.plot.lyapunov({"a": chains["orthogonal"]})
    with pytest.raises(PlotError, match="not in descending order"):
        gf.plot.lyapunov(np.array([[0.0, 1.0]]))
    with pytest.raises(PlotError, match="NaN"):
        gf.plot.lyapunov(np.array([[np.nan, 1.0]]))
    with pytest.raises(PlotError, match="nothing to draw"):
        gf.plot.lyapunov({})
    with pytest.raises(PlotError, match="keys must be gains"):
        gf.plot.lyapunov_vs_gain({"big": spectra[1.0]})
    with pytest.raises(PlotError, match="takes a dict gain"):
        gf.plot.lyapunov_vs_gain(spectra[1.0])
    with pytest.raises(PlotError, match="edge must be"):
        gf.plot.lyapunov_vs_gain(spectra, edge=0)
