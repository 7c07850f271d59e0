"""gf.plot.regime_map: the heatmap holds the records' mean rates, the line sits where the bound's rate is 0."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import gradflow as gf
from gradflow.cli.sweep import regime_point
from gradflow.errors import PlotError
from gradflow.sweep import Record


@pytest.fixture(scope="module")
def records():
    point = functools.partial(regime_point, cell="elman", T=25, B=2, sizes={"m": 2}, scheme="orthogonal")
    grid = {"n": [4, 8], "gain": [0.5, 1.0, 2.0], "repeat": [0, 1]}
    return gf.sweep(point, grid, executor="serial", progress=False)


def test_image_holds_the_mean_rates_over_repeats(records, rendered):
    figure = gf.plot.regime_map(records)
    rendered(figure)
    axes = figure.axes[0]
    image = axes.images[0].get_array()
    expected = np.zeros((2, 3))
    for r in records:
        j, i = [4, 8].index(r.point["n"]), [0.5, 1.0, 2.0].index(r.point["gain"])
        expected[j, i] += r.value["rate"] / 2
    np.testing.assert_allclose(np.ma.getdata(image), expected)
    assert [t.get_text() for t in axes.get_xticklabels()] == ["0.5", "1", "2"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["4", "8"]
    texts = sorted(t.get_text() for t in axes.texts)
    assert texts == sorted(f"{v:+.2f}" for v in expected.ravel())
    # the colour scale is symmetric about 0 (diverging)
    low, high = axes.images[0].get_clim()
    assert low == -high == -np.abs(expected).max()
    assert "mean over repeat" in figure._suptitle.get_text()


def test_the_boundary_is_where_the_bound_rate_crosses_zero(records):
    # orthogonal weights: ||W_h||_2 = gain, so the bound's rate log(gamma gain) is 0 at gain 1 (column 1)
    axes = gf.plot.regime_map(records).axes[0]
    segments = [line for line in axes.get_lines()]
    assert segments and all(np.allclose(line.get_xdata(), 1.0) for line in segments)
    spans = sorted(tuple(line.get_ydata()) for line in segments)
    assert spans == [(-0.5, 0.5), (0.5, 1.5)]
    assert "bound's rate = 0" in axes.get_legend().get_texts()[0].get_text()
    assert not gf.plot.regime_map(records, boundary=None).axes[0].get_lines()


def fake(points):
    return [Record(i, point, i, value) for i, (point, value) in enumerate(points)]


def test_interpolated_boundary_categories_and_minus_infinity(rendered):
    rows = fake(
        [
            ({"act": "tanh", "gain": 1}, {"rate": -1.0, "predicted_rate": -1.0}),
            ({"act": "tanh", "gain": 2}, {"rate": 0.5, "predicted_rate": 3.0}),
            ({"act": "relu", "gain": 1}, {"rate": -math.inf, "predicted_rate": -2.0}),
            ({"act": "relu", "gain": 2}, {"rate": 0.25, "predicted_rate": -1.0}),
        ]
    )
    figure = gf.plot.regime_map(rows, x="gain", y="act")
    rendered(figure)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["tanh", "relu"]  # the sweep's order
    across, along = axes.get_lines()
    # along the tanh row, -1 -> 3 crosses 0 a quarter of the way: a vertical segment across the row
    np.testing.assert_allclose(across.get_xdata(), [0.25, 0.25])
    np.testing.assert_allclose(across.get_ydata(), [-0.5, 0.5])
    # along the gain-2 column, 3 -> -1 crosses three quarters of the way: a horizontal segment
    np.testing.assert_allclose(along.get_xdata(), [0.5, 1.5])
    np.testing.assert_allclose(along.get_ydata(), [0.75, 0.75])
    assert "−∞" in [t.get_text() for t in axes.texts]
    image = np.ma.getdata(axes.images[0].get_array())
    assert image[1, 0] == -1.0  # -inf is drawn at the end of the scale (the largest finite |rate|)


def test_failed_points_are_grey_and_named(rendered):
    rows = fake([({"gain": 1, "n": 2}, {"rate": -0.5}), ({"gain": 2, "n": 2}, None)])
    rows[1] = Record(1, {"gain": 2, "n": 2}, 1, None, error="GradflowError: boom")
    figure = gf.plot.regime_map(rows)
    rendered(figure)
    axes = figure.axes[0]
    assert axes.images[0].get_array().mask.tolist() == [[False, True]]
    assert "failed" in [t.get_text() for t in axes.texts]


def test_explicit_limit(records):
    axes = gf.plot.regime_map(records, limit=5.0).axes[0]
    assert axes.images[0].get_clim() == (-5.0, 5.0)


def test_errors(records):
    with pytest.raises(PlotError, match="the sweep is empty"):
        gf.plot.regime_map([])
    with pytest.raises(PlotError, match=r"takes the records of gf\.sweep"):
        gf.plot.regime_map({"rate": 1.0})
    with pytest.raises(PlotError, match="record 0 is a dict"):
        gf.plot.regime_map([{"gain": 1.0}])
    with pytest.raises(PlotError, match="has no axis 'width'"):
        gf.plot.regime_map(records, x="width")
    with pytest.raises(PlotError, match="has no 'speed'"):
        gf.plot.regime_map(records, value="speed")
    with pytest.raises(PlotError, match="axis 'repeat' varies"):
        gf.plot.regime_map(records, average=())
    with pytest.raises(PlotError, match="no 'slack' to draw the boundary"):
        gf.plot.regime_map(records, boundary="slack")
    with pytest.raises(PlotError, match="different axes"):
        gf.plot.regime_map(records, x="n", y="n")
    with pytest.raises(PlotError, match="limit must be"):
        gf.plot.regime_map(records, limit=-1)
    failed = [Record(0, {"gain": 1, "n": 2}, 0, None, error="E: x")]
    with pytest.raises(PlotError, match="every point of the sweep failed"):
        gf.plot.regime_map(failed)
    with pytest.raises(PlotError, match="not a number"):
        gf.plot.regime_map(fake([({"gain": 1, "n": 2}, {"rate": "fast"})]))
