r"""Leaky units: a running average keeps information when alpha is near 1 (seed 003, claim C17).

*Deep Learning* §10.9.2, as the seed retells it: a unit that accumulates a running average

.. math:: \mu^{(t)} = \alpha\,\mu^{(t-1)} + (1 - \alpha)\, v^{(t)}

barely changes when :math:`\alpha \to 1` and keeps its history for long; when :math:`\alpha \to 0`
it forgets at once. ``gf.cells.leaky(alpha)`` is an Elman cell made leaky,
:math:`h^{(t)} = \alpha h^{(t-1)} + (1-\alpha)\,\sigma(W_h h^{(t-1)} + W_x x^{(t)} + b)`, whose step
Jacobian gradflow derives as

.. math::
    \frac{\partial h^{(t)}}{\partial h^{(t-1)}} = \alpha I + (1-\alpha)\operatorname{diag}(\sigma'(\cdot))\,W_h ,
    \qquad
    \alpha - (1-\alpha)\gamma\lVert W_h\rVert_2 \;\le\; \sigma_{\min},\ \lVert\cdot\rVert_2
    \;\le\; \alpha + (1-\alpha)\gamma\lVert W_h\rVert_2

(the triangle inequality, and :math:`\sigma_{\min}(A + B) \ge \sigma_{\min}(A) - \lVert B\rVert_2`).
Both sides tend to 1 as :math:`\alpha \to 1`: the chain :math:`\partial h^{(T)}/\partial h^{(T-k)}`
can neither vanish nor explode fast, whatever :math:`W_h` is -- the linear self-connection of
weight near 1 keeps the derivatives' product near 1.

The script measures the chain for :math:`\alpha \in \{0, 0.5, 0.9, 0.99\}` with one recurrent
matrix, checks gradflow's own bound (``BoundComparison.holds``) and the two-sided bound above at
every lag, and that the decay slows monotonically as :math:`\alpha \to 1`.

Run it::

    python examples/leaky_units.py            # n = 64, T = 400
    python examples/leaky_units.py --quick    # n = 16, T = 80
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from _example import Example, Step

import gradflow as gf
from gradflow.symbolic.derivation import Derivation

GOODFELLOW = "I. Goodfellow, Y. Bengio, A. Courville, Deep Learning, MIT Press 2016, section 10.9.2."
ALPHAS = (0.0, 0.5, 0.9, 0.99)
GAIN = 0.9


def formulas(ex: Example) -> None:
    """The seed's running average, then gradflow's derivation of the leaky cell (definition to conditions)."""
    t = gf.cells.t
    alpha = sp.Symbol("alpha", positive=True)
    mu, v = sp.IndexedBase("mu"), sp.IndexedBase("v")
    seed = [
        Step(
            "Running average",
            sp.Eq(mu[t], alpha * mu[t - 1] + (1 - alpha) * v[t], evaluate=False),
            "The seed's leaky unit: alpha near 1 keeps the history, near 0 forgets it.",
            GOODFELLOW,
        ),
        Step(
            "Running average",
            sp.Eq(sp.Derivative(mu[t], mu[t - 1]), alpha, evaluate=False),
            "A linear self-connection of weight alpha: close to 1, the product of derivatives stays close to 1.",
            GOODFELLOW,
        ),
    ]
    derived = gf.derive(gf.cells.leaky())
    titles = (
        "Cell",
        "Step Jacobian",
        "Chain rule through time",
        "Bound",
        "Vanishing condition",
        "Exploding condition",
    )
    ours = [step for step in derived if step.title in titles]
    ex.derivation(
        Derivation(
            "Leaky units (seed 003, C17)",
            (*seed, *ours),
            derived.cell,
            (GOODFELLOW, *derived.references),
        )
    )


def fitted_rate(chain: gf.numeric.ChainResult) -> float:
    """The least-squares slope of log ||dh(T)/dh(T-k)||_2 in k (lags 1..T), per sequence, averaged (as gf.regime)."""
    logs, lags = np.asarray(chain.log_spectral)[1:], np.asarray(chain.lags)[1:].astype(float)
    return float(np.mean(np.polyfit(lags, logs, 1)[0]))


def main() -> None:
    ex = Example(
        "leaky_units",
        "C17 (seed 003, Deep Learning 10.9.2)",
        "Leaky units mu(t) = alpha mu(t-1) + (1 - alpha) v(t): as alpha -> 1 the chain decays ever more slowly, "
        "pinned between (alpha - (1-alpha) gamma ||W_h||)^k and (alpha + (1-alpha) gamma ||W_h||)^k.",
    )
    formulas(ex)
    n, T, B, m = ex.size(64, 16), ex.size(400, 80), 8, 4
    x = 0.5 * np.random.default_rng(0).normal(size=(T, B, m))
    base = gf.init_params(gf.cells.elman(), sizes={"n": n, "m": m}, seed=0, scheme="orthogonal", gain=GAIN)
    norm = float(np.linalg.norm(np.asarray(base["W_h"]), 2))
    gamma = float(gf.gamma("tanh").value)
    runs, found = {}, {}
    print(
        f"leaky tanh cells, n = {n}, T = {T}, B = {B}; one orthogonal W_h, ||W_h||_2 = {norm:.3f}; inputs 0.5 N(0, 1)"
    )
    print(
        f"{'alpha':>6} {'measured rate':>14} {'log upper':>10} {'log lower':>10} {'||dh(T)/dh(0)||_2 (median)':>28}"
    )
    for alpha in ALPHAS:
        cell = gf.cells.leaky(alpha)
        # spectral norms from Gram eigenvalues: exact, and here 50-100 times faster than the default power
        # iteration (near-identity steps have clustered singular values); gf.regime has no spectral= option
        # and would recompute the chain, so the rate is fitted below as gf.regime fits it
        chain = gf.jacobian_chain(cell, base, x, spectral="gram")
        comparison = gf.bound_vs_measured(cell, base, x, chain=chain)
        rate = fitted_rate(chain)
        upper = alpha + (1 - alpha) * gamma * norm
        lower = alpha - (1 - alpha) * gamma * norm
        logs = np.asarray(chain.log_spectral)
        lags = np.asarray(chain.lags)[:, None]
        within = bool(np.all(logs <= lags * math.log(upper) + 1e-9))
        if lower > 0:
            within &= bool(np.all(logs >= lags * math.log(lower) - 1e-9))
        last = math.exp(float(np.median(logs[-1])))
        found[alpha] = (rate, comparison.holds, within, upper, lower, last)
        runs[
            rf"$\alpha = {alpha:g}$: slope {rate / math.log(10):+.4f}, bound {math.log(upper) / math.log(10):+.4f} per step"
        ] = comparison
        print(
            f"{alpha:6g} {rate:+14.5f} {math.log(upper):+10.5f} "
            f"{(f'{math.log(lower):+10.5f}' if lower > 0 else '         -')} {last:28.3e}"
        )
    ex.check(
        all(holds for _, holds, _, _, _, _ in found.values()),
        f"C17: gradflow's chain bound holds at every lag for alpha = {', '.join(f'{a:g}' for a in ALPHAS)}: actual "
        "norm <= the bound with the actual diag(sigma') <= the bound with gamma (BoundComparison.holds)",
    )
    ex.check(
        all(within for _, _, within, _, _, _ in found.values()),
        "C17: at every lag k and for every sequence, (alpha - (1-alpha) gamma ||W_h||)^k <= ||dh(T)/dh(T-k)||_2 <= "
        "(alpha + (1-alpha) gamma ||W_h||)^k (the lower side where it is positive: alpha = "
        + ", ".join(f"{a:g}" for a in ALPHAS if found[a][4] > 0)
        + f"); per step the upper side is {', '.join(f'{found[a][3]:.4f}' for a in ALPHAS)}",
    )
    rates = [found[a][0] for a in ALPHAS]
    ex.check(
        all(a < b for a, b in itertools.pairwise(rates)) and rates[-1] > math.log(found[0.99][4]),
        f"C17: alpha -> 1 keeps information: the measured rate rises monotonically, "
        f"{', '.join(f'{r:+.4f}' for r in rates)} per step for alpha = {', '.join(f'{a:g}' for a in ALPHAS)}; "
        f"after {T} steps ||dh(T)/dh(0)||_2 is {found[0.99][5]:.3g} at alpha = 0.99 against {found[0.0][5]:.3g} "
        "at alpha = 0",
    )
    print()
    ex.figure(
        gf.plot.chain_norms(
            runs,
            title=r"Leaky units: $\alpha \to 1$ keeps the chain near 1"
            + f"\n(tanh, n = {n}, T = {T}, B = {B}, one orthogonal W_h of norm {norm:.2g})",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
