"""Input validation of the numeric periphery: gradient clipping, init_params, PyTorch interop.

Each bad input raises a gradflow error whose message names the culprit, instead of a NaN, an
infinity, an overflow warning or an exception from deep inside NumPy or PyTorch.
"""

from __future__ import annotations

from typing import Any

import array_api_strict
import numpy as np
import pytest

import gradflow as gf
from gradflow.errors import UnsupportedModuleError
from gradflow.numeric.gradients import clip_by_norm, clip_by_value, global_norm
from gradflow.numeric.init import init_params


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


def elman_problem() -> tuple[Any, ...]:
    cell = gf.cells.elman(n=2, m=1)
    params = {"W_h": np.eye(2) * 0.5, "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    return cell, params, np.ones((4, 1, 1)), {"h": np.ones((4, 1, 2))}


# -- gradient clipping ----------------------------------------------------------------------------


def test_global_norm_of_huge_gradients_is_finite_and_right():
    grads = {"a": np.array([1e200, 1e200])}
    assert global_norm(grads) == pytest.approx(np.sqrt(2) * 1e200, rel=1e-15)
    clipped, changed = clip_by_norm(grads, 1.0)
    assert changed
    np.testing.assert_allclose(clipped["a"], [2**-0.5, 2**-0.5], rtol=1e-15)


def test_global_norm_near_the_top_of_the_float_range():
    grads = {"a": np.array([1e308, 1e308]), "b": np.array([1e308])}
    assert global_norm(grads) == pytest.approx(np.sqrt(3) * 1e308, rel=1e-15)
    clipped, _ = clip_by_norm(grads, 3.0)
    np.testing.assert_allclose(clipped["a"], [np.sqrt(3)] * 2, rtol=1e-15)


def test_global_norm_of_tiny_gradients_does_not_underflow():
    grads = {"a": np.array([3e-200, 4e-200])}
    assert global_norm(grads) == pytest.approx(5e-200, rel=1e-15)
    clipped, changed = clip_by_norm(grads, 1e-201)
    assert changed
    np.testing.assert_allclose(clipped["a"], [6e-202, 8e-202], rtol=1e-14)


def test_global_norm_of_float32_arrays_beyond_their_square_range():
    grads = {"a": np.array([3e30, 4e30], dtype=np.float32)}
    assert global_norm(grads) == pytest.approx(5e30, rel=1e-6)
    grads = {"a": array_api_strict.asarray([3e30, 4e30], dtype=array_api_strict.float32)}
    assert global_norm(grads) == pytest.approx(5e30, rel=1e-6)


def test_global_norm_reports_nonfinite_gradients_without_raising():
    assert np.isnan(global_norm({"a": np.array([1.0]), "b": np.array([np.nan])}))
    assert global_norm({"a": np.array([np.inf, 1.0])}) == np.inf
    assert global_norm({"a": np.zeros((0, 3))}) == 0.0


@pytest.mark.parametrize(
    "grads", [{"W_h": np.array([np.nan, 1.0])}, {"b": np.ones(2), "W_h": np.array([np.inf, 1.0])}]
)
def test_clip_by_norm_refuses_nonfinite_gradients(grads):
    with pytest.raises(gf.ShapeError, match="gradient 'W_h' holds NaN or infinite entries"):
        clip_by_norm(grads, 1.0)


def test_clipping_accepts_python_numbers_and_lists():
    grads = {"a": 3.0, "b": [4.0]}
    assert global_norm(grads) == 5.0
    scaled, changed = clip_by_norm(grads, 1)
    assert changed
    np.testing.assert_allclose(scaled["a"], 0.6)
    np.testing.assert_allclose(scaled["b"], [0.8])
    clamped, changed = clip_by_value(grads, 3.5)
    assert changed
    np.testing.assert_array_equal(clamped["a"], 3.0)
    np.testing.assert_array_equal(clamped["b"], [3.5])


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("abc", "gradient 'g' must be an array"),
        (np.array([1j]), "gradient 'g' has dtype complex128"),
        (np.array([True]), "gradient 'g' has dtype bool"),
        ([[1.0], [1.0, 2.0]], "gradient 'g' must be an array of real numbers"),
        (None, "gradient 'g' must be an array"),
    ],
)
def test_clipping_names_an_entry_that_is_not_a_real_array(value, match):
    for function in (global_norm, lambda g: clip_by_norm(g, 1.0), lambda g: clip_by_value(g, 1.0)):
        with pytest.raises(gf.ShapeError, match=match):
            function({"g": value})


@pytest.mark.parametrize("threshold", [np.float32(1.0), np.float64(1.0), np.int64(1), 1, 1.0])
def test_clipping_thresholds_are_any_real_number(threshold):
    grads = {"a": np.array([3.0, -4.0])}
    scaled, _ = clip_by_norm(grads, threshold)
    np.testing.assert_allclose(scaled["a"], [0.6, -0.8], rtol=1e-15)
    clamped, _ = clip_by_value(grads, threshold)
    np.testing.assert_array_equal(clamped["a"], [1.0, -1.0])
    cell, params, x, upstream = elman_problem()
    assert gf.bptt(cell, params, x, upstream, clip_norm=threshold, clip_value=threshold).clipped


@pytest.mark.parametrize("threshold", [True, np.bool_(True)])
def test_clipping_thresholds_are_not_bools(threshold):
    grads = {"a": np.array([3.0, -4.0])}
    with pytest.raises(gf.GradflowError, match="clip norm threshold must be a positive number, got"):
        clip_by_norm(grads, threshold)
    with pytest.raises(gf.GradflowError, match="clip value limit must be a positive number, got"):
        clip_by_value(grads, threshold)


# -- init_params ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [{"W_h": np.nan}, {"b": np.inf}, {"W_x": np.array([[1.0], [-np.inf]])}])
def test_init_params_refuses_nonfinite_values(values):
    (name,) = values
    with pytest.raises(gf.ShapeError, match=rf"values\['{name}'\] holds NaN or infinite entries"):
        init_params(gf.cells.elman(n=2, m=1), seed=0, values=values)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        # seeds found by search: a Gaussian draw above sqrt(fan_in) * 1.797 overflows 1e308 * gain
        ({"gain": 1e308, "seed": 8}, r"gain=1e\+308 makes parameter 'W_x' overflow.*give a smaller gain"),
        # a non-normal W_h has entries beyond its spectral radius
        ({"spectral_radius": 1e308, "seed": 9}, r"spectral_radius=1e\+308 makes parameter 'W_h' overflow"),
        ({"gain": 1e39, "dtype": "float32"}, r"gain=1e\+39 makes parameter 'W_h' overflow.*float32"),
        ({"spectral_norm": 1e39, "dtype": "float32"}, r"spectral_norm=1e\+39 makes parameter 'W_h' overflow"),
        ({"bias": 1e39, "dtype": "float32"}, r"bias=1e\+39 makes parameter 'b' overflow"),
        ({"values": {"b": 1e39}, "dtype": "float32"}, r"values\['b'\] makes parameter 'b' overflow"),
        ({"gain": 1e39, "dtype": "float32", "backend": "array_api_strict"}, "float32"),
    ],
)
def test_init_params_names_the_option_that_overflows(options, match):
    options = {"seed": 0, **options}
    with pytest.raises(gf.GradflowError, match=match):
        init_params(gf.cells.elman(n=3, m=1), **options)  # filterwarnings=error: no overflow warning


def test_init_params_huge_but_representable_scales_are_fine():
    params = init_params(gf.cells.elman(n=3, m=2), seed=0, spectral_radius=1e300)
    assert np.all(np.isfinite(params["W_h"]))
    assert np.max(np.abs(np.linalg.eigvals(params["W_h"] / 1e300))) == pytest.approx(1.0)


@pytest.mark.parametrize("bias", [np.float32(1.0), np.float64(1.0), np.int64(1), 1, 1.0])
def test_init_params_bias_is_any_real_number(bias):
    params = init_params(gf.cells.elman(n=2, m=1), seed=0, bias=bias)
    np.testing.assert_array_equal(params["b"], [1.0, 1.0])


@pytest.mark.parametrize("bias", [True, np.bool_(False), np.float32(np.nan), "1", np.ones(2)])
def test_init_params_bias_rejects_bools_and_nonnumbers(bias):
    with pytest.raises(gf.GradflowError, match="bias must be a finite number"):
        init_params(gf.cells.elman(n=2, m=1), seed=0, bias=bias)


def test_init_params_numpy_scalars_are_accepted_for_every_scale():
    cell = gf.cells.elman(n=3, m=2)
    one = np.float32(0.5)
    for options in ({"gain": one}, {"spectral_radius": one}, {"spectral_norm": one}, {"bias": one}):
        init_params(cell, seed=0, **options)


# -- PyTorch interop ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_from_torch_refuses_nonfinite_weights(torch, value):
    module = torch.nn.RNN(3, 4)
    with torch.no_grad():
        module.weight_hh_l0[0, 0] = value
    with pytest.raises(gf.ShapeError, match="weight 'weight_hh_l0' holds 1 NaN or infinite entry"):
        gf.from_torch(module)


def test_from_torch_refuses_float32_overflow(torch):
    module = torch.nn.RNN(3, 4).double()
    with torch.no_grad():
        module.bias_ih_l0[0] = 1e39
    with pytest.raises(gf.ShapeError, match="parameter 'b' holds numbers beyond the largest float32"):
        gf.from_torch(module, dtype="float32")


def test_from_torch_refuses_biases_whose_sum_overflows(torch):
    module = torch.nn.GRU(3, 4).double()
    with torch.no_grad():
        module.bias_ih_l0[0] = module.bias_hh_l0[0] = 1e308
    with pytest.raises(gf.ShapeError, match=r"bias_ih_l0 \+ bias_hh_l0 overflows .*'b_r'"):
        gf.from_torch(module)


def test_from_torch_refuses_a_module_on_the_meta_device(torch):
    module = torch.nn.LSTM(3, 4, device="meta")
    with pytest.raises(UnsupportedModuleError, match=r"LSTM.weight_ih_l0 is on the 'meta' device"):
        gf.from_torch(module)


def test_sequence_from_torch_refuses_a_packed_sequence(torch):
    module = torch.nn.LSTM(3, 4, batch_first=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(2, 5, 3), [5, 3], batch_first=True)
    with pytest.raises(gf.ShapeError, match=r"PackedSequence.*pad_packed_sequence"):
        gf.numeric.sequence_from_torch(module, packed)
    with pytest.raises(gf.ShapeError, match="PackedSequence"):
        gf.numeric.upstream_from_torch(module, packed)


def test_sequence_from_torch_refuses_a_meta_tensor(torch):
    with pytest.raises(gf.ShapeError, match="'meta' device"):
        gf.numeric.sequence_from_torch(torch.nn.RNN(3, 4), torch.zeros(5, 2, 3, device="meta"))


def test_sequence_from_torch_checks_the_feature_size(torch):
    module = torch.nn.LSTM(3, 4, bidirectional=True)
    with pytest.raises(gf.ShapeError, match=r"feature size 7 .*input_size=3.*has size 8"):
        gf.numeric.sequence_from_torch(module, torch.zeros(5, 2, 7))
    with pytest.raises(gf.ShapeError, match=r"feature size 7 .*input_size=3"):
        gf.numeric.sequence_from_torch(module, torch.zeros(5, 7))  # unbatched
    assert gf.numeric.sequence_from_torch(module, torch.zeros(5, 2, 3)).shape == (5, 2, 3)
    assert gf.numeric.sequence_from_torch(module, torch.zeros(5, 2, 8)).shape == (5, 2, 8)  # d output


def test_upstream_from_torch_checks_the_output_size(torch):
    module = torch.nn.GRU(3, 4)
    with pytest.raises(gf.ShapeError, match=r"output_grad has feature size 3 .*size 4"):
        gf.numeric.upstream_from_torch(module, torch.zeros(5, 2, 3))


def test_gradients_to_torch_checks_shapes_and_names(torch):
    module = torch.nn.LSTM(3, 4)
    _, params = gf.from_torch(module)
    grads = {name: np.zeros(value.shape) for name, value in params.items()}
    assert gf.numeric.gradients_to_torch(module, grads)["weight_hh_l0"].shape == (16, 4)
    with pytest.raises(gf.ShapeError, match=r"'W_f' has shape \(3, 3\), expected \(4, 4\)"):
        gf.numeric.gradients_to_torch(module, {**grads, "W_f": np.zeros((3, 3))})
    with pytest.raises(gf.ShapeError, match=r"gradients for 'zzz', 'W_y', which the cell"):
        gf.numeric.gradients_to_torch(module, {**grads, "zzz": 1.0, "W_y": np.zeros(2)})


def test_output_to_torch_checks_the_trajectory_cell(torch):
    lstm = torch.nn.LSTM(2, 3).double()
    elman = gf.cells.elman(n=3, m=2)
    params = init_params(elman, seed=0)
    trajectory = gf.simulate(elman, params, np.zeros((5, 2, 2)))
    with pytest.raises(gf.ShapeError, match=r"trajectory is of cell 'elman'.*this LSTM is cell 'lstm'"):
        gf.numeric.output_to_torch(lstm, trajectory)
    wider = torch.nn.RNN(2, 4).double()
    with pytest.raises(gf.ShapeError, match=r"'W_h': \(3, 3\).*'W_h': \(4, 4\)"):
        gf.numeric.output_to_torch(wider, trajectory)
    with pytest.raises(gf.ShapeError, match=r"needs the Trajectory that gf\.simulate returns, got dict"):
        gf.numeric.output_to_torch(lstm, {"h": np.zeros((6, 2, 3))})
    rnn = torch.nn.RNN(2, 3).double()
    assert gf.numeric.output_to_torch(rnn, trajectory).shape == (5, 2, 3)
