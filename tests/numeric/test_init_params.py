"""init_params: shapes, seeds, schemes, spectral targets, backends and errors.

Every check reads the returned numbers directly (eigenvalues, singular values,
Gram matrices), never the code paths that produced them.
"""

from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

import gradflow as gf
from gradflow.numeric.init import IRNN_INPUT_STD, SCALAR_DEFAULTS, SCHEMES, init_params, parameter_roles

C = gf.cells
SIZES = {"n": 4, "m": 3, "k": 4}

CELLS = {
    "elman": C.elman,
    "jordan": C.jordan,
    "lstm": C.lstm,
    "lstm1997": lambda: C.lstm(forget_gate=False),
    "lstm_peephole": lambda: C.lstm(peephole=True),
    "gru": C.gru,
    "gru_reset_after": lambda: C.gru(reset_after=True),
    "leaky": C.leaky,
    "skip": C.skip,
    "ctrnn": C.ctrnn,
    "indrnn": C.indrnn,
    "minimal": C.minimal,
    "stack": lambda: C.stack([C.elman(), C.gru()]),
    "bidirectional": lambda: C.bidirectional(C.lstm()),
    "stack_bidirectional": lambda: C.stack([C.bidirectional(C.elman()), C.elman()]),
}

#: The recurrent matrices of each cell, written out by hand from its equations.
RECURRENT = {
    "elman": {"W_h"},
    "jordan": {"W_h", "W_y"},  # square because k = n here; the loop is y -> h -> y
    "lstm": {"W_f", "W_i", "W_o", "W_c"},
    "lstm1997": {"W_i", "W_o", "W_c"},
    "lstm_peephole": {"W_f", "W_i", "W_o", "W_c"},
    "gru": {"W_z", "W_r", "W_h"},
    "gru_reset_after": {"W_z", "W_r", "W_h"},
    "leaky": {"W_h"},
    "skip": {"W_h", "W_d"},
    "ctrnn": {"W_h"},
    "indrnn": set(),
    "minimal": {"U_h"},
    "stack": {"layer1.W_h", "layer2.W_z", "layer2.W_r", "layer2.W_h"},
    "bidirectional": {f"{d}.W_{g}" for d in ("fwd", "bwd") for g in "fioc"},
    "stack_bidirectional": {"layer1.fwd.W_h", "layer1.bwd.W_h", "layer2.W_h"},
}


def concrete(name: str) -> gf.Cell:
    cell = CELLS[name]()
    return cell.with_sizes(**{s.name: SIZES[s.name] for s in cell.size_symbols})


def spectral_radius(matrix) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(matrix)))))


def spectral_norm(matrix) -> float:
    return float(np.linalg.norm(np.asarray(matrix), 2))


def gated_cell() -> gf.Cell:
    """A user cell whose recurrence passes through an intermediate and a concatenation."""
    return gf.Cell(
        "gated",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W": ("n", "n"), "V": ("n", "n + m"), "U": ("n", "m"), "c": "n", "b": "n", "beta": ()},
        intermediates={"a": "softsign(h)", "g": "sigmoid(V @ [h, x] + c)"},
        updates={"h": "g * h + (1 - g) * tanh(W @ a + U @ x + b) * beta"},
    )


# -- roles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CELLS))
def test_recurrent_matrices_are_found_from_the_equations(name):
    roles = parameter_roles(concrete(name))
    assert {p for p, role in roles.items() if role == "recurrent"} == RECURRENT[name]
    assert list(roles) == list(concrete(name).params)


def test_roles_of_vectors_and_scalars():
    assert parameter_roles(C.indrnn())["u"] == "recurrent_diagonal"
    peephole = parameter_roles(C.lstm(peephole=True))
    assert (peephole["p_f"], peephole["p_i"]) == ("recurrent_diagonal", "recurrent_diagonal")
    assert peephole["p_o"] == "diagonal"  # it sees c at time t, not a past value
    assert parameter_roles(C.leaky())["alpha"] == "scalar"
    assert {r for p, r in parameter_roles(C.gru(reset_after=True)).items() if p.startswith("b")} == {"bias"}


def test_roles_through_intermediates_and_concatenation():
    roles = parameter_roles(gated_cell())
    # W multiplies a = softsign(h[t-1]), an intermediate of the step: recurrent. V multiplies [h; x] but
    # is not square. A stacked layer's input matrix reads the layer below at time t: not recurrent.
    assert roles == {"W": "recurrent", "V": "input", "U": "input", "c": "bias", "b": "bias", "beta": "scalar"}
    assert parameter_roles(C.stack([C.elman(), C.elman()]))["layer2.W_x"] == "input"


def test_jordan_matrices_are_recurrent_only_when_square():
    assert parameter_roles(C.jordan())["W_h"] == "input"  # (n, k)
    assert parameter_roles(C.jordan(n=3, k=3, m=2))["W_h"] == "recurrent"


# -- shapes, seeds, backends ----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["gaussian", "orthogonal", "identity"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_shapes_of_every_cell(name, scheme):
    cell = CELLS[name]()
    params = init_params(
        cell, seed=1, sizes={s.name: SIZES[s.name] for s in cell.size_symbols}, scheme=scheme
    )
    expected = concrete(name).params
    assert list(params) == list(expected)
    for key, value in params.items():
        assert isinstance(value, np.ndarray)
        assert value.dtype == np.float64
        assert value.shape == tuple(int(d) for d in expected[key]), key
        assert np.all(np.isfinite(value))


@pytest.mark.parametrize("name", ["indrnn", "lstm", "stack_bidirectional"])
def test_initial_parameters_simulate(name, rng):
    cell = concrete(name)
    params = init_params(cell, seed=0, scheme="indrnn" if name == "indrnn" else "orthogonal")
    traj = gf.simulate(cell, params, rng.standard_normal((5, 2, SIZES["m"])))
    assert all(np.all(np.isfinite(v)) for v in traj.values())


def test_same_seed_same_numbers_other_seed_other_numbers():
    cell = concrete("lstm")
    first, again = init_params(cell, seed=7), init_params(cell, seed=7)
    other = init_params(cell, seed=8)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["W_f"], other["W_f"])
    fresh = [init_params(cell)["W_f"] for _ in range(2)]
    assert not np.array_equal(*fresh)


def test_a_parameter_depends_on_the_seed_and_its_name_only():
    # W_h and W_x of leaky units are drawn exactly as the Elman cell's: the extra alpha changes nothing.
    elman = init_params(C.elman(n=4, m=3), seed=3)
    leaky = init_params(C.leaky(n=4, m=3), seed=3)
    for key in ("W_h", "W_x"):
        np.testing.assert_array_equal(elman[key], leaky[key])
    assert not np.array_equal(elman["W_h"][:3, :3], elman["W_x"][:3, :3])


def test_array_api_strict_backend_and_float32():
    strict = init_params(C.gru(n=3, m=2), seed=0, backend="array_api_strict")
    reference = init_params(C.gru(n=3, m=2), seed=0)
    for key, value in strict.items():
        assert type(value).__module__.startswith("array_api_strict")
        assert value.dtype == array_api_strict.float64
        np.testing.assert_array_equal(np.asarray(value), reference[key])
    single = init_params(C.leaky(n=3, m=2), seed=0, dtype="float32")
    assert {v.dtype for v in single.values()} == {np.dtype(np.float32)}
    assert single["alpha"].shape == ()
    strict32 = init_params(C.elman(n=2, m=2), seed=0, backend=array_api_strict, dtype="float32")
    assert all(v.dtype == array_api_strict.float32 for v in strict32.values())


# -- schemes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["gaussian", "orthogonal", "identity"])
@pytest.mark.parametrize("name", sorted(set(CELLS) - {"indrnn"}))
def test_spectral_radius_and_norm_are_hit(name, scheme):
    for target in (0.5, 1.0, 2.7):
        by_radius = init_params(concrete(name), seed=2, scheme=scheme, spectral_radius=target)
        by_norm = init_params(concrete(name), seed=2, scheme=scheme, spectral_norm=target)
        for key in RECURRENT[name]:
            assert abs(spectral_radius(by_radius[key]) - target) <= 1e-10 * target, key
            assert abs(spectral_norm(by_norm[key]) - target) <= 1e-10 * target, key


def test_spectral_targets_leave_the_other_parameters_alone():
    plain = init_params(concrete("gru"), seed=4)
    scaled = init_params(concrete("gru"), seed=4, spectral_radius=0.3)
    for key in plain:
        if key in RECURRENT["gru"]:
            factor = 0.3 / spectral_radius(plain[key])
            np.testing.assert_allclose(scaled[key], plain[key] * factor, rtol=1e-13)
        else:
            np.testing.assert_array_equal(scaled[key], plain[key])


def test_gaussian_variance_is_gain_squared_over_fan_in():
    params = init_params(C.elman(n=150, m=100), seed=0, gain=2.0)
    assert abs(np.std(params["W_h"]) - 2.0 / np.sqrt(150)) < 0.03 * 2.0 / np.sqrt(150)
    assert abs(np.std(params["W_x"]) - 2.0 / np.sqrt(100)) < 0.03 * 2.0 / np.sqrt(100)
    assert abs(np.mean(params["W_h"])) < 0.01
    # the circular law: a Gaussian matrix with this variance has spectral radius close to the gain
    assert abs(spectral_radius(params["W_h"]) - 2.0) < 0.25


@pytest.mark.parametrize("gain", [1.0, 0.7])
def test_orthogonal_matrices(gain):
    tall = init_params(C.elman(n=5, m=3), seed=0, scheme="orthogonal", gain=gain)
    wide = init_params(C.jordan(n=2, m=6, k=4), seed=0, scheme="orthogonal", gain=gain)
    np.testing.assert_allclose(tall["W_h"].T @ tall["W_h"], gain**2 * np.eye(5), atol=1e-12)
    np.testing.assert_allclose(tall["W_h"] @ tall["W_h"].T, gain**2 * np.eye(5), atol=1e-12)
    np.testing.assert_allclose(tall["W_x"].T @ tall["W_x"], gain**2 * np.eye(3), atol=1e-12)  # (5, 3)
    np.testing.assert_allclose(wide["W_x"] @ wide["W_x"].T, gain**2 * np.eye(2), atol=1e-12)  # (2, 6)
    np.testing.assert_allclose(wide["W_h"] @ wide["W_h"].T, gain**2 * np.eye(2), atol=1e-12)  # (2, 4)
    np.testing.assert_allclose(abs(np.linalg.det(tall["W_h"] / gain)), 1.0, atol=1e-12)
    peephole = init_params(C.lstm(peephole=True, n=6, m=2), seed=0, scheme="orthogonal", gain=gain)
    np.testing.assert_allclose(np.abs(peephole["p_f"]), gain)  # diag(p) orthogonal: entries ±gain


def test_orthogonal_matrices_are_not_all_alike():
    # the sign fix makes Q Haar-distributed: eigenvalues spread over the unit circle, not all +1
    params = init_params(C.elman(n=50, m=2), seed=0, scheme="orthogonal")
    angles = np.angle(np.linalg.eigvals(params["W_h"]))
    assert np.std(angles) > 1.0


@pytest.mark.parametrize("gain", [1.0, 0.9])
def test_identity_scheme_is_irnn(gain):
    params = init_params(
        C.stack([C.elman("relu"), C.indrnn()]), sizes={"n": 4, "m": 3}, seed=0, scheme="identity", gain=gain
    )
    np.testing.assert_array_equal(params["layer1.W_h"], gain * np.eye(4))
    np.testing.assert_array_equal(params["layer2.u"], np.full(4, gain))
    for key in ("layer1.W_x", "layer2.W_x"):
        assert 0 < np.max(np.abs(params[key])) < 6 * IRNN_INPUT_STD
    for key in ("layer1.b", "layer2.b"):
        np.testing.assert_array_equal(params[key], 0.0)


def test_indrnn_scheme_bounds_the_recurrent_weights():
    params = init_params(C.indrnn(n=500, m=3), seed=0, scheme="indrnn", gain=2 ** (1 / 100))
    u = params["u"]
    assert np.all(u > 0) and np.all(u < 2 ** (1 / 100))
    assert np.max(u) > 0.99  # uniform over the whole interval
    assert abs(np.std(params["W_x"]) - 1 / np.sqrt(3)) < 0.05
    np.testing.assert_array_equal(params["b"], 0.0)


def test_bias_scalars_and_values():
    params = init_params(C.ctrnn(n=3, m=2), seed=0, bias=0.25)
    np.testing.assert_array_equal(params["b"], 0.25)
    assert (float(params["tau"]), float(params["dt"])) == (SCALAR_DEFAULTS["tau"], SCALAR_DEFAULTS["dt"])
    assert float(init_params(C.leaky(n=3, m=2), seed=0)["alpha"]) == 0.5
    overridden = init_params(
        C.lstm(n=3, m=2), seed=0, values={"b_f": 1.0, "W_c": np.eye(3)}, spectral_radius=0.5
    )
    np.testing.assert_array_equal(overridden["b_f"], np.ones(3))
    np.testing.assert_array_equal(overridden["W_c"], np.eye(3))  # as given, not rescaled
    custom = init_params(gated_cell(), sizes={"n": 3, "m": 2}, seed=0, values={"beta": 0.7})
    assert float(custom["beta"]) == 0.7
    assert custom["V"].shape == (3, 5)
    bidirectional = init_params(C.bidirectional(C.leaky()), sizes={"n": 2, "m": 1}, seed=0)
    assert float(bidirectional["bwd.alpha"]) == SCALAR_DEFAULTS["alpha"]


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_scheme():
    with pytest.raises(gf.GradflowError, match=r"unknown initialisation scheme 'xavier'.*gaussian"):
        init_params(concrete("elman"), scheme="xavier")
    assert set(SCHEMES) == {"gaussian", "orthogonal", "identity", "indrnn"}


def test_both_spectral_targets():
    with pytest.raises(gf.GradflowError, match="spectral_radius or spectral_norm, not both"):
        init_params(concrete("elman"), spectral_radius=1.0, spectral_norm=1.0)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1", True])
@pytest.mark.parametrize("what", ["spectral_radius", "spectral_norm", "gain"])
def test_non_positive_targets(what, bad):
    with pytest.raises(gf.GradflowError, match=what):
        init_params(concrete("elman"), **{what: bad})


def test_missing_sizes():
    with pytest.raises(gf.CellDefinitionError, match=r"symbolic sizes m, n.*sizes=\{'m': 4, 'n': 4\}"):
        init_params(C.elman())
    with pytest.raises(gf.CellDefinitionError, match=r"symbolic sizes m"):
        init_params(C.elman(), sizes={"n": 3})
    with pytest.raises(gf.CellDefinitionError, match="no symbolic size 'q'"):
        init_params(C.elman(), sizes={"n": 3, "m": 2, "q": 1})


def test_bad_values_and_seeds():
    with pytest.raises(gf.ShapeError, match=r"values\['W_h'\] has shape \(2, 2\).*\(3, 3\)"):
        init_params(C.elman(n=3, m=2), values={"W_h": np.eye(2)})
    with pytest.raises(gf.ShapeError, match=r"values\['W_h'\] has shape \(3,\)"):  # no silent broadcasting
        init_params(C.elman(n=3, m=2), values={"W_h": np.ones(3)})
    with pytest.raises(gf.ShapeError, match=r"values\['b'\] must be a number"):
        init_params(C.elman(n=3, m=2), values={"b": "zero"})
    with pytest.raises(gf.ShapeError, match="'W_q', which cell 'elman' does not have"):
        init_params(C.elman(n=3, m=2), values={"W_q": 1.0})
    with pytest.raises(gf.GradflowError, match=r"scalar parameter 'beta'.*values=\{'beta'"):
        init_params(gated_cell(), sizes={"n": 3, "m": 2})
    for seed in (-1, 1.5, "0", True):
        with pytest.raises(gf.GradflowError, match="seed must be"):
            init_params(C.elman(n=3, m=2), seed=seed)
    with pytest.raises(gf.GradflowError, match="bias must be a finite number"):
        init_params(C.elman(n=3, m=2), bias=float("nan"))
    with pytest.raises(gf.GradflowError, match="needs a Cell"):
        init_params("elman")


def test_scheme_and_targets_that_do_not_fit_the_cell():
    with pytest.raises(gf.GradflowError, match=r"scheme 'indrnn'.*cell 'elman' has none"):
        init_params(concrete("elman"), scheme="indrnn")
    with pytest.raises(gf.GradflowError, match=r"cell 'indrnn' has no recurrent matrix.*gain=u_max"):
        init_params(concrete("indrnn"), spectral_radius=1.0)
    with pytest.raises(gf.GradflowError, match="no recurrent matrix"):
        init_params(C.jordan(n=3, k=2, m=2), spectral_norm=1.0)
