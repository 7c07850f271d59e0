"""The chain's spectral norms by Rayleigh--Ritz steps against a carried block (gradflow.numeric._spectral)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_the_flat_spectra_of_the_first_lags_go_to_gram_eigenvalues_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Krylov basis of 48 columns holds enough of ||D||_F^2 to separate the top eigenvalue of the
    first lags of a random n = 128 chain: they take Gram eigenvalues without a wasted Krylov cycle,
    and block Krylov steps take over once the spectrum concentrates."""
    n = 128
    rng = np.random.default_rng(5)
    params = {"W_h": rng.normal(size=(n, n)) / np.sqrt(n), "W_x": rng.normal(size=(n, 1)), "b": np.zeros(n)}
    x = rng.normal(size=(40, 1, 1))
    iterated: list[int] = []  # the lags (stacked) of each call of the Krylov iteration
    iterate = _spectral.SpectralNorms._iterate

    def recorded(self, D, *args):  # type: ignore[no-untyped-def]
        iterated.append(D.shape[0])
        return iterate(self, D, *args)

    monkeypatch.setattr(_spectral.SpectralNorms, "_iterate", recorded)
    chain = gf.jacobian_chain(gf.cells.elman(), params, x)
    assert chain.power_iterations[1:3] == [0, 0]  # Gram eigenvalues
    assert iterated and iterated[0] == 8  # no cycle for the windows of lags 1-2 and 3-6, one for 7-14
    assert 0 < sum(chain.power_iterations[:16]) <= 60
    exact = to_numpy(gf.jacobian_chain(gf.cells.elman(), params, x, spectral="svd").log_spectral)
    error = 1 - np.exp(to_numpy(chain.log_spectral) - exact)
    assert error.min() >= -1e-12 and error.max() <= 5e-9


def krylov_orthonormality_errors(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A list that fills, as the chain runs, with max |K^T K - I| of every Krylov basis K tested."""
    errors: list[float] = []
    test = _spectral._test

    def checked(xp, U, *args):  # type: ignore[no-untyped-def]
        if U.shape[-1] > 8:  # a Krylov basis of several blocks (the windows' tests use the carried block)
            gram = np.swapaxes(to_numpy(U), -1, -2) @ to_numpy(U)
            errors.append(np.abs(gram - np.eye(U.shape[-1])).max())
        return test(xp, U, *args)

    monkeypatch.setattr(_spectral, "_test", checked)
    return errors


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
    errors = krylov_orthonormality_errors(monkeypatch)
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
    assert len(seen) == 60  # lags 1..60: D_0 = I has norm 1 without a test
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
    assert 0 not in single.power_iterations[1:]  # lag 0, D_0 = I, takes no products
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


# -- chains whose Jacobians are diagonal and whose largest unit changes along the chain --------------

#: A cell whose step Jacobian is diag(sigmoid(U x + b)): the input alone decides which unit leads.
GATED_DECAY = gf.Cell(
    "gated_decay",
    states={"h": "n"},
    inputs={"x": "m"},
    params={"U": ("n", "m"), "b": ("n",)},
    updates={"h": "sigmoid(U @ x + b) * h"},
)


#: GATED_DECAY with a recurrent matrix: diag(sigmoid(U x + b)) + W, nearly diagonal for a small W.
GATED_COUPLED = gf.Cell(
    "gated_coupled",
    states={"h": "n"},
    inputs={"x": "m"},
    params={"U": ("n", "m"), "b": ("n",), "W": ("n", "n")},
    updates={"h": "sigmoid(U @ x + b) * h + W @ h"},
)


def diagonal_chain(case: str) -> tuple[gf.Cell, dict, np.ndarray, list[str] | None]:
    """A cell, its parameters, inputs (T, B, m) and the states whose chain is diagonal."""
    n, m = 32, 4
    if case == "lstm_cell_state":  # dc/dc = diag(f): the constant error carousel, with a forget bias
        cell = gf.cells.lstm()
        params = gf.init_params(cell, sizes={"n": n, "m": m}, seed=0, values={"b_f": 1.0})
        return cell, params, np.random.default_rng(0).normal(size=(50, 2, m)), ["c"]
    if case == "indrnn":  # dh/dh = diag(tanh' u)
        cell = gf.cells.indrnn("tanh")
        params = gf.init_params(cell, sizes={"n": n, "m": m}, seed=0)
        return cell, params, np.random.default_rng(2).normal(size=(50, 2, m)), None
    if case == "gru_without_recurrent_weights":  # dh/dh = diag(z)
        cell = gf.cells.gru()
        zero = {name: np.zeros((n, n)) for name in ("W_z", "W_r", "W_h")}
        params = gf.init_params(cell, sizes={"n": n, "m": m}, seed=1, values=zero)
        return cell, params, np.random.default_rng(1).normal(size=(60, 2, m)), None
    assert case == "gated_decay"
    rng = np.random.default_rng(11)  # 'power' was 9.5 nats below the norm at a lag of this chain
    params = {"U": rng.normal(size=(n, m)), "b": rng.normal(size=n)}
    return GATED_DECAY, params, rng.normal(size=(60, 2, m)), None


DIAGONAL_CASES = ["lstm_cell_state", "indrnn", "gru_without_recurrent_weights", "gated_decay"]


def without_entrywise_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave the chain only the Ritz values and the bound from the trace (floor 0, Schur bound inf)."""

    def nothing(xp, D, lower, eps):  # type: ignore[no-untyped-def]
        return xp.zeros(D.shape[:-2], dtype=D.dtype), xp.full(D.shape[:-2], math.inf, dtype=D.dtype)

    monkeypatch.setattr(_spectral, "_entrywise", nothing)


@pytest.mark.parametrize("entrywise", [True, False], ids=["entrywise", "trace_only"])
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("case", DIAGONAL_CASES)
def test_diagonal_chains_whose_top_unit_changes_get_the_exact_norm(
    monkeypatch: pytest.MonkeyPatch, case: str, backend: str, entrywise: bool
) -> None:
    """A block of coordinate vectors has residual 0 but may miss the leading unit: the certificate
    must not take its Ritz value for the norm (it did, by Krylov--Weinstein: up to 9.5 nats too small).
    The entrywise bounds end these lags at once; without them, the Krylov steps and the bound from
    the trace must get there too."""
    if not entrywise:
        without_entrywise_bounds(monkeypatch)
    cell, params, x, states = diagonal_chain(case)
    ours = gf.jacobian_chain(cell, params, x, states=states, backend=backend)
    exact = gf.jacobian_chain(cell, params, x, states=states, spectral="svd", full=True)
    mantissas = to_numpy(exact.mantissas)[1:]
    diagonals = np.abs(np.diagonal(mantissas, axis1=-2, axis2=-1))
    # the case is what it claims: diagonal, and the leading unit changes along the chain
    assert np.all(mantissas * (1 - np.eye(mantissas.shape[-1])) == 0)
    assert all(len(set(np.argmax(diagonals[:, b], axis=-1))) > 1 for b in range(x.shape[1]))
    ratio = np.exp(to_numpy(ours.log_spectral) - to_numpy(exact.log_spectral))
    assert np.all(ratio <= 1 + 1e-12)
    assert np.all(ratio >= 1 - 1e-8 / 2 - 1e-12)


@pytest.mark.parametrize("case", DIAGONAL_CASES)
def test_the_spectral_norm_is_at_least_the_frobenius_norm_over_root_n(case: str) -> None:
    """||D||_2 >= ||D||_F / sqrt(N): the norms 'power' gave for these chains fell below it."""
    cell, params, x, states = diagonal_chain(case)
    chain = gf.jacobian_chain(cell, params, x, states=states)
    N = 32
    floor = to_numpy(chain.log_frobenius) - 0.5 * np.log(N)
    assert np.all(to_numpy(chain.log_spectral) >= floor - 1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(9, 40),
    T=st.integers(10, 60),
    seed=st.integers(0, 2**16),
    gain=st.floats(0.5, 4.0),
    coupling=st.sampled_from([0.0, 1e-12, 1e-9, 1e-6, 1e-3]),
    tol=st.sampled_from([1e-4, 1e-8]),
)
def test_nearly_diagonal_chains_are_never_above_the_exact_norm_nor_below_it_by_more_than_half_tol(
    n: int, T: int, seed: int, gain: float, coupling: float, tol: float
) -> None:
    """Property: for any diagonal chain (its leading unit decided by the input), or one coupled by a
    small W (where the entrywise bounds no longer end the lags), the norm is certified. Before the
    fix, couplings 0 to 1e-9 put it 0.5 to 9.5 nats below the true one."""
    rng = np.random.default_rng(seed)
    params = {"U": gain * rng.normal(size=(n, 2)), "b": rng.normal(size=n)}
    params["W"] = coupling * rng.normal(size=(n, n)) / np.sqrt(n)
    x = rng.normal(size=(T, 1, 2))
    ours = to_numpy(gf.jacobian_chain(GATED_COUPLED, params, x, tol=tol).log_spectral)
    exact = to_numpy(gf.jacobian_chain(GATED_COUPLED, params, x, spectral="svd").log_spectral)
    ratio = np.exp(ours - exact)
    assert np.all(ratio <= 1 + 1e-12)
    assert np.all(ratio >= 1 - tol / 2 - 1e-12)


@pytest.mark.parametrize("n", [24, 48])  # a Krylov cycle of 6 blocks of 8 spans the space: no Gram
def test_a_chain_of_scaled_rotations_gets_its_closed_form(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """D_k = 0.9^k Q^k, Q orthogonal: D_k D_k^T = 0.81^k I has one eigenvalue of multiplicity N, and
    every Krylov space of it is invariant from its first block on; the norm is 0.9^k all the same, and
    every basis orthonormal (without a random part in place of a block inside the basis, n = 48 lost
    it entirely)."""
    T = 40
    Q = np.linalg.qr(np.random.default_rng(n).normal(size=(n, n)))[0]
    params = {"W_h": 0.9 * Q, "W_x": np.zeros((n, 1)), "b": np.zeros(n)}  # h stays 0: tanh' = 1
    errors = krylov_orthonormality_errors(monkeypatch)
    chain = gf.jacobian_chain(gf.cells.elman(), params, np.zeros((T, 1, 1)))
    assert errors and max(errors) < 1e-12
    expected = np.arange(T + 1) * np.log(0.9)
    np.testing.assert_allclose(to_numpy(chain.log_spectral)[:, 0], expected, rtol=1e-12, atol=1e-14)


def _block_problem(D: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, ...]:
    """What the chain hands ``_spectral._bound`` for a matrix ``D`` and an orthonormal block ``U``."""
    Z = U.T @ D
    return U, Z, D @ Z.T, np.sum(D * D)


def test_a_block_of_eigenvectors_that_misses_the_top_one_is_not_accepted() -> None:
    """D = diag(d) and U = 8 coordinate vectors without the largest d: r = 0, theta_1 = d_2^2 < d_1^2."""
    d = np.array([3.0, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 0.5, 0.4, 0.3])
    U = np.eye(12)[:, 1:9]
    theta, _, excess, _ = _spectral._bound(np, *_block_problem(np.diag(d), U), eps=np.finfo(float).eps)
    assert theta[-1] == pytest.approx(4.0) and theta[-1] + excess >= 9.0
    tested = _spectral._test(np, *_block_problem(np.diag(d), U), tol=1e-8, eps=np.finfo(float).eps)
    assert not tested.done and not tested.separated


@settings(max_examples=200, deadline=None)
@given(
    N=st.integers(2, 24),
    p=st.integers(1, 8),
    kind=st.sampled_from(["dense", "diagonal", "low_rank", "repeated_top"]),
    coordinates=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_the_certified_bound_is_never_below_the_top_eigenvalue(
    N: int, p: int, kind: str, coordinates: bool, seed: int
) -> None:
    """Property: theta_1 <= lambda_1 <= theta_1 + excess for any D and any orthonormal block, and the
    entrywise bounds hold (the referee: eigvalsh)."""
    rng = np.random.default_rng(seed)
    p = min(p, N)
    if kind == "dense":
        D = rng.normal(size=(N, N))
    elif kind == "diagonal":
        D = np.diag(rng.exponential(size=N) * rng.choice([-1, 1], size=N))
    elif kind == "low_rank":
        D = rng.normal(size=(N, 2)) @ rng.normal(size=(2, N))
    else:
        q = np.linalg.qr(rng.normal(size=(N, N)))[0]
        D = q @ np.diag([2.0, 2.0, *rng.uniform(0, 2, size=N - 2)][:N]) @ q.T
    # coordinates: exact eigenvectors of a diagonal D, picked at random (perhaps without the top one)
    U = np.eye(N)[:, rng.permutation(N)[:p]] if coordinates else np.linalg.qr(rng.normal(size=(N, p)))[0]
    eps = np.finfo(float).eps
    theta, _, excess, _ = _spectral._bound(np, *_block_problem(D, U), eps=eps)
    top = theta[-1]
    largest = np.linalg.eigvalsh(D @ D.T)[-1]
    assert top <= largest * (1 + 1e-12)
    assert top + excess >= largest * (1 - 1e-12)
    floor, schur = _spectral._entrywise(np, D, 0.0, eps)  # lower 0: the Schur bound always computed
    assert floor <= largest * (1 + 1e-12) and schur >= largest * (1 - 1e-12)
