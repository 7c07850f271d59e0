"""Bad input and edge cases of the analyses: clear errors instead of NaN, inf or a deep traceback.

Found by an audit: duplicate chain states, unchecked options, a chain from another simulation,
an unbounded gamma printed as a bare ``inf``, regimes of chains that become exactly zero,
overflowing simulations, complex or text arrays, and the truncation depth that is the full gradient.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

import gradflow as gf
from gradflow.errors import ChainError, GradflowError, NonFiniteError, ShapeError


@pytest.fixture
def elman_problem():
    cell = gf.cells.elman()
    params = gf.init_params(cell, sizes={"n": 3, "m": 2}, seed=0)
    x = np.random.default_rng(0).normal(size=(6, 2, 2))
    return cell, params, x


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"states": ["h", "h"]}, "states lists 'h' more than once"),
        ({"states": 3}, "states must be a list of state names, got int 3"),
        ({"tol": 1.0}, "tol must be a number in (0, 1)"),
        ({"tol": math.nan}, "tol must be a number in (0, 1)"),
        ({"tol": None}, "tol must be a number in (0, 1)"),
        ({"max_iter": 0}, "max_iter must be a positive int (default 100), got 0"),
        ({"max_iter": None}, "max_iter must be a positive int"),
        ({"anchor": 2.5}, "anchor must be an int (a time step), got float 2.5"),
        ({"anchor": "3"}, "anchor must be an int (a time step), got str '3'"),
    ],
)
def test_chain_options_are_checked(elman_problem, options, message):
    cell, params, x = elman_problem
    with pytest.raises(ChainError) as caught:
        gf.jacobian_chain(cell, params, x, **options)
    assert message in str(caught.value)


def test_duplicate_states_are_refused_by_lyapunov_too(elman_problem):
    cell, params, x = elman_problem
    with pytest.raises(ChainError, match="more than once"):
        gf.lyapunov_spectrum(cell, params, x, states=["h", "h"])


def test_chain_anchor_may_be_a_numpy_int_and_matrix_checks_the_lag(elman_problem):
    cell, params, x = elman_problem
    chain = gf.jacobian_chain(cell, params, x, anchor=np.int64(4), full=True)
    assert chain.matrix(np.int64(2)).shape == (2, 3, 3)
    with pytest.raises(ChainError, match=r"lag k=5 is outside this chain's lags 0..4"):
        chain.matrix(5)
    with pytest.raises(ChainError, match=r"matrix\(k\) takes a lag k, an int in 0..4; got None"):
        chain.matrix(None)


def cubic_cell() -> gf.Cell:
    z = sp.Symbol("z")
    return gf.Cell(
        "cubic",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W": ("n", "n"), "U": ("n", "m")},
        activations={"cube": sp.Lambda(z, z - z**3 / 3)},
        updates={"h": "cube(W @ h + U @ x)"},
    )


def test_an_unbounded_gamma_gives_a_vacuous_bound_not_a_name_error():
    rng = np.random.default_rng(0)
    params = {"W": 0.3 * rng.normal(size=(3, 3)), "U": 0.3 * rng.normal(size=(3, 2))}
    x = rng.normal(size=(8, 2, 2))
    assert gf.gamma(cubic_cell().activations["cube"]).value == sp.oo
    comparison = gf.bound_vs_measured(cubic_cell(), params, x)
    assert np.all(np.isposinf(comparison.log_bound_gamma[1:])) and comparison.holds
    found = gf.regime(cubic_cell(), params, x)
    assert found.predicted_rate == math.inf and found.consistent and math.isfinite(found.rate)


def test_a_chain_from_another_simulation_is_refused(elman_problem):
    cell, params, x = elman_problem
    other = gf.jacobian_chain(cell, params, x + 1.0)
    with pytest.raises(GradflowError, match="the chain was computed on another simulation"):
        gf.bound_vs_measured(cell, params, x, chain=other)
    shorter = gf.jacobian_chain(cell, params, x[:4])
    with pytest.raises(GradflowError, match=r"simulation of shape \(5, 2, 3\)"):
        gf.bound_vs_measured(cell, params, x, chain=shorter)
    with pytest.raises(GradflowError, match="chain must be a jacobian_chain result, got str"):
        gf.bound_vs_measured(cell, params, x, chain="x")
    same = gf.jacobian_chain(cell, params, x)
    assert gf.bound_vs_measured(cell, params, x, chain=same).holds

    lstm = gf.cells.lstm()
    lstm_params = gf.init_params(lstm, sizes={"n": 3, "m": 2}, seed=0)
    only_c = gf.jacobian_chain(lstm, lstm_params, x, states=["c"])
    with pytest.raises(GradflowError, match=r"the chain follows states \['c'\] but the bound"):
        gf.bound_vs_measured(lstm, lstm_params, x, chain=only_c)


def test_a_chain_that_becomes_exactly_zero_is_vanishing_not_nan():
    cell = gf.cells.elman()
    params = {"W_h": np.zeros((3, 3)), "W_x": np.ones((3, 1)), "b": np.zeros(3)}
    found = gf.regime(cell, params, np.ones((10, 2, 1)))
    assert (found.rate, found.label, found.confidence, found.dead) == (-math.inf, "vanishing", 1.0, 2)
    assert found.consistent


def test_dead_sequences_are_counted_and_the_rate_fitted_over_the_others():
    # relu units: sequence 0 drives every unit below zero (relu' = 0: its chain is exactly 0),
    # sequence 1 keeps them active, so its chain is 0.5^k
    cell = gf.cells.elman("relu")
    params = {"W_h": 0.5 * np.eye(3), "W_x": np.ones((3, 1)), "b": np.zeros(3)}
    x = np.concatenate([np.full((30, 1, 1), -10.0), np.full((30, 1, 1), 1.0)], axis=1)
    found = gf.regime(cell, params, x)
    assert found.dead == 1 and found.label == "vanishing"
    assert found.rate == pytest.approx(math.log(0.5), abs=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tolerance": math.nan}, "tolerance must be a finite number >= 0"),
        ({"tolerance": -1e-3}, "tolerance must be a finite number >= 0"),
        ({"tolerance": None}, "tolerance must be a finite number >= 0"),
        ({"skip": -1}, "skip must be an int >= 0"),
        ({"skip": 2.5}, "skip must be an int >= 0"),
    ],
)
def test_regime_options_are_checked(elman_problem, options, message):
    cell, params, x = elman_problem
    with pytest.raises(GradflowError) as caught:
        gf.regime(cell, params, x, **options)
    assert message in str(caught.value)


def test_regime_says_how_many_steps_it_needs(elman_problem):
    cell, params, _ = elman_problem
    with pytest.raises(GradflowError, match=r"needs 3 of them \(T >= 3 steps\); got T = 2"):
        gf.regime(cell, params, np.ones((2, 1, 2)))
    assert gf.regime(cell, params, np.ones((3, 1, 2))).label in ("vanishing", "neutral", "exploding")


def test_float32_regime_of_an_exact_bound_is_consistent():
    # identity activation, orthogonal W_h times 0.5: the bound is exact (rate = log 0.5); float32
    # rounding of the measured rate must not read as a contradiction of the bound
    cell = gf.cells.elman("identity")
    params = gf.init_params(cell, sizes={"n": 8, "m": 2}, seed=0, scheme="orthogonal", gain=0.5)
    x = np.random.default_rng(1).normal(size=(2000, 1, 2))
    found = gf.regime(cell, params, x, dtype="float32")
    assert found.consistent and found.rate == pytest.approx(math.log(0.5), abs=1e-4)


@pytest.mark.parametrize("analysis", ["simulate", "jacobian_chain", "lyapunov_spectrum", "regime", "bptt"])
def test_an_overflowing_simulation_is_an_error_naming_the_state_and_step(analysis):
    cell = gf.cells.elman("identity")
    params = gf.init_params(cell, sizes={"n": 4, "m": 2}, seed=0, scheme="orthogonal", gain=1.5)
    x = np.random.default_rng(0).normal(size=(400, 1, 2))
    arguments = (cell, params, x, {"h": np.ones((400, 1, 4))}) if analysis == "bptt" else (cell, params, x)
    with pytest.raises(NonFiniteError) as caught:  # and no RuntimeWarning (warnings are errors here)
        getattr(gf, analysis)(*arguments, dtype="float32")
    message = str(caught.value)
    assert "state 'h' of cell 'elman' overflowed to inf at step" in message and "float32 range" in message
    step = int(message.split("at step ")[1].split()[0])
    assert 200 < step < 240  # 1.5^k passes 3.4e38 near k = 219
    assert isinstance(caught.value, FloatingPointError)


def test_a_zero_time_constant_is_reported_as_non_finite():
    cell = gf.cells.ctrnn()
    params = gf.init_params(cell, sizes={"n": 3, "m": 1}, seed=0)
    params["tau"] = np.zeros_like(params["tau"])
    with pytest.raises(NonFiniteError, match=r"state 'h' of cell 'ctrnn' .* at step 1 of 5"):
        gf.simulate(cell, params, np.ones((5, 1, 1)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c, p, x: gf.simulate(c, p, x + 1j), "input 'x' holds complex values"),
        (lambda c, p, x: gf.simulate(c, p, torch.ones(6, 2, 2, dtype=torch.complex128)), "complex values"),
        (lambda c, p, x: gf.simulate(c, {**p, "b": ["1", "2", "3"]}, x), "parameter 'b' holds text values"),
        (lambda c, p, x: gf.simulate(c, p, None), "inputs is None"),
        (lambda c, p, x: gf.simulate(c, p, np.ones((6, 0, 2))), "a batch of B = 0 sequences"),
        (lambda c, p, x: gf.simulate(c, list(p.values()), x), "params must be a dict"),
        (lambda c, p, x: gf.simulate(c, p, x, np.zeros(3)), "initial must be a dict {state name: array}"),
        (lambda c, p, x: gf.bptt(c, p, x, np.ones((6, 2, 3))), "upstream must be a dict"),
        (
            lambda c, p, x: gf.bptt(c, p, x, {"h": np.full((6, 2, 3), np.nan)}),
            "upstream gradient of 'h' holds NaN or infinite entries",
        ),
        (lambda c, p, x: gf.bptt(c, p, x, {"h": np.ones((6, 2, 3)) + 1j}), "'h' holds complex values"),
    ],
)
def test_arrays_that_are_not_real_numbers_are_refused(elman_problem, call, message):
    cell, params, x = elman_problem
    with pytest.raises(ShapeError) as caught:
        call(cell, params, x)
    assert message in str(caught.value)


def test_booleans_nested_lists_and_tensors_that_require_grad_are_numbers(elman_problem):
    cell, params, x = elman_problem
    tracked = torch.tensor(x, requires_grad=True)  # no torch warning (warnings are errors here)
    found = gf.simulate(cell, {k: torch.tensor(v) for k, v in params.items()}, tracked)["h"]
    assert isinstance(found, torch.Tensor) and not found.requires_grad
    np.testing.assert_allclose(found.numpy(), gf.simulate(cell, params, x)["h"], rtol=1e-14)
    assert gf.simulate(cell, params, x > 0)["h"].shape == (7, 2, 3)
    assert gf.simulate(cell, params, [[[1, 2]]] * 4)["h"].shape == (5, 1, 3)


def gaps(full, cut, names):
    return {k: float(np.max(np.abs(np.asarray(cut[k]) - np.asarray(full[k])))) for k in names}


def test_the_truncation_depth_that_is_the_full_gradient():
    """bptt's docstring: tau >= T - 1 for parameters and inputs; tau >= T + d - 1 for a state read d back."""
    rng = np.random.default_rng(3)
    T = 6
    cell = gf.cells.elman()
    params = gf.init_params(cell, sizes={"n": 3, "m": 2}, seed=1, gain=1.2)
    x, up = rng.normal(size=(T, 2, 2)), {"h": rng.normal(size=(T, 2, 3))}
    h0 = {"h": rng.normal(size=(2, 3))}
    full = gf.bptt(cell, params, x, up, initial=h0)
    cut = gf.bptt(cell, params, x, up, initial=h0, truncation=gf.Truncated(T - 1))
    assert max(gaps(full, cut, cell.params).values()) < 1e-14
    assert gaps(full.initial, cut.initial, ["h"])["h"] > 1e-3
    at_T = gf.bptt(cell, params, x, up, initial=h0, truncation=gf.Truncated(T))
    assert gaps(full.initial, at_T.initial, ["h"])["h"] < 1e-14

    skip = gf.cells.skip(delay=2)  # reads h two steps back: the oldest slot needs tau >= T + 1
    params = gf.init_params(skip, sizes={"n": 3, "m": 2}, seed=1, gain=0.8)
    history = {"h": rng.normal(size=(2, 2, 3))}
    full = gf.bptt(skip, params, x, up, initial=history)
    for tau, oldest_agrees in ((T, False), (T + 1, True)):
        cut = gf.bptt(skip, params, x, up, initial=history, truncation=gf.Truncated(tau))
        assert max(gaps(full, cut, skip.params).values()) < 1e-14
        oldest = float(np.max(np.abs(np.asarray(cut.initial["h"])[0] - np.asarray(full.initial["h"])[0])))
        assert (oldest < 1e-14) is oldest_agrees


def test_a_symbolic_pi_is_refused_by_the_numbers_with_a_hint(elman_problem):
    cell, params, x = elman_problem
    with pytest.raises(
        gf.errors.StrategyError, match=r"needs a number in \(0, 1\] here, got the symbol pi_xi"
    ):
        gf.bptt(cell, params, x, {"h": np.ones((6, 2, 3))}, truncation=gf.Randomized())


def test_a_cell_without_inputs_gets_a_clear_message():
    cell = gf.Cell(
        "free", states={"h": "n"}, inputs={}, params={"W": ("n", "n")}, updates={"h": "tanh(W @ h)"}
    )
    with pytest.raises(ShapeError, match="has no inputs: the numeric functions read T and B from the input"):
        gf.simulate(cell, {"W": np.eye(2)}, {}, {"h": np.ones((1, 2))})
