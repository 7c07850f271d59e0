"""gradient_per_step and truncation draw the gradients gf.bptt computed, nothing recomputed."""

from __future__ import annotations

import numpy as np
import pytest

import gradflow as gf
from gradflow.errors import PlotError


@pytest.fixture(scope="module")
def problem():
    cell = gf.cells.elman()
    params = gf.init_params(cell, sizes={"n": 5, "m": 2}, seed=0, scheme="orthogonal", gain=0.9)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(15, 3, 2))
    last = {"h": np.zeros((15, 3, 5))}
    last["h"][-1] = rng.normal(size=(3, 5))
    every = {"h": rng.normal(size=(15, 3, 5))}
    return cell, params, x, last, every


def test_lines_are_the_input_gradient_norms(problem, rendered):
    cell, params, x, last, _ = problem
    grads = gf.bptt(cell, params, x, last)
    lstm = gf.cells.lstm()
    lstm_params = gf.init_params(lstm, sizes={"n": 5, "m": 2}, seed=0)
    other = gf.bptt(lstm, lstm_params, x, last)
    figure = gf.plot.gradient_per_step({"elman": grads, "lstm": other})
    rendered(figure)
    lines = figure.axes[0].get_lines()
    for line, g in zip(lines, (grads, other), strict=True):
        norms = np.linalg.norm(g.inputs["x"], axis=-1)  # (T, B)
        expected = np.median(np.log10(norms), axis=1)[::-1]  # k = T - t
        np.testing.assert_array_equal(line.get_xdata(), np.arange(15))
        np.testing.assert_allclose(line.get_ydata(), expected)
        assert f"{expected[-1] - expected[0]:+.1f} decades over 14 steps" in line.get_label()


def test_loss_at_an_earlier_step(problem):
    cell, params, x, _, every = problem
    grads = gf.bptt(cell, params, x, every)
    line = gf.plot.gradient_per_step(grads, loss_at=10).axes[0].get_lines()[0]
    norms = np.linalg.norm(grads.inputs["x"][:10], axis=-1)
    np.testing.assert_allclose(line.get_ydata(), np.median(np.log10(norms), axis=1)[::-1])


def test_gradient_per_step_errors(problem):
    cell, params, x, last, _ = problem
    grads = gf.bptt(cell, params, x, last)
    with pytest.raises(PlotError, match=r"loss_at must be a step in 1\.\.T = 15"):
        gf.plot.gradient_per_step(grads, loss_at=16)
    with pytest.raises(PlotError, match="has no input 'u'"):
        gf.plot.gradient_per_step(grads, input="u")
    with pytest.raises(PlotError, match="not a Gradients"):
        gf.plot.gradient_per_step({"a": grads.trajectory})


@pytest.fixture(scope="module")
def strategies(problem):
    cell, params, x, _, every = problem
    runs = [gf.bptt(cell, params, x, every)]
    runs += [gf.bptt(cell, params, x, every, truncation=gf.Truncated(tau)) for tau in (1, 3, 14)]
    runs += [
        gf.bptt(cell, params, x, every, truncation=gf.Randomized(pi, seed=s))
        for pi in (0.5, 0.9)
        for s in range(4)
    ]
    return runs


def test_truncation_errors_are_relative_to_the_full_gradient(strategies, rendered):
    figure = gf.plot.truncation(strategies, param="W_h")
    rendered(figure)
    left, right = figure.axes
    full = strategies[0]["W_h"]

    def error(g):
        return np.linalg.norm(g - full) / np.linalg.norm(full)

    (cut,) = left.get_lines()
    np.testing.assert_array_equal(cut.get_xdata(), [1, 3, 14])
    expected = [max(error(g["W_h"]), 1e-17) for g in strategies[1:4]]
    np.testing.assert_allclose(cut.get_ydata(), expected)
    assert expected[2] < 1e-12 < expected[1] < expected[0]  # tau = T - 1 is the full gradient
    draws = [line for line in right.get_lines() if line.get_marker() == "o"]
    mean = next(line for line in right.get_lines() if line.get_marker() == "s")
    np.testing.assert_allclose(
        np.concatenate([d.get_ydata() for d in draws]), [error(g["W_h"]) for g in strategies[4:]]
    )
    averages = [np.mean([g["W_h"] for g in strategies[4 + 4 * k : 8 + 4 * k]], axis=0) for k in range(2)]
    np.testing.assert_allclose(mean.get_ydata(), [error(a) for a in averages])
    assert "mean of 4 draws" in mean.get_label()


def test_truncation_over_every_parameter(strategies):
    figure = gf.plot.truncation(strategies[:4])
    full = np.concatenate([strategies[0][k].ravel() for k in strategies[0]])
    cut = np.concatenate([strategies[1][k].ravel() for k in strategies[1]])
    y = figure.axes[0].get_lines()[0].get_ydata()[0]
    assert y == pytest.approx(np.linalg.norm(cut - full) / np.linalg.norm(full))
    assert "no Randomized" in figure.axes[1].texts[0].get_text()


def test_truncation_errors(problem, strategies):
    cell, params, x, _, every = problem
    with pytest.raises(PlotError, match="exactly one gradient computed with Full"):
        gf.plot.truncation(strategies[1:])
    with pytest.raises(PlotError, match="exactly one gradient computed with Full"):
        gf.plot.truncation([strategies[0], strategies[0], strategies[1]])
    with pytest.raises(PlotError, match="nothing to compare"):
        gf.plot.truncation(strategies[:1])
    with pytest.raises(PlotError, match="takes a list"):
        gf.plot.truncation(strategies[0])
    with pytest.raises(PlotError, match="no parameter 'W_z'"):
        gf.plot.truncation(strategies, param="W_z")
    other = gf.bptt(cell, params, 2 * x, every, truncation=gf.Truncated(2))
    with pytest.raises(PlotError, match="different simulations"):
        gf.plot.truncation([strategies[0], other])
    zero = gf.bptt(cell, params, x, {"h": np.zeros_like(every["h"])})
    with pytest.raises(PlotError, match="full gradient is 0"):
        gf.plot.truncation([zero, gf.bptt(cell, params, x, {"h": np.zeros_like(every["h"])}, truncation=2)])


def test_gradients_carry_their_strategy(problem):
    cell, params, x, last, _ = problem
    assert gf.bptt(cell, params, x, last).strategy == gf.Full()
    assert gf.bptt(cell, params, x, last, truncation=4).strategy == gf.Truncated(4)
