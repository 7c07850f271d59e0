"""The step bounds of every built-in cell beside the measurement (issue 17).

Three claims, each against a referee that does not use gradflow's bound kernels:

* the bound is never below the measured spectral norm of the chain (hypothesis, every cell
  that has a chain bound);
* it is never looser than the bounds of whole factors gradflow derived before (Pascanu's
  triangle inequality with every gate bounded by its range), whose formulas are written out
  here in NumPy from the simulated states;
* for every cell a stated parameter setting meets the vanishing condition at every step, and
  the measured chain vanishes (the 1997 LSTM excepted: its carousel makes every step's norm at
  least 1, and the test says so).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import gradflow as gf
from gradflow.cli import REPORT_CELLS, parse_cell
from gradflow.errors import GradflowError
from gradflow.numeric.backend import to_numpy
from gradflow.symbolic.bounds import chain_bound
from gradflow.symbolic.nodes import Norm

C = gf.cells

#: Every built-in cell with a chain bound, by its command-line spec (skip and bidirectional have none).
BOUNDED = [
    spec
    for spec in [*REPORT_CELLS, "stack(elman, gru)", "stack(lstm, elman)"]
    if not spec.startswith(("skip", "bidirectional"))
]


def params_of(cell: gf.Cell, n: int, seed: int, **options) -> dict:
    sizes = {k: v for k, v in {"n": n, "m": 2, "k": n}.items() if k in {str(s) for s in cell.size_symbols}}
    return gf.init_params(cell, sizes=sizes, seed=seed, **options)


def initial_of(cell: gf.Cell, params: dict, B: int, scale: float, seed: int) -> dict:
    """A random initial state of every state (a GRU's h need not lie in (-1, 1))."""
    rng = np.random.default_rng(seed)
    sizes = {
        name: int(gf.simulate(cell, params, np.zeros((1, B, 2)))[name].shape[-1]) for name in cell.states
    }
    return {name: scale * rng.normal(size=(B, size)) for name, size in sizes.items()}


# -- never below the measured norm --------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    cell_name=st.sampled_from(BOUNDED),
    n=st.integers(1, 5),
    T=st.integers(2, 20),
    scheme=st.sampled_from(["gaussian", "orthogonal"]),
    gain=st.floats(0.1, 4.0),
    start=st.floats(0.0, 3.0),
    seed=st.integers(0, 10_000),
)
def test_the_bound_holds_and_logs_stay_finite(
    cell_name: str, n: int, T: int, scheme: str, gain: float, start: float, seed: int
) -> None:
    """actual <= bound <= gamma bound at every lag, for every cell, from any initial state."""
    cell = parse_cell(cell_name)
    params = params_of(cell, n, seed, scheme=scheme, gain=gain, bias=0.5 * (seed % 3 - 1))
    x = np.random.default_rng(seed).normal(size=(T, 2, 2))
    comparison = gf.bound_vs_measured(cell, params, x, initial_of(cell, params, 2, start, seed))
    assert not np.isnan(to_numpy(comparison.log_actual)).any()
    assert not np.isnan(to_numpy(comparison.log_bound)).any()
    assert comparison.holds, f"bound below the actual norm: slack {to_numpy(comparison.slack).min()}"


@pytest.mark.parametrize("name", ["gru", "lstm", "stack(lstm, elman)", "minimal"])
def test_the_bound_kernels_run_on_array_api_strict(name: str) -> None:
    cell = parse_cell(name)
    params = params_of(cell, 3, 4)
    x = np.random.default_rng(4).normal(size=(8, 2, 2))
    reference = gf.bound_vs_measured(cell, params, x)
    strict = gf.bound_vs_measured(cell, params, x, backend="array_api_strict")
    assert strict.holds
    np.testing.assert_allclose(to_numpy(strict.log_bound), to_numpy(reference.log_bound), rtol=1e-12)
    np.testing.assert_allclose(
        to_numpy(strict.log_bound_gamma), to_numpy(reference.log_bound_gamma), rtol=1e-12
    )


@pytest.mark.parametrize("cell", [C.skip(2), C.bidirectional(C.elman())], ids=["skip", "bidirectional"])
def test_cells_without_a_chain_bound_say_so(cell) -> None:
    params = params_of(cell, 2, 0)
    with pytest.raises(GradflowError, match=r"PathSum|direction"):
        gf.bound_vs_measured(cell, params, np.zeros((4, 1, 2)))


# -- never looser than the bounds of whole factors (the formulas before issue 17) ------------------


def _sigmoid(u):
    return 1 / (1 + np.exp(-u))


def _dsigmoid(u):
    return _sigmoid(u) * _sigmoid(-u)


def _dtanh(u):
    return 1 / np.cosh(u) ** 2


def _largest(v):
    """max_k |v_k| of each sequence, (B,)."""
    return np.abs(v).max(axis=-1)


def _norm(W):
    return np.linalg.norm(W, 2)


def _gate(P, g, h, x):
    return h @ P[f"W_{g}"].T + x @ P[f"U_{g}"].T + P[f"b_{g}"]


def _whole_factor_bounds(name: str, P: dict, traj, x) -> tuple[np.ndarray, np.ndarray]:
    """B_t and B_gamma of every step, (T, B), as gradflow wrote them before: every gate bounded by 1.

    The formulas of derivations/*.md at a18a74f, e.g. the GRU's
    ``(||h||oo + 1) gamma_s ||W_z|| + gamma gamma_s ||W_h|| ||W_r|| ||h||oo + gamma ||W_h|| + 1``.
    """
    keep, gamma = [], []
    for t in range(1, x.shape[0] + 1):
        h, u = traj["h"][t - 1], x[t - 1]
        if name == "ctrnn":
            c = abs(float(P["dt"]) / float(P["tau"]))
            keep.append(c * (1 + _largest(_dtanh(h)) * _norm(P["W_h"])) + 1)
            gamma.append(c * (1 + _norm(P["W_h"])) + 1)
        elif name == "indrnn":
            slope = (h * P["u"] + u @ P["W_x"].T + P["b"] > 0).astype(float)
            keep.append(slope.max(axis=-1) * np.abs(P["u"]).max())
            gamma.append(np.abs(P["u"]).max())
        elif name == "minimal":
            z = np.tanh(u @ P["W_x"].T)
            du = _largest(_dsigmoid(h @ P["U_h"].T + z @ P["U_z"].T + P["b"]))
            keep.append((_largest(h) + 1) * du * _norm(P["U_h"]) + 1)
            gamma.append((_largest(h) + 1) * _norm(P["U_h"]) / 4 + 1)
        elif name in ("gru", "gru_reset_after"):
            dz, r = _largest(_dsigmoid(_gate(P, "z", h, u))), _sigmoid(_gate(P, "r", h, u))
            dr = _largest(_dsigmoid(_gate(P, "r", h, u)))
            if name == "gru":
                dc = _largest(_dtanh((r * h) @ P["W_h"].T + u @ P["U_h"].T + P["b_h"]))
                reset = _norm(P["W_h"]) * _largest(h)  # ||W_h|| ||diag(h)||
            else:
                inner = h @ P["W_h"].T + P["b_Wh"]
                dc = _largest(_dtanh(u @ P["U_h"].T + P["b_h"] + r * inner))
                reset = _largest(inner)  # ||W_h h + b_Wh||oo
            wz, wr, wh = _norm(P["W_z"]), _norm(P["W_r"]), _norm(P["W_h"])
            keep.append((_largest(h) + 1) * dz * wz + dr * dc * wr * reset + dc * wh + 1)
            gamma.append((_largest(h) + 1) * wz / 4 + wr * reset / 4 + wh + 1)
        else:  # lstm, lstm1997: sqrt(A^2 + C^2 + T^2 + 1), A the h-row, C the c-row, T = ||tanh'(c)||
            gates = ("f", "i", "o") if name == "lstm" else ("i", "o")
            slopes = {g: _largest(_dsigmoid(_gate(P, g, h, u))) for g in gates}
            candidate, cell_path = _largest(_dtanh(_gate(P, "c", h, u))), _largest(_dtanh(traj["c"][t]))
            keep.append(_lstm_whole(name, P, traj["c"][t - 1], slopes, candidate, cell_path))
            gamma.append(_lstm_whole(name, P, traj["c"][t - 1], dict.fromkeys(gates, 0.25), 1.0, 1.0))
        keep[-1], gamma[-1] = (np.broadcast_to(b, (x.shape[1],)) for b in (keep[-1], gamma[-1]))
    return np.array(keep), np.array(gamma)


def _lstm_whole(name: str, P: dict, c_prev, slopes: dict, candidate, cell_path):
    into_c = slopes["i"] * _norm(P["W_i"]) + candidate * _norm(P["W_c"])
    if name == "lstm":
        into_c = into_c + slopes["f"] * _norm(P["W_f"]) * _largest(c_prev)
    into_h = into_c * cell_path + slopes["o"] * _norm(P["W_o"])
    return np.sqrt(into_h**2 + into_c**2 + cell_path**2 + 1)


@settings(max_examples=40, deadline=None)
@given(
    cell_name=st.sampled_from(["ctrnn", "indrnn", "minimal", "gru", "gru_reset_after", "lstm", "lstm1997"]),
    n=st.integers(1, 5),
    T=st.integers(2, 15),
    gain=st.floats(0.1, 3.0),
    start=st.floats(0.0, 2.0),
    seed=st.integers(0, 10_000),
)
def test_the_bound_is_never_looser_than_the_bound_of_whole_factors(
    cell_name: str, n: int, T: int, gain: float, start: float, seed: int
) -> None:
    cell = parse_cell(cell_name)
    params = params_of(cell, n, seed, gain=gain, scheme="indrnn" if cell_name == "indrnn" else "gaussian")
    x = np.random.default_rng(seed).normal(size=(T, 2, 2))
    initial = initial_of(cell, params, 2, start, seed)
    comparison = gf.bound_vs_measured(cell, params, x, initial)
    P = {k: np.asarray(to_numpy(v), dtype=float) for k, v in params.items()}
    traj = gf.simulate(cell, params, x, initial)
    keep, gamma = _whole_factor_bounds(cell_name, P, {s: to_numpy(traj[s]) for s in cell.states}, x)
    with np.errstate(divide="ignore"):  # a dead ReLU unit: a bound of 0
        # lag k of the comparison: the steps T - k + 1 .. T, the latest first
        old_keep = np.vstack([np.zeros((1, 2)), np.cumsum(np.log(keep[::-1]), axis=0)])
        old_gamma = np.vstack([np.zeros((1, 2)), np.cumsum(np.log(gamma[::-1]), axis=0)])
    assert np.all(to_numpy(comparison.log_bound) <= old_keep + 1e-9)
    assert np.all(to_numpy(comparison.log_bound_gamma) <= old_gamma + 1e-9)


# -- vanishing conditions that can be met ------------------------------------------------------------

#: For each cell, a setting where B_gamma < 1 at every step: (cell, init_params options, why).
VANISHING = {
    "elman": (lambda: C.elman(), {"scheme": "orthogonal", "gain": 0.5}, "gamma ||W_h|| = 1/2"),
    "jordan": (lambda: C.jordan(), {"scheme": "orthogonal", "gain": 0.6}, "gamma^2 ||W_h|| ||W_y|| = 0.36"),
    "leaky": (lambda: C.leaky(0.9), {"scheme": "orthogonal", "gain": 0.5}, "0.9 + 0.1 gamma ||W_h|| = 0.95"),
    "ctrnn": (
        lambda: C.ctrnn(tau=1, dt=0.5),
        {"scheme": "orthogonal", "gain": 0.5},
        "|1 - dt/tau| + (dt/tau) gamma ||W_h|| = 0.75",
    ),
    "indrnn": (lambda: C.indrnn(), {"scheme": "indrnn", "gain": 0.8, "bias": 1.0}, "gamma ||u||oo < 0.8"),
    "minimal": (
        lambda: C.minimal(),
        {"scheme": "orthogonal", "gain": 0.5, "values": {"b": 1.0}},
        "u near 0.7",
    ),
    "gru": (
        lambda: C.gru(),
        {"scheme": "orthogonal", "gain": 0.4, "values": {"b_z": 0.5}},
        "z near 0.6, candidate path 0.4",
    ),
    "gru_reset_after": (
        lambda: C.gru(reset_after=True),
        {"scheme": "orthogonal", "gain": 0.4, "values": {"b_z": 0.5}},
        "z near 0.6, candidate path 0.4",
    ),
    "lstm": (
        lambda: C.lstm(),
        {"scheme": "orthogonal", "gain": 0.4, "values": {"b_f": -1.0}},
        "f near 0.27, recurrent matrices 0.4",
    ),
    "lstm_peephole": (
        lambda: C.lstm(peephole=True),
        {"scheme": "orthogonal", "gain": 0.3, "values": {"b_f": -1.0}},
        "f near 0.27, recurrent matrices 0.3",
    ),
    "stack_elman_elman": (
        lambda: C.stack([C.elman(), C.elman()]),
        {"scheme": "orthogonal", "gain": 0.5},
        "||[[1/2, 0], [1/4, 1/2]]|| = 0.64",
    ),
    "stack_elman_gru": (
        lambda: C.stack([C.elman(), C.gru()]),
        {"scheme": "orthogonal", "gain": 0.4, "values": {"layer2.b_z": 0.5}},
        "both layers contract",
    ),
}


@pytest.mark.parametrize("name", sorted(VANISHING))
def test_a_stated_setting_meets_the_vanishing_condition_and_the_chain_vanishes(name: str) -> None:
    make, options, why = VANISHING[name]
    cell = make()
    params = params_of(cell, 4, 3, **options)
    x = np.random.default_rng(1).normal(size=(60, 3, 2))
    comparison = gf.bound_vs_measured(cell, params, x)
    steps = np.exp(np.diff(to_numpy(comparison.log_bound_gamma), axis=0))  # B_gamma of every step
    assert steps.max() < 1, f"{name}: {why}, but B_gamma reaches {steps.max()}"
    found = gf.regime(cell, params, x)
    assert found.label == "vanishing" and found.confidence > 0.99, found
    assert found.predicted_rate < 0 and found.consistent, found


@pytest.mark.parametrize(
    ("cell", "norms", "expected"),
    [
        (C.ctrnn(tau=1, dt=0.5), {"W_h": sp.Rational(1, 2)}, sp.Rational(3, 4)),
        (C.ctrnn(tau=2, dt=1), {"W_h": sp.Rational(9, 10)}, sp.Rational(19, 20)),
        (C.leaky(0.9), {"W_h": sp.Rational(1, 2)}, sp.Rational(19, 20)),
        (C.elman(), {"W_h": sp.Rational(1, 2)}, sp.Rational(1, 2)),
    ],
)
def test_the_conditions_of_cells_without_gates_hold_in_closed_form(cell, norms, expected) -> None:
    """The Euler step (1 - dt/tau) I + (dt/tau) W_h diag(sigma'): |1 - dt/tau| + (dt/tau) gamma ||W_h|| < 1."""
    bound = chain_bound(cell, gamma_mode="value")
    values = {Norm(cell.parameter(name)): value for name, value in norms.items()}
    assert bound.step_gamma.xreplace(values) == expected
    assert bound.vanishing.xreplace(values) == sp.true


def test_the_1997_lstm_never_meets_the_condition() -> None:
    """d c(t)/d c(t-1) = I: every step Jacobian maps (0, e) to (B e, e), so no step bound is below 1."""
    cell = C.lstm(forget_gate=False)
    for seed in range(5):
        params = params_of(cell, 3, seed, scheme="orthogonal", gain=0.1)
        comparison = gf.bound_vs_measured(cell, params, np.random.default_rng(seed).normal(size=(20, 2, 2)))
        assert np.all(np.diff(to_numpy(comparison.log_bound_gamma), axis=0) >= 0)
        assert np.all(np.diff(to_numpy(comparison.log_bound), axis=0) >= 0)
    derivation = gf.derive(cell)
    assert "never met" in derivation.titled("Vanishing condition")[0].prose
