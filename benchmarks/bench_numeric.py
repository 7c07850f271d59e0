"""Numeric backend against its peers, side by side in one run, with ratios.

    python benchmarks/bench_numeric.py            # the issue's sizes
    python benchmarks/bench_numeric.py --quick    # small sizes, a smoke run
    python benchmarks/bench_numeric.py --backend cupy --n 2048   # on a GPU

1. All-lag norms of dh(T)/dh(t), tanh Elman, float64, B = 1: gradflow's
   streamed chain (log Frobenius + log spectral by subspace iteration) against
   PyTorch (torch.func.jacrev of the step, vmapped over time, products from the
   end, torch.linalg.matrix_norm 'fro' and ord=2) and, where installed, JAX
   (jax.jit(jax.jacrev) over lax.scan + batched SVD norms). The peers hold
   T n^2 numbers; gradflow holds O(n^2). The chain's own cost is (T-1) 2 n^3
   flops; the machine's matmul peak is measured in the same run.
2. BPTT of an LSTM, n = 128, T = 200, B = 64, float64: gradflow's bptt
   (forward + backward) against autograd through torch.nn.LSTM, jax.jit(jax.grad)
   over lax.scan where installed, and an LSTM written by hand in NumPy (one
   fused gate product per step: the floor of any NumPy program on this
   machine), with the cost of NumPy's and torch's float64 tanh and exp beside.
   Each contender runs in a fresh process of its own, several rounds in turn:
   thread pools that keep spinning after their work (OpenMP, OpenBLAS, JAX)
   would otherwise slow whatever runs next in the same process. A second
   table repeats the race with every library limited to one thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import gradflow as gf
from gradflow.numeric.backend import namespace, to_numpy


def best_of(repeats: int, run: Callable[[], Any]) -> float:
    """The fastest of ``repeats`` wall-clock times of ``run()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(xp: Any, n: int) -> float:
    """Measured float64 GFLOP/s of an n x n matmul on this backend."""
    a = xp.asarray(np.random.default_rng(0).normal(size=(n, n)))
    xp.matmul(a, a)
    seconds = best_of(5, lambda: [to_numpy(xp.matmul(a, a)[0, 0]) for _ in range(10)]) / 10
    return 2 * n**3 / seconds / 1e9


def chain_benchmark(n: int, T: int, backend: str, repeats: int) -> Callable[[], None] | None:
    xp = namespace(backend)
    rng = np.random.default_rng(1)
    W_h = rng.normal(size=(n, n)) / np.sqrt(n)
    params = {"W_h": xp.asarray(W_h), "W_x": xp.asarray(rng.normal(size=(n, 1))), "b": xp.zeros(n)}
    x = xp.asarray(rng.normal(size=(T, 1, 1)))
    cell = gf.cells.elman()
    result = gf.jacobian_chain(cell, params, x)  # warm up (compiles the kernels)
    flops = (T - 1) * 2 * n**3
    # the peak is measured in each round right before the runs it is compared with: on a shared
    # machine the speed drifts between seconds, and a peak from another moment skews the ratio
    rounds: list[tuple[float, float, float]] = []
    # each side takes its best of a few runs: the peak is a best of 5, and a single run of the chain
    # against it would count every stall of this shared machine against gradflow alone
    for _ in range(max(repeats, 5)):
        peak = matmul_peak(xp, n)
        ours = best_of(repeats, lambda: gf.jacobian_chain(cell, params, x))
        fro_only = best_of(repeats, lambda: gf.jacobian_chain(cell, params, x, spectral=None))
        rounds.append((peak, ours, fro_only))
    peaks, times, fros = (np.array(column) for column in zip(*rounds, strict=True))
    at_peaks = flops / (peaks * 1e9)
    ours, fro_only, peak = float(np.min(times)), float(np.min(fros)), float(np.median(peaks))
    ratio, fro_ratio = times / at_peaks, fros / at_peaks
    print(f"\n[1] all-lag norms of dh(T)/dh(t): tanh Elman, n={n}, T={T}, float64, B=1, backend={backend}")
    print(
        f"    machine matmul peak        {peak:8.1f} GFLOP/s  ({peaks.min():.1f}-{peaks.max():.1f} over "
        f"{len(rounds)} rounds) -> chain alone at peak {flops / (peak * 1e9):.3f} s"
    )
    print(
        f"    gradflow (fro + spectral)  {ours:8.3f} s   = {np.median(ratio):.2f}x the chain at peak "
        f"(median of {len(rounds)} rounds, each a best of {repeats} against its own peak; "
        f"{ratio.min():.2f}-{ratio.max():.2f})"
    )
    print(
        f"    gradflow (fro only)        {fro_only:8.3f} s   = {np.median(fro_ratio):.2f}x the chain at peak "
        f"({fro_ratio.min():.2f}-{fro_ratio.max():.2f})"
    )
    print(
        f"    block products per lag     mean {np.mean(result.power_iterations):.2f}, max {max(result.power_iterations)}"
    )
    print(
        f"    memory held: gradflow O(n^2) = {8 * n * n * 4 / 2**20:.1f} MiB; peers T n^2 = {8 * T * n * n / 2**20:.0f} MiB"
    )
    ours_spectral = to_numpy(result.log_spectral[:, 0])
    if backend == "numpy":
        torch_seconds, torch_spectral = torch_chain(W_h, to_numpy(params["W_x"]), to_numpy(x), repeats)
        agree = np.max(np.abs(ours_spectral - torch_spectral) / np.maximum(np.abs(torch_spectral), 1.0))
        print(
            f"    torch jacrev + matrix_norm {torch_seconds:8.3f} s   ratio torch/gradflow = {torch_seconds / ours:.1f}x"
        )
        print(f"    agreement of log spectral norms with torch: max rel. difference {agree:.1e}")
        return lambda: jax_chain(W_h, to_numpy(params["W_x"]), to_numpy(x), repeats, ours)
    return None


def torch_chain(W_h: Any, W_x: Any, x: Any, repeats: int) -> tuple[float, Any]:
    import torch

    W, U = torch.tensor(W_h), torch.tensor(W_x)
    xs = torch.tensor(x[:, 0, :])

    def step(h: Any, x_t: Any) -> Any:
        return torch.tanh(W @ h + U @ x_t)

    def run() -> Any:
        with torch.no_grad():
            hs = [torch.zeros(W.shape[0], dtype=torch.float64)]
            for x_t in xs.unbind(0):
                hs.append(step(hs[-1], x_t))
            previous = torch.stack(hs[:-1])
        jacobians = torch.vmap(torch.func.jacrev(step), in_dims=(0, 0))(previous, xs)
        products = [torch.eye(W.shape[0], dtype=torch.float64)]
        for J in reversed(jacobians.unbind(0)):
            products.append(products[-1] @ J)
        stacked = torch.stack(products)
        torch.linalg.matrix_norm(stacked, "fro")
        return torch.log(torch.linalg.matrix_norm(stacked, 2))

    spectral = run()
    return best_of(repeats, run), spectral.numpy()


def jax_chain(W_h: Any, W_x: Any, x: Any, repeats: int, ours: float) -> None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("    jax                        not installed here (pip install jax to compare)")
        return
    jax.config.update("jax_enable_x64", True)
    W, U, xs = jnp.asarray(W_h), jnp.asarray(W_x), jnp.asarray(x[:, 0, :])

    def step(h: Any, x_t: Any) -> Any:
        return jnp.tanh(W @ h + U @ x_t)

    @jax.jit
    def run(xs: Any) -> Any:
        def scan(h: Any, x_t: Any) -> Any:
            new = step(h, x_t)
            return new, h

        _, previous = jax.lax.scan(scan, jnp.zeros(W.shape[0]), xs)
        jacobians = jax.vmap(jax.jacrev(step))(previous, xs)

        def back(D: Any, J: Any) -> Any:
            D = D @ J
            return D, D

        _, products = jax.lax.scan(back, jnp.eye(W.shape[0]), jacobians[::-1])
        singular = jnp.linalg.svd(products, compute_uv=False)
        return jnp.log(singular[:, 0]), jnp.log(jnp.sqrt((products**2).sum(axis=(1, 2))))

    run(xs)[0].block_until_ready()
    seconds = best_of(repeats, lambda: run(xs)[0].block_until_ready())
    print(f"    jax jit(jacrev) + SVD      {seconds:8.3f} s   ratio jax/gradflow = {seconds / ours:.1f}x")


#: The LSTM's contenders, each timed in a process of its own (see :func:`lstm_benchmark`).
CONTENDERS = ("gradflow", "torch", "numpy", "jax")


def lstm_problem(n: int, T: int, B: int) -> dict[str, Any]:
    """The weights (PyTorch's layout and initialisation, gates i, f, g, o), inputs and upstream gradients."""
    rng = np.random.default_rng(2)
    bound = 1 / np.sqrt(n)
    return {
        "W": rng.uniform(-bound, bound, size=(4 * n, n)),
        "U": rng.uniform(-bound, bound, size=(4 * n, n)),
        "b_ih": rng.uniform(-bound, bound, size=4 * n),
        "b_hh": rng.uniform(-bound, bound, size=4 * n),
        "x": rng.normal(size=(T, B, n)),
        "upstream": rng.normal(size=(T, B, n)),
    }


def lstm_contender(name: str, n: int, T: int, B: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(run, recurrent_gradient)`` of one contender: ``run()`` is the timed forward + backward pass,
    ``recurrent_gradient()`` the (4n, n) gradient of the recurrent weights that ``run`` computed."""
    data = lstm_problem(n, T, B)
    W, U, x, upstream = data["W"], data["U"], data["x"], data["upstream"]
    bias = data["b_ih"] + data["b_hh"]
    if name == "gradflow":
        params = {}
        for k, gate in enumerate("ifco"):
            rows = slice(k * n, (k + 1) * n)
            params[f"W_{gate}"], params[f"U_{gate}"], params[f"b_{gate}"] = W[rows], U[rows], bias[rows]
        cell, found = gf.cells.lstm(), {}

        def run_gradflow() -> None:
            found["grads"] = gf.bptt(cell, params, x, {"h": upstream})

        return run_gradflow, lambda: np.concatenate([found["grads"][f"W_{g}"] for g in "ifco"], axis=0)
    if name == "torch":
        import torch

        module = torch.nn.LSTM(n, n).double()
        with torch.no_grad():
            for weight, value in (("weight_hh_l0", W), ("weight_ih_l0", U), ("bias_ih_l0", data["b_ih"])):
                getattr(module, weight).copy_(torch.tensor(value))
            module.bias_hh_l0.copy_(torch.tensor(data["b_hh"]))
        xt, rt = torch.tensor(x), torch.tensor(upstream)

        def run_torch() -> None:
            module.zero_grad()
            out, _ = module(xt)
            (out * rt).sum().backward()

        return run_torch, lambda: module.weight_hh_l0.grad.numpy()
    if name == "numpy":
        found = {}

        def run_numpy() -> None:
            found["W"] = numpy_lstm_bptt(W, U, bias, x, upstream)

        return run_numpy, lambda: found["W"]
    if name == "jax":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        grad = jax.jit(jax.grad(jax_lstm_loss, argnums=(0, 1, 2)))
        args = [jnp.asarray(a) for a in (W, U, bias, x, upstream)]
        found = {}

        def run_jax() -> None:
            found["grads"] = jax.block_until_ready(grad(*args))

        return run_jax, lambda: np.asarray(found["grads"][0])
    raise ValueError(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}")


def run_contender(name: str, n: int, T: int, B: int, repeats: int, save: str) -> None:
    """Time one contender in this process (after one warm-up run); print JSON, save its gradient."""
    run, gradient = lstm_contender(name, n, T, B)
    run()
    seconds = best_of(repeats, run)
    np.save(save, gradient())
    print(json.dumps({"seconds": seconds}))


#: The environment of a contender limited to one thread: OpenMP (torch), OpenBLAS (NumPy), MKL, XLA (JAX).
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def lstm_benchmark(n: int, T: int, B: int, repeats: int, rounds: int, one_thread: bool = False) -> None:
    """Time every contender in a fresh process of its own, ``rounds`` times, in turn.

    One process per contender and round: the thread pools of PyTorch (OpenMP), OpenBLAS and JAX keep
    spinning for a while after their work, and on a small machine they slow whatever runs next in the
    same process. Each round reports its best of ``repeats``; the table gives the median over rounds
    and the range. ``one_thread``: every contender's libraries limited to one thread (:data:`ONE_THREAD`),
    which separates the cost of the work from how well each library spreads small products over cores.
    """
    import torch

    environment = {**os.environ, **ONE_THREAD} if one_thread else None
    available = [name for name in CONTENDERS if name != "jax" or importlib.util.find_spec("jax")]
    seconds: dict[str, list[float]] = {name: [] for name in available}
    gradients: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds):
            order = available[round_ % len(available) :] + available[: round_ % len(available)]
            for name in order:
                save = str(Path(folder) / f"{name}.npy")
                command = [sys.executable, __file__, "--contender", name, "--lstm-sizes", str(n), str(T)]
                command += [str(B), "--repeats", str(repeats), "--save", save]
                done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
                seconds[name].append(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
                gradients[name] = np.load(save)
    reference = gradients["torch"]
    scale = np.max(np.abs(reference))
    ours = float(np.median(seconds["gradflow"]))
    threads = "one thread each" if one_thread else "default threads"
    print(f"\n[2] BPTT of an LSTM, n={n}, T={T}, B={B}, float64 (forward + backward), {threads}")
    print(f"    each contender in its own process; median of {rounds} rounds (range), best of {repeats} each")
    labels = {
        "gradflow": "gradflow bptt",
        "torch": "torch autograd nn.LSTM",
        "numpy": "hand-fused NumPy LSTM",
        "jax": "jax jit(grad) over scan",
    }
    for name in available:
        times = seconds[name]
        median = float(np.median(times))
        ratio = "" if name == "gradflow" else f"   {name}/gradflow = {median / ours:.2f}x"
        agree = np.max(np.abs(gradients[name] - reference)) / scale
        print(
            f"    {labels[name]:26s} {median:7.3f} s ({min(times):.3f}-{max(times):.3f}){ratio}"
            f"   agreement with torch {agree:.1e}"
        )
    print("    (the hand-fused NumPy LSTM is the floor of a NumPy program: one gate product per step)")
    if one_thread:
        return
    rng = np.random.default_rng(0)
    u = rng.normal(size=(B, n))
    ut = torch.tensor(u)
    for name, ours_f, theirs_f in (
        ("tanh", lambda: np.tanh(u), lambda: torch.tanh(ut)),
        ("exp", lambda: np.exp(u), lambda: torch.exp(ut)),
    ):
        a, b = (
            best_of(repeats, lambda f=ours_f: [f() for _ in range(100)]),
            best_of(repeats, lambda f=theirs_f: [f() for _ in range(100)]),
        )
        print(f"    float64 {name} of ({B}, {n}): NumPy {a * 1e4:6.1f} us, torch {b * 1e4:6.1f} us")


def numpy_lstm_bptt(W: Any, U: Any, bias: Any, x: Any, upstream: Any) -> Any:
    """A reference written by hand in NumPy (gates stacked as PyTorch does: i, f, g, o), for the timing floor.

    One gate product per step, preallocated buffers, one weight-gradient product: what a NumPy
    program pays at least. Returns the gradient of the recurrent weights (4n, n).
    """
    T, B, m = x.shape
    n = W.shape[1]

    def sigmoid(u: Any) -> Any:
        e = np.exp(-np.abs(u))
        r = 1.0 / (1.0 + e)
        return np.where(u >= 0, r, e * r)

    pre = (x.reshape(T * B, m) @ U.T + bias).reshape(T, B, 4 * n)
    h, c = np.zeros((T + 1, B, n)), np.zeros((T + 1, B, n))
    gates, squashed = np.empty((T, B, 4 * n)), np.empty((T, B, n))
    for t in range(T):
        a = pre[t] + h[t] @ W.T
        gates[t, :, : 2 * n] = sigmoid(a[:, : 2 * n])
        gates[t, :, 2 * n : 3 * n] = np.tanh(a[:, 2 * n : 3 * n])
        gates[t, :, 3 * n :] = sigmoid(a[:, 3 * n :])
        i, f, g, o = (gates[t, :, k * n : (k + 1) * n] for k in range(4))
        c[t + 1] = f * c[t] + i * g
        squashed[t] = np.tanh(c[t + 1])
        h[t + 1] = o * squashed[t]
    d_pre = np.empty((T, B, 4 * n))
    dh, dc = np.zeros((B, n)), np.zeros((B, n))
    for t in range(T - 1, -1, -1):
        dh = dh + upstream[t]
        i, f, g, o = (gates[t, :, k * n : (k + 1) * n] for k in range(4))
        dc = dc + dh * o * (1 - squashed[t] ** 2)
        d_pre[t, :, :n] = dc * g * i * (1 - i)
        d_pre[t, :, n : 2 * n] = dc * c[t] * f * (1 - f)
        d_pre[t, :, 2 * n : 3 * n] = dc * i * (1 - g * g)
        d_pre[t, :, 3 * n :] = dh * squashed[t] * o * (1 - o)
        dc = dc * f
        dh = d_pre[t] @ W
    return d_pre.reshape(T * B, 4 * n).T @ h[:-1].reshape(T * B, n)


def jax_lstm_loss(W_hh: Any, W_ih: Any, b: Any, xs: Any, gs: Any) -> Any:
    """The same loss through an LSTM written with jax.lax.scan (for jax.jit(jax.grad))."""
    import jax
    import jax.numpy as jnp

    n = W_hh.shape[1]

    def step(carry: Any, inputs: Any) -> Any:
        h, c = carry
        x_t, g_t = inputs
        a = x_t @ W_ih.T + h @ W_hh.T + b
        i, f = jax.nn.sigmoid(a[:, :n]), jax.nn.sigmoid(a[:, n : 2 * n])
        g, o = jnp.tanh(a[:, 2 * n : 3 * n]), jax.nn.sigmoid(a[:, 3 * n :])
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), jnp.sum(h * g_t)

    zeros = jnp.zeros((xs.shape[1], n))
    _, terms = jax.lax.scan(step, (zeros, zeros), (xs, gs))
    return jnp.sum(terms)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--backend", default="numpy", help="numpy (default) or cupy")
    parser.add_argument("--n", type=int, default=None, help="state size of the chain benchmark")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per LSTM contender")
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)  # one timed process
    parser.add_argument("--lstm-sizes", type=int, nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        run_contender(args.contender, *args.lstm_sizes, args.repeats, args.save)
        return
    n = args.n or (64 if args.quick else 256)
    T = 200 if args.quick else 1000
    # JAX last: once imported, its thread pool slows the NumPy runs that follow on a small machine
    later = chain_benchmark(n, T, args.backend, args.repeats)
    if args.backend == "numpy":
        sizes = (32, 50, 16) if args.quick else (128, 200, 64)
        for one_thread in (False, True):
            lstm_benchmark(*sizes, args.repeats, 2 if args.quick else args.rounds, one_thread)
    if later is not None:
        print("\n[3] JAX, run last")
        later()


if __name__ == "__main__":
    main()
