"""Truncation strategies check their parameters when built, with messages that name the bad value."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import gradflow as gf
from gradflow.errors import StrategyError
from gradflow.symbolic.strategies import as_strategy


@pytest.mark.parametrize(
    ("pi", "match"),
    [
        (float("nan"), "got nan, which is not a real number"),
        (1 + 1j, r"complex number \(1\+1j\)"),
        (np.complex128(0.5), r"complex number np.complex128\(0.5\+0j\)"),
        (sp.I, "not a real number"),
        (True, "the bool True"),
        (np.bool_(True), "the bool"),
        (np.array([0.5, 0.5]), r"single probability, got an array of shape \(2,\)"),
        (np.ones((1, 1)) * 0.5, r"array of shape \(1, 1\)"),
        ([0.5], r"got \[0.5\]"),
        ("x y", "got 'x y'"),
        (object(), "got <object"),
        (float("inf"), "0 < pi <= 1, got inf"),
        (0, "0 < pi <= 1, got 0"),
        (np.float64(1.5), r"0 < pi <= 1, got np.float64\(1.5\)"),
    ],
)
def test_randomized_rejects_a_bad_pi_when_built(pi, match):
    with pytest.raises(StrategyError, match=match) as info:
        gf.Randomized(pi)
    assert isinstance(info.value, ValueError)
    assert "Randomized(pi)" in str(info.value)


@pytest.mark.parametrize("seed", [-1, "a", 1.5, True, np.bool_(False), [1, 2]])
def test_randomized_rejects_a_bad_seed_when_built(seed):
    with pytest.raises(StrategyError, match=r"needs seed None or a non-negative int, got") as info:
        gf.Randomized(0.5, seed=seed)
    assert repr(seed) in str(info.value)


def test_randomized_keeps_what_was_valid():
    assert gf.Randomized().pi == sp.Symbol("pi_xi", positive=True)
    assert gf.Randomized(0.5).pi == sp.Float(0.5)
    assert gf.Randomized(1).pi == 1
    assert gf.Randomized("1/2").pi == sp.Rational(1, 2)
    assert float(gf.Randomized(np.float32(0.25)).pi) == 0.25
    assert gf.Randomized(sp.Rational(1, 3)).pi == sp.Rational(1, 3)
    q = sp.Symbol("q", positive=True)
    assert gf.Randomized(q).pi == q  # symbolic pi for formulas
    assert gf.Randomized(0.5, seed=None).seed is None


def test_randomized_reads_numpy_scalars_and_0d_arrays():
    assert gf.Randomized(np.array(0.5)).pi == sp.Float(0.5)
    assert gf.Randomized(np.array(1)).pi == 1
    strategy = gf.Randomized(0.5, seed=np.int64(7))
    assert strategy.seed == 7 and type(strategy.seed) is int
    assert gf.Randomized(0.5, seed=np.int64(7)) == gf.Randomized(0.5, seed=7)


def test_randomized_0d_array_pi_runs_in_bptt():
    cell = gf.cells.elman(n=2, m=1)
    params = {"W_h": np.eye(2) * 0.5, "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    x, upstream = np.ones((4, 1, 1)), {"h": np.ones((4, 1, 2))}
    from_array = gf.bptt(cell, params, x, upstream, truncation=gf.Randomized(np.array(0.5), seed=3))
    from_float = gf.bptt(cell, params, x, upstream, truncation=gf.Randomized(0.5, seed=3))
    for name in params:
        np.testing.assert_array_equal(from_array[name], from_float[name])


def test_truncated_accepts_numpy_integers():
    strategy = gf.Truncated(np.int64(3))
    assert strategy.tau == 3 and type(strategy.tau) is int
    assert gf.Truncated(np.uint8(2)) == gf.Truncated(2)
    assert as_strategy(np.int64(2)) == gf.Truncated(2)
    assert as_strategy(np.int32(2)).tau == 2


@pytest.mark.parametrize("tau", [0, -1, 2.0, 2.5, True, np.bool_(True), np.int64(0), None, "3"])
def test_truncated_rejects_anything_but_a_positive_int(tau):
    with pytest.raises(StrategyError, match=r"Truncated\(tau\) needs an int tau >= 1") as info:
        gf.Truncated(tau)
    assert repr(tau) in str(info.value)


def test_truncation_int_from_numpy_runs_in_bptt():
    cell = gf.cells.elman(n=2, m=1)
    params = {"W_h": np.eye(2) * 0.5, "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    x, upstream = np.ones((4, 1, 1)), {"h": np.ones((4, 1, 2))}
    numpy_tau = gf.bptt(cell, params, x, upstream, truncation=np.int64(2))
    python_tau = gf.bptt(cell, params, x, upstream, truncation=2)
    for name in params:
        np.testing.assert_array_equal(numpy_tau[name], python_tau[name])


def test_truncated_docstring_states_when_each_gradient_is_full():
    """Parameters and inputs: tau >= T - 1; an initial state read d steps back: tau >= T + d - 1."""
    doc = gf.Truncated.__doc__ or ""
    assert "tau >= T - 1" in doc and "tau >= T + d - 1" in doc
    T, d = 5, 3
    cell = gf.cells.skip(delay=d)
    params = gf.init_params(cell, seed=0, sizes={"n": 3, "m": 2})
    rng = np.random.default_rng(0)
    x, initial = rng.normal(size=(T, 2, 2)), {"h": rng.normal(size=(d, 2, 3))}
    upstream = {"h": np.ones((T, 2, 3))}
    full = gf.bptt(cell, params, x, upstream, initial=initial)

    def cut(tau):
        return gf.bptt(cell, params, x, upstream, truncation=tau, initial=initial)

    at = cut(T - 1)
    assert all(np.allclose(at[name], full[name]) for name in params)
    assert np.allclose(at.inputs["x"], full.inputs["x"])
    assert not np.allclose(at.initial["h"][0], full.initial["h"][0])
    assert not np.allclose(cut(T + d - 2).initial["h"][0], full.initial["h"][0])
    assert np.allclose(cut(T + d - 1).initial["h"], full.initial["h"])
