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
   (forward + backward) against autograd through torch.nn.LSTM.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
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


def chain_benchmark(n: int, T: int, backend: str, repeats: int) -> None:
    xp = namespace(backend)
    rng = np.random.default_rng(1)
    W_h = rng.normal(size=(n, n)) / np.sqrt(n)
    params = {"W_h": xp.asarray(W_h), "W_x": xp.asarray(rng.normal(size=(n, 1))), "b": xp.zeros(n)}
    x = xp.asarray(rng.normal(size=(T, 1, 1)))
    cell = gf.cells.elman()
    result = gf.jacobian_chain(cell, params, x)  # warm up (compiles the kernels)
    ours = best_of(repeats, lambda: gf.jacobian_chain(cell, params, x))
    fro_only = best_of(repeats, lambda: gf.jacobian_chain(cell, params, x, spectral=None))
    peak = matmul_peak(xp, n)
    flops = (T - 1) * 2 * n**3
    at_peak = flops / (peak * 1e9)
    print(f"\n[1] all-lag norms of dh(T)/dh(t): tanh Elman, n={n}, T={T}, float64, B=1, backend={backend}")
    print(f"    machine matmul peak        {peak:8.1f} GFLOP/s  -> chain alone at peak {at_peak:.3f} s")
    print(f"    gradflow (fro + spectral)  {ours:8.3f} s   = {ours / at_peak:.2f}x the chain at peak")
    print(f"    gradflow (fro only)        {fro_only:8.3f} s   = {fro_only / at_peak:.2f}x the chain at peak")
    print(
        f"    power iterations per lag   mean {np.mean(result.power_iterations):.2f}, max {max(result.power_iterations)}"
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
        jax_chain(W_h, to_numpy(params["W_x"]), to_numpy(x), repeats, ours)


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


def lstm_benchmark(n: int, T: int, B: int, repeats: int) -> None:
    import torch

    torch.manual_seed(0)
    m = n
    module = torch.nn.LSTM(m, n).double()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(T, B, m))
    upstream = rng.normal(size=(T, B, n))
    W, U = module.weight_hh_l0.detach().numpy(), module.weight_ih_l0.detach().numpy()
    bias = (module.bias_ih_l0 + module.bias_hh_l0).detach().numpy()
    params = {}
    for k, gate in enumerate("ifco"):
        rows = slice(k * n, (k + 1) * n)
        params[f"W_{gate}"], params[f"U_{gate}"], params[f"b_{gate}"] = W[rows], U[rows], bias[rows]
    cell = gf.cells.lstm()
    gf.bptt(cell, params, x, {"h": upstream})
    ours = best_of(repeats, lambda: gf.bptt(cell, params, x, {"h": upstream}))
    xt, rt = torch.tensor(x), torch.tensor(upstream)

    def autograd() -> None:
        module.zero_grad()
        out, _ = module(xt)
        (out * rt).sum().backward()

    autograd()
    theirs = best_of(repeats, autograd)
    ours_grad = gf.bptt(cell, params, x, {"h": upstream})["W_f"]
    reference = module.weight_hh_l0.grad[n : 2 * n].numpy()
    error = np.max(np.abs(ours_grad - reference)) / np.max(np.abs(reference))
    print(f"\n[2] BPTT of an LSTM, n={n}, T={T}, B={B}, float64 (forward + backward)")
    print(f"    gradflow bptt              {ours:8.3f} s")
    print(f"    torch autograd nn.LSTM     {theirs:8.3f} s   ratio torch/gradflow = {theirs / ours:.2f}x")
    print(f"    agreement (W_f gradient): max rel. difference {error:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--backend", default="numpy", help="numpy (default) or cupy")
    parser.add_argument("--n", type=int, default=None, help="state size of the chain benchmark")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.n or (64 if args.quick else 256)
    T = 200 if args.quick else 1000
    chain_benchmark(n, T, args.backend, args.repeats)
    if args.backend == "numpy":
        if args.quick:
            lstm_benchmark(32, 50, 16, args.repeats)
        else:
            lstm_benchmark(128, 200, 64, args.repeats)


if __name__ == "__main__":
    main()
