r"""Backpropagation through time, full, truncated and randomized (seed 001, claims C8, C9 and C10).

Dive into Deep Learning (§9.7) abstracts a recurrent network as :math:`h_t = f(x_t, h_{t-1}, w_h)`,
:math:`o_t = g(h_t, w_o)`, :math:`L = \frac1T\sum_t l(y_t, o_t)` (C8), and unrolls the recursion
:math:`\partial h_t/\partial w_h = \partial f/\partial w_h + (\partial f/\partial h_{t-1})(\partial
h_{t-1}/\partial w_h)` into

.. math::
    \frac{\partial h_t}{\partial w_h} = \frac{\partial f(x_t,h_{t-1},w_h)}{\partial w_h}
    + \sum_{i=1}^{t-1}\Bigl(\prod_{j=i+1}^{t}\frac{\partial f(x_j,h_{j-1},w_h)}{\partial h_{j-1}}\Bigr)
      \frac{\partial f(x_i,h_{i-1},w_h)}{\partial w_h}   \qquad \text{(C9)}.

It then compares three ways to compute it (C10): in full; **regularly truncated** after
:math:`\tau` steps (biased: the terms reaching further back are dropped); and **randomly
truncated** (Tallec & Ollivier 2017): each step Jacobian is multiplied by :math:`\xi_t` with
:math:`P(\xi_t = 1/\pi) = \pi`, :math:`P(\xi_t = 0) = 1-\pi`, so :math:`E[\xi_t] = 1` and the
estimate is unbiased -- at the price of variance, which is why, d2l argues, regular truncation
works as well in practice.

gradflow derives all of it (``gf.export.d2l_bptt()``) and computes it with the same strategy
objects (``gf.Full()``, ``gf.Truncated(tau)``, ``gf.Randomized(pi, seed)``). This script checks
on an Elman cell that ``Truncated(T-1)`` is the full gradient (symbolically and to rounding),
that the bias of regular truncation falls with :math:`\tau`, and that randomized truncation is
unbiased: the mean of :math:`N` draws approaches the full gradient, its error staying within the
standard error of the mean and shrinking like :math:`1/\sqrt N` -- where the variance is finite:
a term reaching :math:`k` steps back carries the weight :math:`\pi^{-k}` with probability
:math:`\pi^k`, so when the chain decays like :math:`e^{rk}` with :math:`e^{2r} > \pi` the variance
grows with :math:`T`, and rare draws with huge weights dominate (seen at :math:`\pi = 0.5` in the full run).

Run it::

    python examples/d2l_truncation_strategies.py            # n = 32, T = 60, 1024 draws per pi
    python examples/d2l_truncation_strategies.py --quick    # n = 8, T = 20, 256 draws per pi
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from _example import Example

import gradflow as gf
from gradflow.symbolic.nodes import Adjoint

PIS = (0.5, 0.7, 0.9)


def flat(grads) -> np.ndarray:
    """Every parameter's gradient in one vector."""
    return np.concatenate([np.ravel(np.asarray(grads[name])) for name in grads])


def upstream_terms(expr: sp.Basic) -> int:
    """How many direct loss gradients dL+/dh(i) a written-out formula holds (one per kept path)."""
    return sum(1 for node in sp.preorder_traversal(expr) if isinstance(node, Adjoint))


def main() -> None:
    ex = Example(
        "d2l_truncation_strategies",
        "C8, C9, C10 (seed 001, Dive into Deep Learning 9.7)",
        "d2l's simplified model and recursion; BPTT in full, regularly truncated after tau steps (biased, "
        "the bias falling with tau) and randomly truncated (Tallec & Ollivier: unbiased by reweighting).",
    )
    ex.derivation(gf.export.d2l_bptt())

    cell = gf.cells.elman()
    # 1. symbolically: Truncated(T - 1) is the full formula; Truncated(1) drops the long paths
    length = 3
    full = gf.symbolic.parameter_gradient(
        cell, "W_h", gf.Full(), length=length, expand_adjoint=True
    ).rhs.doit()
    longest = gf.symbolic.parameter_gradient(cell, "W_h", gf.Truncated(length - 1), length=length).rhs.doit()
    shortest = gf.symbolic.parameter_gradient(cell, "W_h", gf.Truncated(1), length=length).rhs.doit()
    ex.check(
        longest == full and shortest != full,
        f"C10 symbolically: for T = {length}, gradflow's dL/dW_h under Truncated(T - 1) is the same sympy "
        f"expression as under Full() ({upstream_terms(full)} loss terms); Truncated(1) keeps "
        f"{upstream_terms(shortest)} of them",
    )

    # 2. numerically, on one simulation: L = (1/T) sum_t 1/2 ||h(t) - y(t)||^2
    n, T, B, m = ex.size(32, 8), ex.size(60, 20), 4, 4
    draws = ex.size(1024, 256)
    params = gf.init_params(cell, sizes={"n": n, "m": m}, seed=0, scheme="orthogonal", gain=0.9)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(T, B, m))
    y = 0.5 * rng.normal(size=(T, B, n))
    h = np.asarray(gf.simulate(cell, params, x)["h"])[1:]
    upstream = {"h": (h - y) / T}
    reference = gf.bptt(cell, params, x, upstream)
    g = flat(reference)
    scale = float(np.linalg.norm(g))
    print(
        f"Elman (tanh), n = {n}, m = {m}, T = {T}, B = {B}, orthogonal W_h with gain 0.9; ||dL/dtheta|| = {scale:.4g}"
    )

    def error(vector: np.ndarray) -> float:
        return float(np.linalg.norm(vector - g)) / scale

    taus = sorted({1, 2, 4, 8, T // 4, T // 2, T - 1})
    truncated = {tau: gf.bptt(cell, params, x, upstream, truncation=gf.Truncated(tau)) for tau in taus}
    biases = {tau: error(flat(grads)) for tau, grads in truncated.items()}
    print(
        "regular truncation, relative error (the bias): "
        + ", ".join(f"tau {t}: {b:.2e}" for t, b in biases.items())
    )
    ex.check(
        biases[T - 1] < 1e-13,
        f"C10: Truncated(T - 1) = Truncated({T - 1}) equals Full() to rounding (relative difference {biases[T - 1]:.1e})",
    )
    ordered = [biases[tau] for tau in taus[:-1]]
    ex.check(
        all(later < earlier for earlier, later in itertools.pairwise(ordered))
        and ordered[-1] < 0.1 * ordered[0],
        f"C10: the bias of regular truncation falls with tau, strictly and by a factor "
        f"{ordered[0] / ordered[-1]:.0f}: {', '.join(f'{b:.1e}' for b in ordered)} for tau = "
        f"{', '.join(map(str, taus[:-1]))}",
    )

    # 3. randomized truncation: many draws per pi
    randomized: dict[float, list] = {}
    counts = [c for c in (4, 16, 64, 256, 1024) if c <= draws]
    rows = []
    for pi in PIS:
        runs = [
            gf.bptt(cell, params, x, upstream, truncation=gf.Randomized(pi, seed=k)) for k in range(draws)
        ]
        randomized[pi] = runs
        vectors = np.stack([flat(r) for r in runs])
        for count in counts:
            mean = vectors[:count].mean(axis=0)
            standard = math.sqrt(float(vectors[:count].var(axis=0, ddof=1).sum()) / count) / scale
            rows.append(
                (pi, count, error(mean), standard, float(np.median([error(v) for v in vectors[:count]])))
            )
    print(
        f"{'pi':>4} {'draws N':>8} {'error of the mean':>18} {'standard error':>15} {'ratio':>6} {'one draw (median)':>18}"
    )
    for pi, count, err, standard, single in rows:
        print(f"{pi:4.1f} {count:8d} {err:18.3e} {standard:15.3e} {err / standard:6.2f} {single:18.3e}")
    last = [(pi, err, standard) for pi, count, err, standard, _ in rows if count == counts[-1]]
    ex.check(
        all(err < 3 * standard for _, err, standard in last),
        f"C10: randomized truncation is unbiased: with {counts[-1]} draws the mean's relative error is within 3 "
        f"standard errors of the mean for pi = {', '.join(f'{p:g}' for p in PIS)} ("
        + ", ".join(f"{err:.1e} vs {standard:.1e}" for _, err, standard in last)
        + "); a bias would stay as N grows",
    )
    # the error of the mean against N. Its variance is finite when the reweighted terms shrink: a term
    # reaching k steps back has weight variance (1/pi^k - 1) and size ~ e^(rate k), so the sum of
    # variances converges for pi > e^(2 rate); below, rare draws with huge weights dominate (heavy tails)
    rate = gf.regime(cell, params, x).rate
    critical = math.exp(2 * rate)
    light = [pi for pi in PIS if pi > critical] or list(PIS)
    heavy = [pi for pi in PIS if pi not in light]
    print(
        f"chain rate {rate:+.3f} per step: the variance of a draw stays bounded in T for pi > e^(2 rate) = "
        f"{critical:.2f}" + (f"; pi = {', '.join(map(str, heavy))} below it: heavy tails" if heavy else "")
    )
    rms = [
        math.sqrt(np.mean([e**2 for pi, c, e, _, _ in rows if c == count and pi in light]))
        for count in counts
    ]
    slope = float(np.polyfit(np.log(counts), np.log(rms), 1)[0])
    ex.check(
        -0.75 < slope < -0.3,
        f"C10: the error of the mean shrinks like 1/sqrt(N): fitted exponent {slope:+.2f} over N = "
        f"{', '.join(map(str, counts))} draws (root mean square over pi = {', '.join(map(str, light))}, "
        f"where the variance is finite; 1/sqrt(N) is -0.5)",
    )
    # d2l: regular truncation works as well in practice. Same mean depth: pi = 0.9 keeps pi/(1-pi) = 9 steps
    depth = round(0.9 / (1 - 0.9))
    equal = gf.bptt(cell, params, x, upstream, truncation=gf.Truncated(depth))
    single = float(np.median([error(flat(r)) for r in randomized[0.9]]))
    ex.check(
        error(flat(equal)) < single,
        f"C10, d2l's practical point: at the same mean depth ({depth} steps), one randomized draw (pi = 0.9) errs by "
        f"{single:.1e} (median, variance), regular truncation Truncated({depth}) by {error(flat(equal)):.1e} (bias)",
    )
    print()
    # the figure: every tau short of T - 1 (that one is the full gradient, 0 up to rounding), every draw
    dense = sorted(set(range(1, T - 1, max(1, T // 20))) | set(taus[:-1]))
    shown = [
        reference,
        *(truncated.get(tau) or gf.bptt(cell, params, x, upstream, truncation=tau) for tau in dense),
    ]
    shown += [r for pi in PIS for r in randomized[pi]]
    ex.figure(
        gf.plot.truncation(
            shown,
            title=f"BPTT strategies against the full gradient of every parameter\n"
            f"(Elman, n = {n}, T = {T}, B = {B}; {draws} draws per $\\pi$)",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
