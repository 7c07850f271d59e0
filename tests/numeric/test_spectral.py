"""The chain's spectral norms by Rayleigh--Ritz steps against a carried block (gradflow.numeric._spectral)."""

from __future__ import annotations

import numpy as np
import pytest

import gradflow as gf
from gradflow.numeric import _spectral
from gradflow.numeric.backend import to_numpy


def elman(n: int, T: int, B: int, seed: int, scale: float = 1.0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {
        "W_h": scale * rng.normal(size=(n, n)) / np.sqrt(n),
        "W_x": rng.normal(size=(n, 1)),
        "b": np.zeros(n),
    }
    return params, rng.normal(size=(T, B, 1))


@pytest.mark.parametrize("tol", [1e-4, 1e-8])
@pytest.mark.parametrize("scale", [0.8, 1.0, 3.0])
def test_power_norms_are_never_above_the_exact_ones_and_within_half_tol(tol: float, scale: float) -> None:
    """The Ritz value is a lower bound; the Krylov--Weinstein / Kato--Temple test puts it within tol/2."""
    params, x = elman(24, 150, 2, seed=11, scale=scale)  # n > 8: the block does not span the space
    cell = gf.cells.elman()
    ours = to_numpy(gf.jacobian_chain(cell, params, x, tol=tol).log_spectral)
    exact = to_numpy(gf.jacobian_chain(cell, params, x, spectral="svd").log_spectral)
    ratio = np.exp(ours - exact)
    assert np.all(ratio <= 1 + 1e-12)
    assert np.all(ratio >= 1 - tol / 2 - 1e-12)


def test_a_loose_tolerance_is_used_not_exceeded() -> None:
    """With tol = 1e-4 the errors reach beyond 1e-8 (the test stops early) but stay under 5e-5."""
    params, x = elman(24, 300, 1, seed=12)
    cell = gf.cells.elman()
    ours = to_numpy(gf.jacobian_chain(cell, params, x, tol=1e-4).log_spectral)
    exact = to_numpy(gf.jacobian_chain(cell, params, x, spectral="svd").log_spectral)
    error = 1 - np.exp(ours - exact)
    assert error.max() <= 5e-5 + 1e-12
    assert error.max() > 1e-10  # the looser test really ended lags sooner than the default would


def test_most_lags_of_a_long_chain_take_one_step() -> None:
    """The carried U^T D_k makes one Rayleigh--Ritz step per lag enough once the chain nears low rank."""
    params, x = elman(32, 400, 1, seed=13)
    chain = gf.jacobian_chain(gf.cells.elman(), params, x)
    steps = np.array(chain.power_iterations)
    assert np.mean(steps[100:] == 1) > 0.9


def test_the_flat_spectra_of_the_first_lags_take_few_block_products() -> None:
    """Block Krylov: lags 1-2 of a random n = 128 chain took 41 products each by subspace iteration."""
    n = 128
    rng = np.random.default_rng(5)
    params = {"W_h": rng.normal(size=(n, n)) / np.sqrt(n), "W_x": rng.normal(size=(n, 1)), "b": np.zeros(n)}
    x = rng.normal(size=(40, 1, 1))
    chain = gf.jacobian_chain(gf.cells.elman(), params, x)
    assert max(chain.power_iterations[1:3]) <= 20
    assert sum(chain.power_iterations[:16]) <= 120  # 239 by subspace iteration
    exact = to_numpy(gf.jacobian_chain(gf.cells.elman(), params, x, spectral="svd").log_spectral)
    error = 1 - np.exp(to_numpy(chain.log_spectral) - exact)
    assert error.min() >= -1e-12 and error.max() <= 5e-9


@pytest.mark.parametrize("rank", [None, 12])
def test_every_krylov_basis_is_orthonormal(monkeypatch: pytest.MonkeyPatch, rank: int | None) -> None:
    """The bounds hold for an orthonormal basis only; a chain of rank 12 < two blocks (8 each) breaks
    the Krylov space down early, and the second Gram--Schmidt pass must keep the basis orthonormal."""
    n = 64
    rng = np.random.default_rng(8)
    W = rng.normal(size=(n, n)) / np.sqrt(n)
    if rank is not None:
        u, s, vt = np.linalg.svd(W)
        W = (u[:, :rank] * s[:rank]) @ vt[:rank]
    params = {"W_h": W, "W_x": rng.normal(size=(n, 1)), "b": np.zeros(n)}
    x = rng.normal(size=(30, 2, 1))
    errors = []
    test = _spectral._test

    def checked(xp, U, *args):  # type: ignore[no-untyped-def]
        if U.shape[-1] > 8:  # a Krylov basis of several blocks (the windows' tests use the carried block)
            gram = np.swapaxes(to_numpy(U), -1, -2) @ to_numpy(U)
            errors.append(np.abs(gram - np.eye(U.shape[-1])).max())
        return test(xp, U, *args)

    monkeypatch.setattr(_spectral, "_test", checked)
    chain = gf.jacobian_chain(gf.cells.elman(), params, x, tol=1e-14)  # tight: many lags iterate
    assert errors and max(errors) < 1e-12
    exact = to_numpy(gf.jacobian_chain(gf.cells.elman(), params, x, spectral="svd").log_spectral)
    finite = np.isfinite(exact)
    ratio = np.exp(to_numpy(chain.log_spectral)[finite] - exact[finite])
    assert np.all(ratio <= 1 + 1e-11)


@pytest.mark.parametrize(
    "cell, sizes",
    [(gf.cells.elman(), {"n": 12}), (gf.cells.skip(delay=3), {"n": 12}), (gf.cells.lstm(), {"n": 6})],
)
def test_the_carried_rows_are_the_block_times_the_chain(monkeypatch: pytest.MonkeyPatch, cell, sizes) -> None:
    """At every lag, after every change of block (and through the delays of a skip cell), Z = U^T D_k."""
    seen = []
    add = _spectral.SpectralNorms.add

    def checked(self, D, Z, F2):  # type: ignore[no-untyped-def]
        expected = np.swapaxes(to_numpy(D), 1, 2) @ to_numpy(self.U)
        np.testing.assert_allclose(
            np.swapaxes(to_numpy(Z), 1, 2), expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max()
        )
        # the squared Frobenius norm the chain hands over is that of this mantissa (alpha rests on it)
        np.testing.assert_allclose(to_numpy(F2), np.sum(to_numpy(D) ** 2, axis=(1, 2)), rtol=1e-13)
        seen.append(self.U)
        add(self, D, Z, F2)

    monkeypatch.setattr(_spectral.SpectralNorms, "add", checked)
    params = gf.init_params(cell, sizes={**sizes, "m": 1}, seed=3)
    x = np.random.default_rng(3).normal(size=(60, 2, 1))
    chain = gf.jacobian_chain(cell, params, x)
    assert len(seen) == 61
    assert any(u is not seen[0] for u in seen)  # the block changed along the way
    exact = to_numpy(gf.jacobian_chain(cell, params, x, spectral="svd").log_spectral)
    np.testing.assert_allclose(np.exp(to_numpy(chain.log_spectral) - exact), 1.0, rtol=1e-8)


def test_a_zero_chain_has_norm_zero() -> None:
    n = 10
    params = {"W_h": np.zeros((n, n)), "W_x": np.ones((n, 1)), "b": np.zeros(n)}
    chain = gf.jacobian_chain(gf.cells.elman(), params, np.ones((4, 1, 1)))
    assert np.all(np.isneginf(to_numpy(chain.log_spectral)[1:]))
    assert abs(to_numpy(chain.log_spectral)[0, 0]) < 1e-14  # D_0 = I


@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-8])
def test_two_nearly_equal_top_singular_values_stay_within_the_bound(tol: float) -> None:
    """D_k = W^k with singular values 1 and 0.999^k on top: a tiny gap, where a wrong alpha would show."""
    n, T = 16, 120
    rng = np.random.default_rng(5)
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    W = Q @ np.diag([1.0, 0.999, *np.linspace(0.9, 0.2, n - 2)]) @ Q.T
    params = {"W_h": W, "W_x": np.zeros((n, 1)), "b": np.zeros(n)}  # h stays 0: tanh' = 1
    chain = gf.jacobian_chain(gf.cells.elman(), params, np.zeros((T, 1, 1)), tol=tol)
    error = -np.expm1(to_numpy(chain.log_spectral)[:, 0])  # the exact norm is 1 at every lag
    assert np.all(error >= -1e-13)
    assert np.all(error <= tol / 2)


def test_float32_tolerances_are_held_at_what_float32_can_resolve() -> None:
    """tol = 1e-8 is below float32's epsilon: it is raised to 16 ulp, so no lag falls back to Gram eigenvalues."""
    params, x = elman(48, 150, 1, seed=14)
    cell = gf.cells.elman()
    single = gf.jacobian_chain(cell, params, x, dtype="float32")
    assert 0 not in single.power_iterations
    exact = to_numpy(gf.jacobian_chain(cell, params, x, spectral="svd").log_spectral)
    np.testing.assert_allclose(np.exp(to_numpy(single.log_spectral) - exact), 1.0, rtol=1e-4)


def test_the_krylov_steps_run_on_array_api_strict_as_on_numpy() -> None:
    """The iteration uses array-API calls only (stacked qr, concat, eigh): the same numbers on both."""
    params, x = elman(24, 30, 2, seed=21)
    cell = gf.cells.elman()
    ours = gf.jacobian_chain(cell, params, x)
    strict = gf.jacobian_chain(cell, params, x, backend="array_api_strict")
    assert max(ours.power_iterations) > 2  # some lags went through Krylov blocks
    assert strict.power_iterations == ours.power_iterations
    np.testing.assert_allclose(to_numpy(strict.log_spectral), to_numpy(ours.log_spectral), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(strict.log_frobenius), to_numpy(ours.log_frobenius), rtol=1e-13)
