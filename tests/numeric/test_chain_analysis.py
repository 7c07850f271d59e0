"""Referees for jacobian_chain, Lyapunov spectra, the bound beside the measurement, and regime()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradflow as gf
from gradflow.errors import GradflowError
from gradflow.numeric.backend import to_numpy


def orthogonal(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def elman_params(n: int, scale: float, seed: int, m: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W_h": scale * orthogonal(n, seed), "W_x": rng.normal(size=(n, m)), "b": np.zeros(n)}


# -- the chain against PyTorch's Jacobian of the unrolled map -------------------------------------


def torch_unrolled_jacobian(module: torch.nn.Module, x: np.ndarray, start: torch.Tensor, t: int, lstm: bool):
    """d s(T) / d s(t) by torch.autograd.functional.jacobian, running the module from step t + 1."""
    n = module.hidden_size
    xs = torch.tensor(x[t:, :1, :])

    def unrolled(state: torch.Tensor) -> torch.Tensor:
        if lstm:
            h, c = state[:n].reshape(1, 1, n), state[n:].reshape(1, 1, n)
            _, (hT, cT) = module(xs, (h, c))
            return torch.cat([hT.reshape(n), cT.reshape(n)])
        _, hT = module(xs, state.reshape(1, 1, n))
        return hT.reshape(n)

    return torch.autograd.functional.jacobian(unrolled, start).numpy()


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_chain_equals_torch_jacobian_of_the_unrolled_map(kind: str) -> None:
    torch.manual_seed(0)
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](2, 3).double()
    cell, params = gf.from_torch(module)
    T = 4
    x = np.random.default_rng(1).normal(size=(T, 1, 2))
    chain = gf.jacobian_chain(cell, params, x, full=True)
    traj = chain.trajectory
    for k in range(1, T + 1):
        t = T - k
        states = [traj[s][t, 0] for s in chain.states]
        start = torch.tensor(np.concatenate(states))
        expected = torch_unrolled_jacobian(module, x, start, t, kind == "lstm")
        np.testing.assert_allclose(chain.matrix(k)[0], expected, rtol=1e-10, atol=1e-12)
        assert int(chain.times[k]) == t


def test_chain_of_a_backward_state_runs_forward_in_time() -> None:
    cell = gf.cells.bidirectional(gf.cells.elman())
    n, T = 3, 5
    rng = np.random.default_rng(2)
    params = {
        name: rng.normal(size=tuple(int(d) for d in shape))
        for name, shape in cell.with_sizes(n=n, m=1).params.items()
    }
    x = rng.normal(size=(T, 1, 1))
    with pytest.raises(GradflowError, match=r"forwards .* and backwards"):
        gf.jacobian_chain(cell, params, x)
    chain = gf.jacobian_chain(cell, params, x, states=["bwd.h"], full=True)
    assert chain.anchor == 1 and [int(t) for t in chain.times] == [1, 2, 3, 4, 5, 6]
    # referee: the backward half is an Elman cell on the reversed sequence
    reverse = {"W_h": params["bwd.W_h"], "W_x": params["bwd.W_x"], "b": params["bwd.b"]}
    forward = gf.jacobian_chain(gf.cells.elman(), reverse, x[::-1].copy(), full=True)
    for k in range(T + 1):
        np.testing.assert_allclose(chain.matrix(k), forward.matrix(k), rtol=1e-12, atol=1e-14)


def test_chain_with_delays_sums_the_paths() -> None:
    cell = gf.cells.skip(delay=2)
    n, T = 2, 5
    rng = np.random.default_rng(3)
    params = {
        name: rng.normal(size=tuple(int(d) for d in s)) * 0.8
        for name, s in cell.with_sizes(n=n, m=1).params.items()
    }
    x = rng.normal(size=(T, 1, 1))
    chain = gf.jacobian_chain(cell, params, x, full=True)

    def final_state(h_t: np.ndarray, t: int) -> np.ndarray:
        """h(T) with h(t) replaced by h_t and everything else as simulated (central differences)."""
        traj = gf.simulate(cell, params, x)
        h = {s: traj["h"][s, 0] for s in range(T + 1)}
        h[-1] = h[0]
        h[t] = h_t
        for s in range(t + 1, T + 1):
            z = (
                params["W_h"] @ h[s - 1]
                + params["W_d"] @ h[s - 2]
                + params["W_x"] @ x[s - 1, 0]
                + params["b"]
            )
            h[s] = np.tanh(z)
        return h[T]

    traj = gf.simulate(cell, params, x)
    for k in (1, 2, 3):
        t = T - k
        base, eps = traj["h"][t, 0], 1e-6
        numeric = np.stack(
            [
                (final_state(base + eps * e, t) - final_state(base - eps * e, t)) / (2 * eps)
                for e in np.eye(n)
            ],
            axis=1,
        )
        np.testing.assert_allclose(chain.matrix(k)[0], numeric, rtol=1e-6, atol=1e-9)


# -- norms in log space -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["power", "gram", "svd"])
def test_spectral_norms_agree_with_singular_values(method: str) -> None:
    n, T = 40, 60
    params = elman_params(n, 1.2, seed=4)
    x = np.random.default_rng(4).normal(size=(T, 2, 1))
    chain = gf.jacobian_chain(gf.cells.elman(), params, x, spectral=method, singular_values=True)
    exact = to_numpy(chain.log_singular_values)[..., 0]
    np.testing.assert_allclose(np.exp(to_numpy(chain.log_spectral) - exact), 1.0, rtol=1e-8)


def test_a_long_exploding_chain_has_finite_logs() -> None:
    n, T = 6, 10_000
    params = {"W_h": 2.0 * orthogonal(n, 5), "W_x": np.zeros((n, 1)), "b": np.zeros(n)}
    chain = gf.jacobian_chain(gf.cells.elman(), params, np.zeros((T, 1, 1)))
    logs = to_numpy(chain.log_spectral)[:, 0]
    assert np.all(np.isfinite(logs)) and np.all(np.isfinite(to_numpy(chain.log_frobenius)))
    # h stays 0, tanh'(0) = 1: the chain is (2Q)^k, norm 2^k
    np.testing.assert_allclose(logs, np.arange(T + 1) * np.log(2.0), rtol=1e-10, atol=1e-9)


def test_mantissas_are_rescaled_only_when_their_norm_leaves_the_band() -> None:
    from gradflow.numeric._logscale import BAND, log_norm, normalise

    xp = gf.numeric.backend.namespace("numpy")
    M = np.full((2, 3, 3), 1.0 / 3.0)  # Frobenius norm 1 in both batch elements
    M[1] *= 4.0
    same, scale, squares = normalise(xp, M, np.array([0.5, -1.0]))
    assert same is M  # inside the band: no pass over the matrix
    np.testing.assert_allclose(squares, [1.0, 16.0], rtol=1e-15)
    np.testing.assert_array_equal(scale, [0.5, -1.0])
    M[0] *= 2 * BAND  # one batch element leaves the band: both are divided by their norms
    rescaled, scale, squares = normalise(xp, M, np.array([0.5, -1.0]))
    np.testing.assert_allclose(np.linalg.norm(rescaled, axis=(1, 2)), 1.0, rtol=1e-15)
    np.testing.assert_allclose(squares, 1.0, rtol=1e-15)  # the squares of what it returns
    np.testing.assert_allclose(scale, [0.5 + np.log(2 * BAND), -1.0 + np.log(4.0)], rtol=1e-15)
    zero, scale, squares = normalise(xp, np.zeros((1, 2, 2)), np.array([3.0]))
    assert np.all(zero == 0) and scale[0] == -np.inf and squares[0] == 0
    assert log_norm(xp, np.sqrt(squares), scale)[0] == -np.inf
    tiny = np.full((1, 2, 2), 0.5 / BAND)  # norm 1/BAND: on the edge, kept
    kept, scale, squares = normalise(xp, tiny, np.array([1.0]))
    assert kept is tiny and scale[0] == 1.0


def test_a_long_vanishing_chain_equals_the_closed_form() -> None:
    # (Q/2)^k: the mantissa drifts out of the band every 32 steps and is rescaled; the logs stay exact
    n, T = 5, 400
    params = {"W_h": 0.5 * orthogonal(n, 6), "W_x": np.zeros((n, 1)), "b": np.zeros(n)}
    chain = gf.jacobian_chain(gf.cells.elman(), params, np.zeros((T, 1, 1)))
    lags = np.arange(T + 1)
    np.testing.assert_allclose(to_numpy(chain.log_spectral)[:, 0], -lags * np.log(2.0), rtol=1e-12, atol=1e-9)
    expected = -lags * np.log(2.0) + 0.5 * np.log(n)  # ||Q^k||_F = sqrt(n)
    np.testing.assert_allclose(to_numpy(chain.log_frobenius)[:, 0], expected, rtol=1e-12, atol=1e-9)


def test_lyapunov_spectrum_matches_log_singular_values_over_T() -> None:
    n, T = 5, 300
    params = elman_params(n, 1.5, seed=6)
    x = np.random.default_rng(6).normal(size=(T, 1, 1)) * 0.3
    spectrum = to_numpy(gf.lyapunov_spectrum(gf.cells.elman(), params, x))[0]
    chain = gf.jacobian_chain(gf.cells.elman(), params, x, singular_values=True)
    singular = to_numpy(chain.log_singular_values)[-1, 0] / T
    # the sum is log|det| / T exactly: sum over steps of log|det diag(tanh'(z))| + log|det W_h|
    h = to_numpy(chain.trajectory["h"])[:, 0]
    z = h[:-1] @ params["W_h"].T + x[:, 0] @ params["W_x"].T + params["b"]
    log_det = np.sum(np.log(1 - np.tanh(z) ** 2)) + T * np.log(abs(np.linalg.det(params["W_h"])))
    assert spectrum.sum() == pytest.approx(log_det / T, rel=1e-9)
    # the top exponents (well above rounding of the product) match the singular values of the chain
    np.testing.assert_allclose(spectrum[:2], singular[:2], atol=0.02)
    assert np.all(np.diff(spectrum) <= 0)


def test_lyapunov_spectrum_refuses_delays() -> None:
    cell = gf.cells.skip(delay=2)
    params = {name: np.ones(tuple(int(d) for d in s)) for name, s in cell.with_sizes(n=2, m=1).params.items()}
    with pytest.raises(GradflowError, match="one step back"):
        gf.lyapunov_spectrum(cell, params, np.zeros((4, 1, 1)))


def test_chain_on_array_api_strict_equals_numpy() -> None:
    x = np.random.default_rng(7).normal(size=(12, 2, 1))
    ours = gf.jacobian_chain(
        gf.cells.lstm(), gf.init_params(gf.cells.lstm(), sizes={"n": 3, "m": 1}, seed=1), x
    )
    strict = gf.jacobian_chain(
        gf.cells.lstm(),
        gf.init_params(gf.cells.lstm(), sizes={"n": 3, "m": 1}, seed=1),
        x,
        backend="array_api_strict",
    )
    np.testing.assert_allclose(to_numpy(strict.log_spectral), to_numpy(ours.log_spectral), rtol=1e-12)


def test_chain_rejects_bad_requests() -> None:
    params = elman_params(3, 1.0, seed=8)
    x = np.zeros((4, 1, 1))
    with pytest.raises(GradflowError, match="anchor"):
        gf.jacobian_chain(gf.cells.elman(), params, x, anchor=9)
    with pytest.raises(GradflowError, match="spectral"):
        gf.jacobian_chain(gf.cells.elman(), params, x, spectral="qr")
    with pytest.raises(GradflowError, match="states"):
        gf.jacobian_chain(gf.cells.elman(), params, x, states=["c"])
    with pytest.raises(GradflowError, match="full=True"):
        gf.jacobian_chain(gf.cells.elman(), params, x).matrix(1)


# -- the bound never falls below the truth (every built-in cell: test_bound_conditions.py) --------------


def test_bound_equals_the_norm_for_a_diagonal_linear_case() -> None:
    # identity activation is not Pascanu's setting; use tanh at the origin: h = 0 stays 0, J = W_h
    n = 3
    params = {"W_h": 0.5 * orthogonal(n, 9), "W_x": np.zeros((n, 1)), "b": np.zeros(n)}
    comparison = gf.bound_vs_measured(gf.cells.elman(), params, np.zeros((10, 1, 1)))
    np.testing.assert_allclose(to_numpy(comparison.slack), 0.0, atol=1e-12)  # tight: ||Q^k|| = ||Q||^k


# -- regimes agree with Pascanu's conditions -----------------------------------------------------------


@pytest.mark.parametrize("n", [4, 16])
def test_tanh_inside_the_vanishing_condition_is_classified_vanishing(n: int) -> None:
    params = elman_params(n, 0.6, seed=n)  # gamma ||W_h|| = 0.6 < 1: vanishing is guaranteed
    found = gf.regime(gf.cells.elman(), params, np.random.default_rng(n).normal(size=(80, 2, 1)))
    assert found.label == "vanishing" and found.confidence > 0.99
    assert found.predicted_rate == pytest.approx(np.log(0.6), rel=1e-9) and found.consistent
    assert found.rate <= found.predicted_rate + 1e-9


@pytest.mark.parametrize("n", [4, 16])
def test_tanh_at_the_origin_with_a_large_recurrence_explodes(n: int) -> None:
    params = {"W_h": 1.5 * orthogonal(n, n), "W_x": np.zeros((n, 1)), "b": np.zeros(n)}
    found = gf.regime(gf.cells.elman(), params, np.zeros((60, 1, 1)))  # the necessary condition holds
    assert found.label == "exploding" and found.confidence > 0.99
    assert found.rate == pytest.approx(np.log(1.5), rel=1e-9) and found.consistent


@pytest.mark.parametrize("n", [4, 16])
def test_sigmoid_regimes(n: int) -> None:
    cell = gf.cells.elman("sigmoid")
    Q = orthogonal(n, 10 + n)
    small = {"W_h": 3.0 * Q, "W_x": np.ones((n, 1)), "b": np.zeros(n)}  # gamma ||W|| = 3/4 < 1
    found = gf.regime(cell, small, np.random.default_rng(n).normal(size=(60, 1, 1)))
    assert found.label == "vanishing" and found.predicted_rate == pytest.approx(np.log(0.75), rel=1e-9)
    # a fixed point h = 1/2 where z = 0 and sigma' = 1/4 is largest: J = W/4 with ||W|| = 6
    large = {"W_h": 6.0 * Q, "W_x": np.zeros((n, 1)), "b": -6.0 * Q @ np.full(n, 0.5)}
    found = gf.regime(cell, large, np.zeros((60, 1, 1)), {"h": np.full((1, n), 0.5)})
    assert found.label == "exploding" and found.rate == pytest.approx(np.log(1.5), rel=1e-9)


def test_regime_reuses_a_given_chain():
    cell = gf.cells.elman()
    params = gf.init_params(cell, sizes={"n": 4, "m": 2}, seed=0, scheme="orthogonal", gain=0.7)
    x = np.random.default_rng(0).normal(size=(20, 2, 2))
    chain = gf.jacobian_chain(cell, params, x)
    assert gf.regime(cell, params, x, chain=chain) == gf.regime(cell, params, x)
    other = gf.jacobian_chain(cell, params, 2 * x)
    with pytest.raises(gf.GradflowError, match="another simulation"):
        gf.regime(cell, params, x, chain=other)
