"""Sweeps that scale: the speed-up of 2 workers over 1, on gf.sweep's process pool and on Dask.

    python benchmarks/bench_sweep.py              # issue 17's regime map (96 points)
    python benchmarks/bench_sweep.py --quick      # a small grid, a smoke run
    python benchmarks/bench_sweep.py --rounds 5 --contenders pool dask   # without the reference

The work is what `gradflow sweep lstm --n 16 32 64 --gain 0.25 0.5 0.75 1 1.5 2 3 4 --repeats 4
-T 100` runs: 96 points of gradflow.cli.sweep.regime_point (an LSTM initialised at a gain,
simulated, its all-lag chain norms fitted to a rate beside the bound's). Each contender runs it on
1 and on 2 workers, in fresh worker processes every time, so that every worker compiles the cell's
kernels itself, once per state size, as in real use:

1. gf.sweep's default process pool, its workers running BLAS on one thread each (the default);
2. for reference, the same pool with each library's own threads (blas_threads=None: one per core
   in every worker), the case issue 17 measured;
3. Dask: distributed.LocalCluster(n_workers=1 or 2, threads_per_worker=1), through
   client.get_executor(). Starting the cluster (and importing gradflow in its workers) is not
   timed; it is reported apart.

Every run on one BLAS thread must return the same records, bit for bit, whatever the executor or
the number of workers, and so must every run with BLAS's own threads (checked; the two groups may
differ in the last bits, since the number of threads changes them, and the script says whether they
do). The BLAS threads of each contender's workers are read back from the libraries themselves
(gradflow.sweep.openblas_threads).

In each round every contender runs on 1 and on 2 workers back to back (which goes first
alternates), so that the two runs of a pair see much the same load from whatever else the machine
runs; the load average (1 minute) before each run is printed beside it. The table gives the
medians over rounds and the ratio of each round's pair. Nothing here asserts a time: the figures
are printed.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import gradflow as gf
from gradflow.cli.sweep import regime_point
from gradflow.sweep import grid_points, openblas_threads

#: Issue 17's regime map, and a small one for --quick (the smoke test).
FULL = {
    "cell": "lstm",
    "n": [16, 32, 64],
    "gain": [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4],
    "repeat": list(range(4)),
    "T": 100,
}
QUICK = {"cell": "elman", "n": [4], "gain": [0.5, 2.0], "repeat": [0], "T": 12}


#: The contender whose workers keep each library's own threads (its records may differ in the last bits).
OWN_THREADS = "process pool, BLAS's own threads"


def cpu_description() -> str:
    """The CPU's model name, the number of CPUs and whether it has AVX-512 (from /proc/cpuinfo)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        return f"{model}, {os.cpu_count()} CPUs (no /proc/cpuinfo: AVX-512 unknown)"
    avx512 = "yes" if "avx512f" in flags else "no"
    return f"{model}, {os.cpu_count()} CPUs, AVX2: {'yes' if 'avx2' in flags else 'no'}, AVX-512: {avx512}"


def load_average() -> str:
    """The machine's load over the last 1, 5 and 15 minutes (other work running beside this)."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def load_now() -> float:
    """The load average over the last minute (NaN where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def workload(grid: dict[str, Any]) -> tuple[Callable[..., Any], dict[str, list[Any]]]:
    """``(fn, grid)`` of the regime map: what ``gradflow sweep CELL`` sends to its workers."""
    point = functools.partial(
        regime_point, cell=grid["cell"], T=grid["T"], B=2, sizes={"m": 4}, scheme="orthogonal"
    )
    return point, {"n": grid["n"], "gain": grid["gain"], "repeat": grid["repeat"]}


def spin(k: int, steps: int) -> int:
    """Pure Python arithmetic, no BLAS, no memory traffic: a unit of independent CPU work."""
    total = 0
    for i in range(steps):
        total += i * i % 7
    return total


def machine_ceiling(steps: int, rounds: int) -> list[float]:
    """What 2 processes gain over 1 on this machine for work that shares nothing: the ratio of the time
    of two units of :func:`spin` one after the other (1 worker) to both at once (2 workers), per round.
    On a machine whose two CPUs slow each other (a VM sharing its host, one memory bus, turbo clocks
    that drop when both cores run) it is below 2, and no sweep's 2-over-1 can beat it."""
    ratios = []
    for _ in range(rounds):
        seconds = {}
        for workers in (1, 2):
            start = time.perf_counter()
            gf.sweep(spin, {"k": [0, 1], "steps": [steps]}, workers=workers, progress=False)
            seconds[workers] = time.perf_counter() - start
        ratios.append(seconds[1] / seconds[2])
    return ratios


def threads_here(k: int) -> dict[str, int]:
    """The BLAS threads of the worker this runs on (a sweep point of the thread probe)."""
    return openblas_threads()


def run_pool(
    fn: Callable[..., Any], grid: dict[str, list[Any]], workers: int, blas_threads: int | None
) -> tuple[float, list[Any], list[dict[str, int]]]:
    """Seconds of the sweep on a fresh default pool, its values, and its workers' BLAS threads."""
    start = time.perf_counter()
    records = gf.sweep(fn, grid, workers=workers, blas_threads=blas_threads, progress=False)
    seconds = time.perf_counter() - start
    probe = gf.sweep(
        threads_here, {"k": list(range(workers))}, workers=workers, blas_threads=blas_threads, progress=False
    )
    return seconds, [r.value for r in records], [r.value for r in probe]


def run_dask(
    fn: Callable[..., Any], grid: dict[str, list[Any]], workers: int
) -> tuple[float, list[Any], list[dict[str, int]], float]:
    """Seconds of the sweep on a fresh LocalCluster, its values, its workers' BLAS threads, and the
    seconds the cluster took to start (with gradflow imported in each worker)."""
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(importlib.import_module, "gradflow.cli.sweep")
        startup = time.perf_counter() - start
        start = time.perf_counter()
        records = gf.sweep(fn, grid, client.get_executor(), progress=False)
        seconds = time.perf_counter() - start
        threads = list(client.run(openblas_threads).values())
    return seconds, [r.value for r in records], threads, startup


def summary(times: Sequence[float]) -> str:
    return f"{statistics.median(times):7.2f} s ({min(times):.2f}-{max(times):.2f})"


def main(argv: Sequence[str] | None = None) -> dict[str, dict[int, list[float]]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small grid (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every contender (default 3)")
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=["pool", "reference", "dask"],
        default=["pool", "reference", "dask"],
        help="which to run (default all): the pool, the pool with BLAS's own threads, Dask",
    )
    args = parser.parse_args(argv)
    fn, grid = workload(QUICK if args.quick else FULL)
    points = len(grid_points(grid))
    contenders: dict[str, Callable[[int], tuple[float, list[Any], list[dict[str, int]]]]] = {}
    if "pool" in args.contenders:
        contenders["process pool, BLAS 1 thread/worker"] = lambda w: run_pool(fn, grid, w, 1)
    if "reference" in args.contenders:
        contenders[OWN_THREADS] = lambda w: run_pool(fn, grid, w, None)
    startups: list[float] = []
    if "dask" in args.contenders:

        def dask(workers: int) -> tuple[float, list[Any], list[dict[str, int]]]:
            seconds, values, threads, startup = run_dask(fn, grid, workers)
            startups.append(startup)
            return seconds, values, threads

        contenders["Dask LocalCluster, 1 thread/worker"] = dask
    print(f"CPU: {cpu_description()}")
    print(f"load average before: {load_average()}")
    ceiling = machine_ceiling(200_000 if args.quick else 10_000_000, args.rounds)
    print(
        "the machine's own 2 over 1 for two processes that share nothing (pure Python): "
        + ", ".join(f"{r:.2f}x" for r in ceiling)
    )
    sizes = " ".join(map(str, grid["n"]))
    print(
        f"work: {points} points of regime_point({fn.keywords['cell']}, n in {sizes}, {len(grid['gain'])} gains, "
        f"{len(grid['repeat'])} repeats, T={fn.keywords['T']}, B=2), {args.rounds} round(s)"
    )
    names = list(contenders)
    times: dict[str, dict[int, list[float]]] = {name: {1: [], 2: []} for name in contenders}
    loads: dict[str, dict[int, list[float]]] = {name: {1: [], 2: []} for name in contenders}
    threads: dict[tuple[str, int], list[dict[str, int]]] = {}
    first: dict[str, list[Any]] = {}  # the records of the first run of each group of BLAS threads
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        order = (1, 2) if round_ % 2 == 0 else (2, 1)  # a pair back to back, alternating which first
        for name, workers in ((name, w) for name in names[shift:] + names[:shift] for w in order):
            loads[name][workers].append(load_now())
            seconds, values, seen = contenders[name](workers)
            times[name][workers].append(seconds)
            threads[(name, workers)] = seen
            group = "own" if name == OWN_THREADS else "one"
            if first.setdefault(group, values) != values:
                raise SystemExit(f"{name} on {workers} worker(s) returned other numbers than a run before it")
    print(f"load average after:  {load_average()}")
    said = []
    if "one" in first:
        said.append("every run on one BLAS thread returned the same records, bit for bit")
    if "own" in first:
        said.append("the runs with BLAS's own threads agree among themselves")
        if "one" in first:
            said[-1] += (
                " and differ from them in the last bits" if first["own"] != first["one"] else " and with them"
            )
    print("; ".join(said))
    print(f"\n{'':36s} {'1 worker':>24s} {'2 workers':>24s}   2 over 1: medians; each round's pair")
    for name in contenders:
        one, two = times[name][1], times[name][2]
        pairs = ", ".join(f"{a / b:.2f}x" for a, b in zip(one, two, strict=True))
        print(
            f"{name:36s} {summary(one):>24s} {summary(two):>24s}   "
            f"{statistics.median(one) / statistics.median(two):.2f}x; {pairs}"
        )
    print("\nevery run, with the load average (1 minute) before it:")
    for name in contenders:
        for k in range(len(times[name][1])):
            pair = [
                f"{w} worker(s) {times[name][w][k]:6.2f} s (load {loads[name][w][k]:.2f})" for w in (1, 2)
            ]
            print(f"    {name}, round {k + 1}: " + ", ".join(pair))
    print("\nBLAS threads read back in the workers (each OpenBLAS loaded there):")
    for (name, workers), seen in threads.items():
        counts = sorted({count for worker in seen for count in worker.values()})
        print(f"    {name}, {workers} worker(s): {counts or 'no OpenBLAS listed on this platform'}")
    if startups:
        print(f"Dask cluster start (not timed above): {summary(startups)}")
    return times


if __name__ == "__main__":
    main()
