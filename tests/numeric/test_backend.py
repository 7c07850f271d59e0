"""Backend resolution: names, namespaces and arrays; a missing CuPy; dtypes; the CuPy path where a GPU is."""

from __future__ import annotations

import importlib.util
import sys

import array_api_strict
import numpy as np
import pytest

import gradflow as gf
from gradflow.errors import BackendUnavailableError, GradflowError
from gradflow.numeric.backend import dtype_of, namespace, special_function, to_numpy


@pytest.mark.parametrize("backend", [None, "numpy", np, np.zeros(2)])
def test_numpy_is_the_default_and_can_be_named_in_several_ways(backend) -> None:
    assert namespace(backend).__name__ == "array_api_compat.numpy"


@pytest.mark.parametrize("backend", ["array_api_strict", array_api_strict, array_api_strict.asarray([1.0])])
def test_array_api_strict_by_name_module_or_array(backend) -> None:
    assert "array_api_strict" in namespace(backend).__name__


def test_unknown_backends_are_refused() -> None:
    with pytest.raises(GradflowError, match="unknown backend 'jax'"):
        namespace("jax")
    with pytest.raises(GradflowError, match="backend must be"):
        namespace(3.5)


def test_a_missing_cupy_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(BackendUnavailableError, match=r"gradflow\[gpu\]") as raised:
        namespace("cupy")
    assert isinstance(raised.value, ImportError)


def test_dtypes() -> None:
    xp = namespace()
    assert dtype_of(xp) == xp.float64 and dtype_of(xp, "float32") == xp.float32
    with pytest.raises(GradflowError, match="float32"):
        dtype_of(xp, "int8")
    with pytest.raises(GradflowError, match="float32 or float64"):
        dtype_of(xp, xp.int64)


def test_erf_on_every_backend() -> None:
    import scipy.special

    values = np.linspace(-3, 3, 7)
    strict = namespace("array_api_strict")
    through = special_function(strict, "erf")(strict.asarray(values))
    np.testing.assert_allclose(to_numpy(through), scipy.special.erf(values), rtol=0, atol=0)
    assert special_function(namespace(), "erf") is scipy.special.erf


def test_gelu_cell_runs_on_array_api_strict() -> None:
    cell = gf.cells.elman("gelu")
    params = gf.init_params(cell, sizes={"n": 3, "m": 2}, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 2, 2))
    ours = gf.simulate(cell, params, x)["h"]
    strict = gf.simulate(cell, params, x, backend="array_api_strict")["h"]
    np.testing.assert_allclose(to_numpy(strict), ours, rtol=1e-14)


def _gpu() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        namespace("cupy")
    except BackendUnavailableError:
        return False
    return True


@pytest.mark.skipif(not _gpu(), reason="CuPy with a GPU is not available on this machine")
@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_cupy_equals_numpy(name: str) -> None:  # pragma: no cover - runs where a GPU is
    cell = getattr(gf.cells, name)()
    params = gf.init_params(cell, sizes={"n": 8, "m": 3}, seed=1)
    x = np.random.default_rng(1).normal(size=(6, 2, 3))
    upstream = {"h": np.random.default_rng(2).normal(size=(6, 2, 8))}
    cpu = gf.bptt(cell, params, x, upstream)
    gpu = gf.bptt(cell, params, x, upstream, backend="cupy")
    for key in params:
        np.testing.assert_allclose(to_numpy(gpu[key]), cpu[key], rtol=1e-11, atol=1e-13)
    chain_cpu = gf.jacobian_chain(cell, params, x)
    chain_gpu = gf.jacobian_chain(cell, params, x, backend="cupy")
    np.testing.assert_allclose(to_numpy(chain_gpu.log_spectral), to_numpy(chain_cpu.log_spectral), rtol=1e-10)


@pytest.mark.parametrize("where", ["param", "input", "initial", "text"])
def test_non_finite_or_non_numeric_arrays_are_refused(where: str) -> None:
    cell = gf.cells.elman()
    params = gf.init_params(cell, sizes={"n": 2, "m": 1}, seed=0)
    x, initial = np.ones((3, 1, 1)), {"h": np.zeros((1, 2))}
    if where == "param":
        params["W_h"] = np.full((2, 2), np.nan)
    elif where == "input":
        x[1, 0, 0] = np.inf
    elif where == "initial":
        initial["h"][0, 1] = np.nan
    else:
        params["b"] = ["a", "b"]
    with pytest.raises(GradflowError, match=r"NaN or infinite|not an array of numbers|holds text values"):
        gf.simulate(cell, params, x, initial)
