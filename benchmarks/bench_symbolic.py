"""Symbolic and graph costs: derive() per built-in cell, independence of T, unroll/path counting at T = 10^4.

Run: python benchmarks/bench_symbolic.py   (prints a table; no assertions -- the test suite has none on time)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gradflow as gf
from gradflow.graph import count_paths, shortest_path_length
from gradflow.symbolic.bptt import adjoint, parameter_gradient

C = gf.cells

CELLS: dict[str, Callable[[], gf.Cell]] = {
    "elman": C.elman,
    "jordan": C.jordan,
    "lstm1997": lambda: C.lstm(forget_gate=False),
    "lstm": C.lstm,
    "lstm_peephole": lambda: C.lstm(peephole=True),
    "gru": C.gru,
    "gru_reset_after": lambda: C.gru(reset_after=True),
    "leaky": C.leaky,
    "skip3": lambda: C.skip(3),
    "ctrnn": C.ctrnn,
    "indrnn": C.indrnn,
    "minimal": C.minimal,
    "stack(elman, gru)": lambda: C.stack([C.elman(), C.gru()]),
    "bidirectional(lstm)": lambda: C.bidirectional(C.lstm()),
}


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    print(
        f"{'cell':22} {'derive (s)':>10} {'steps':>6} {'BPTT T=10 (s)':>14} {'BPTT T=1e4 (s)':>15} {'ratio':>6}"
    )
    for name, make in CELLS.items():
        cell = make()
        derive_time = best_of(lambda cell=cell: gf.derive(cell))
        steps = len(gf.derive(cell))
        param = next(iter(cell.params))
        if cell.backward:
            short = long = float("nan")
        else:
            short = best_of(
                lambda cell=cell, p=param: (parameter_gradient(cell, p, None, 10), adjoint(cell, None, 10))
            )
            long = best_of(
                lambda cell=cell, p=param: (
                    parameter_gradient(cell, p, None, 10_000),
                    adjoint(cell, None, 10_000),
                )
            )
        print(f"{name:22} {derive_time:10.3f} {steps:6d} {short:14.4f} {long:15.4f} {long / short:6.2f}")
    for d in (2, 3, 5):
        start = time.perf_counter()
        ug = gf.unroll(C.skip(d), 10_000)
        unrolled = time.perf_counter() - start
        start = time.perf_counter()
        count = count_paths(ug, ("h", 0), ("h", 10_000))
        counted = time.perf_counter() - start
        shortest = shortest_path_length(ug, ("h", 0), ("h", 10_000))
        print(
            f"skip(delay={d}) T=10^4: unroll {unrolled:.2f} s, count paths {counted:.3f} s "
            f"({len(str(count))}-digit count), shortest path {shortest} edges"
        )


if __name__ == "__main__":
    main()
