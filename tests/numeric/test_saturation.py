"""Saturated and exploding units: the step Jacobians' sigma'(u) stays accurate, so chains stay finite.

1 - tanh(u)^2 is exactly 0 once |u| > 19 and s (1 - s) once u > 37, although 4 e^{-2|u|} and e^{-u}
are far inside the float range; SiLU's s + z s - z s^2 cancels to 0 for large z although its
derivative tends to 1. The chain kernels take sigma'(u) from u in forms without such differences
(gradflow.numeric.scalar.stabilize(..., complements=True)).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import gradflow as gf


def log_sech2(u: float) -> float:
    return float(2 * mpmath.log(mpmath.sech(u)))


def log_logistic_prime(u: float) -> float:
    e = mpmath.exp(-mpmath.mpf(u))
    return float(mpmath.log(e / (1 + e) ** 2))


def test_a_saturated_tanh_chain_stays_finite_and_exact():
    cell = gf.cells.elman()
    params = {"W_h": 25 * np.eye(2), "W_x": np.zeros((2, 1)), "b": np.zeros(2)}
    initial = {"h": np.ones(2)}
    x = np.zeros((10, 1, 1))
    chain = gf.jacobian_chain(cell, params, x, initial)
    h = gf.simulate(cell, params, x, initial)["h"][:, 0, 0]
    # every step: u = 25 h(t-1) with h = tanh(25 ...) ~ 1, so each factor is 25 sech^2(25 h)
    expected = np.cumsum([math.log(25) + log_sech2(25 * h[t - 1]) for t in range(10, 0, -1)])
    np.testing.assert_allclose(chain.log_spectral[1:, 0], expected, rtol=1e-12)
    assert expected[0] == pytest.approx(-45.3948, abs=1e-4)
    exponents = gf.lyapunov_spectrum(cell, params, x, initial)
    np.testing.assert_allclose(exponents[0], expected[-1] / 10, rtol=1e-12)


def test_a_saturated_logistic_chain_stays_finite_and_exact():
    cell = gf.cells.elman("sigmoid")
    params = {"W_h": 60 * np.eye(2), "W_x": np.zeros((2, 1)), "b": np.zeros(2)}
    initial = {"h": np.ones(2)}
    x = np.zeros((6, 1, 1))
    h = gf.simulate(cell, params, x, initial)["h"][:, 0, 0]
    chain = gf.jacobian_chain(cell, params, x, initial)
    expected = np.cumsum([math.log(60) + log_logistic_prime(60 * h[t - 1]) for t in range(6, 0, -1)])
    np.testing.assert_allclose(chain.log_spectral[1:, 0], expected, rtol=1e-12)
    assert expected[0] < -50  # sigma'(60) = e^{-60}: beyond 1 - s, well inside the float range


def test_an_exploding_silu_chain_grows_at_the_weights_rate_and_bptt_agrees():
    cell = gf.cells.elman("silu")
    params = {"W_h": 3 * np.eye(2), "W_x": np.zeros((2, 1)), "b": np.zeros(2)}
    initial = {"h": np.ones(2)}
    T = 40
    x = np.zeros((T, 1, 1))
    chain = gf.jacobian_chain(cell, params, x, initial, full=True)
    steps = np.diff(chain.log_spectral[:, 0])
    assert np.all(np.isfinite(chain.log_spectral))
    np.testing.assert_allclose(steps[: T - 5], math.log(3), atol=1e-9)  # silu'(z) -> 1 for large z
    found = gf.regime(cell, params, x, initial)
    assert found.label == "exploding" and found.rate == pytest.approx(math.log(3), abs=1e-2)
    # the same factors in the pullbacks: dL/dh(0) for L = <u, h(T)> is D_T^T u
    u = np.array([1.0, -2.0])
    upstream = np.zeros((T, 1, 2))
    upstream[-1, 0] = u
    grads = gf.bptt(cell, params, x, {"h": upstream}, initial=initial)
    np.testing.assert_allclose(grads.initial["h"][0], chain.matrix(T)[0].T @ u, rtol=1e-12)
    assert np.max(np.abs(grads.initial["h"])) > 1e18


def test_the_stable_forms_are_the_derivatives_to_rounding_everywhere():
    from gradflow.cells.activations import as_activation
    from gradflow.numeric.lower import compile_activation

    z = np.concatenate([-np.logspace(-8, 2.8, 200), [0.0], np.logspace(-8, 2.8, 200)])
    for name, reference in (
        ("tanh", lambda v: mpmath.sech(v) ** 2),
        ("sigmoid", lambda v: mpmath.exp(-v) / (1 + mpmath.exp(-v)) ** 2),
        ("silu", lambda v: (1 + mpmath.exp(-v) + v * mpmath.exp(-v)) / (1 + mpmath.exp(-v)) ** 2),
    ):
        _, derivative = compile_activation(as_activation(name).derivative)
        got = derivative(np, z)
        exact = np.array([float(reference(mpmath.mpf(float(v)))) for v in z])
        tiny = np.abs(exact) < 1e-300  # below the logistic's floor: held there (see _sigmoid)
        relative = np.abs(got - exact)[~tiny] / np.abs(exact)[~tiny]
        assert np.max(relative) < 1e-13, (name, z[~tiny][np.argmax(relative)])


def test_a_bare_tanh_squared_keeps_its_accuracy_near_zero():
    """Only c - c tanh^2 is rewritten; tanh^2 itself near 0 must not become 1 - (1 - z^2)."""
    import sympy as sp

    from gradflow.cells.activations import as_activation
    from gradflow.numeric.lower import compile_activation

    z = sp.Symbol("z")
    cube = as_activation(sp.Lambda(z, sp.tanh(z) ** 3 / 3))  # derivative tanh^2 (1 - tanh^2)
    _, derivative = compile_activation(cube.derivative)
    points = np.array([1e-8, 1e-4, 0.3, 5.0, 30.0])
    got = derivative(np, points)
    exact = np.array([float(mpmath.tanh(v) ** 2 * mpmath.sech(v) ** 2) for v in points])
    np.testing.assert_allclose(got, exact, rtol=1e-13)


def test_softsign_derivative_has_no_cancellation_for_large_arguments():
    from gradflow.cells.activations import as_activation
    from gradflow.numeric.lower import compile_activation

    _, derivative = compile_activation(as_activation("softsign").derivative)
    points = np.array([-1e12, -1e8, -3.0, -1e-9, 0.0, 0.5, 1e8, 1e12])
    exact = np.array([float(1 / (1 + mpmath.fabs(v)) ** 2) for v in points])
    np.testing.assert_allclose(derivative(np, points), exact, rtol=1e-14)
