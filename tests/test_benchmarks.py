"""The benchmarks' own reference code computes what it claims (so their ratios compare like with like)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import gradflow as gf

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hand_fused_numpy_lstm_is_an_lstm():
    bench = load("bench_numeric")
    n, m, T, B = 3, 2, 5, 4
    rng = np.random.default_rng(0)
    W, U, bias = rng.normal(size=(4 * n, n)), rng.normal(size=(4 * n, m)), rng.normal(size=4 * n)
    x, upstream = rng.normal(size=(T, B, m)), rng.normal(size=(T, B, n))
    params = {}
    for k, gate in enumerate("ifco"):  # PyTorch's order: input, forget, cell, output
        rows = slice(k * n, (k + 1) * n)
        params[f"W_{gate}"], params[f"U_{gate}"], params[f"b_{gate}"] = W[rows], U[rows], bias[rows]
    grads = gf.bptt(gf.cells.lstm(), params, x, {"h": upstream})
    expected = np.concatenate([grads[f"W_{gate}"] for gate in "ifco"], axis=0)
    np.testing.assert_allclose(
        bench.numpy_lstm_bptt(W, U, bias, x, upstream), expected, rtol=1e-12, atol=1e-14
    )


def test_the_lstm_contenders_compute_the_same_gradient():
    bench = load("bench_numeric")
    gradients = {}
    for name in ("gradflow", "torch", "numpy"):
        run, gradient = bench.lstm_contender(name, n=4, T=6, B=3)
        run()
        gradients[name] = gradient()
    assert gradients["torch"].shape == (16, 4)
    for name in ("gradflow", "numpy"):
        np.testing.assert_allclose(gradients[name], gradients["torch"], rtol=1e-11, atol=1e-14)


def test_the_sweep_benchmark_runs_every_contender_and_checks_their_records(capsys, monkeypatch):
    """A smoke run on a tiny grid (times are printed, never asserted): the process pool with one and
    with its own BLAS threads, and Dask's LocalCluster, on 1 and 2 workers."""
    import sys

    pytest.importorskip("distributed", reason="the dask extra is not installed")
    spec = importlib.util.spec_from_file_location("bench_sweep", BENCHMARKS / "bench_sweep.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_sweep", bench)  # its probe is sent to worker processes
    spec.loader.exec_module(bench)
    times = bench.main(["--quick", "--rounds", "1"])
    out = capsys.readouterr().out
    assert set(times) == {
        "process pool, BLAS 1 thread/worker",
        "process pool, BLAS's own threads",
        "Dask LocalCluster, 1 thread/worker",
    }
    assert all(len(runs[1]) == len(runs[2]) == 1 and min(runs[1] + runs[2]) > 0 for runs in times.values())
    assert "every run on one BLAS thread returned the same records, bit for bit" in out and "AVX-512: " in out
    assert "the machine's own 2 over 1 for two processes that share nothing (pure Python): " in out
    if bench.openblas_threads():  # the workers' threads, read back: 1 each unless the pool keeps its own
        assert "process pool, BLAS 1 thread/worker, 2 worker(s): [1]" in out
        assert "Dask LocalCluster, 1 thread/worker, 2 worker(s): [1]" in out
