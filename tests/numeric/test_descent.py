"""gf.numeric.loss_surface and gradient_descent: the loss at every grid point, steps that follow bptt, clipping."""

from __future__ import annotations

import numpy as np
import pytest

import gradflow as gf
from gradflow.errors import GradflowError

#: Pascanu, Mikolov and Bengio's one-unit network x_t = w sigma(x_{t-1}) + b (its input is zero).
CLIFF = gf.Cell(
    "pascanu_cliff",
    states={"h": 1},
    inputs={"x": 1},
    params={"w": (), "b": ()},
    updates={"h": "w * sigmoid(h) + b + x"},
)


@pytest.fixture(scope="module")
def cliff_setting():
    x = np.zeros((20, 1, 1))
    h0 = {"h": np.full((1, 1), 0.5)}
    return x, h0


def by_hand(w, b, T=20, h=0.5):
    """The referee: the recursion in plain Python."""
    for _ in range(T):
        h = w / (1 + np.exp(-h)) + b
    return h


def test_loss_surface_is_the_loss_of_each_point(cliff_setting):
    x, h0 = cliff_setting
    params = {"w": np.array(1.0), "b": np.array(0.0)}
    surface = gf.numeric.loss_surface(
        CLIFF, params, x, 0.7, {"w": [2.0, 5.0, 8.0], "b": [-4.0, -2.0]}, initial=h0
    )
    assert surface.names == ("w", "b") and surface.loss.shape == (2, 3) and surface.T == 20
    for j, b in enumerate([-4.0, -2.0]):
        for i, w in enumerate([2.0, 5.0, 8.0]):
            assert surface.loss[j, i] == pytest.approx(0.5 * (by_hand(w, b) - 0.7) ** 2, rel=1e-12)


def test_descent_follows_bptt_and_clipping_bounds_the_step(cliff_setting):
    x, h0 = cliff_setting
    start = {"w": np.array(5.5), "b": np.array(-3.0)}
    plain = gf.numeric.gradient_descent(
        CLIFF, start, x, 0.7, train=["w", "b"], learning_rate=0.1, steps=8, initial=h0
    )
    clipped = gf.numeric.gradient_descent(
        CLIFF, start, x, 0.7, train=["w", "b"], learning_rate=0.1, steps=8, clip_norm=0.5, initial=h0
    )
    assert plain.params.shape == (9, 2) and plain.loss.shape == (9,) and plain.gradient_norm.shape == (8,)
    # the first step, by central differences of the loss
    eps = 1e-6

    def loss(w, b):
        return 0.5 * (by_hand(w, b) - 0.7) ** 2

    grad = [
        (loss(5.5 + eps, -3.0) - loss(5.5 - eps, -3.0)) / (2 * eps),
        (loss(5.5, -3.0 + eps) - loss(5.5, -3.0 - eps)) / (2 * eps),
    ]
    np.testing.assert_allclose(plain.params[1], [5.5, -3.0] - 0.1 * np.array(grad), rtol=1e-6)
    steps = np.linalg.norm(np.diff(clipped.params, axis=0), axis=1)
    assert np.all(steps <= 0.1 * 0.5 + 1e-12)
    assert clipped.clipped.any() and not plain.clipped.any()
    np.testing.assert_allclose(clipped.gradient_norm[0], plain.gradient_norm[0])
    assert plain.loss[-1] < plain.loss[0]


def test_descent_that_overflows_names_the_step():
    linear = gf.cells.elman("identity")
    params = {"W_h": np.full((1, 1), 1.5), "W_x": np.ones((1, 1)), "b": np.zeros(1)}
    x = np.ones((60, 1, 1))
    with pytest.raises(GradflowError, match="left the floating-point range"):
        gf.numeric.gradient_descent(linear, params, x, 0.0, train=["W_h"], learning_rate=10.0, steps=50)


def test_descent_and_surface_errors(cliff_setting):
    x, _ = cliff_setting
    params = {"w": np.array(1.0), "b": np.array(0.0)}
    with pytest.raises(GradflowError, match="exactly two parameters"):
        gf.numeric.loss_surface(CLIFF, params, x, 0.7, {"w": [1, 2]})
    with pytest.raises(GradflowError, match="at least 2 finite numbers"):
        gf.numeric.loss_surface(CLIFF, params, x, 0.7, {"w": [1], "b": [0, 1]})
    elman = gf.cells.elman()
    elman_params = gf.init_params(elman, sizes={"n": 2, "m": 1}, seed=0)
    with pytest.raises(GradflowError, match="one entry"):
        gf.numeric.loss_surface(elman, elman_params, x, 0.7, {"W_h": [1, 2], "b": [0, 1]})
    with pytest.raises(GradflowError, match="learning_rate must be"):
        gf.numeric.gradient_descent(CLIFF, params, x, 0.7, train=["w"], learning_rate=0, steps=2)
    with pytest.raises(GradflowError, match="no parameter 'v'"):
        gf.numeric.gradient_descent(CLIFF, params, x, 0.7, train=["v"], learning_rate=0.1, steps=2)
    with pytest.raises(GradflowError, match="steps must be"):
        gf.numeric.gradient_descent(CLIFF, params, x, 0.7, train=["w"], learning_rate=0.1, steps=0)
    with pytest.raises(GradflowError, match="broadcasts to"):
        gf.numeric.gradient_descent(CLIFF, params, x, np.ones(3), train=["w"], learning_rate=0.1, steps=1)
    with pytest.raises(GradflowError, match="states"):
        lstm = gf.cells.lstm()
        gf.numeric.gradient_descent(
            lstm,
            gf.init_params(lstm, sizes={"n": 1, "m": 1}, seed=0),
            x,
            0.0,
            train=["b_f"],
            learning_rate=0.1,
            steps=1,
        )
