r"""Pascanu's bound on the Elman chain, and the threshold 1/γ of vanishing (seed 000, claims C3 and C4).

CS224n's argument (Pascanu, Mikolov, Bengio 2013): the gradient that step :math:`i` sends back
to step :math:`j` passes through :math:`i - j` step Jacobians
:math:`\operatorname{diag}(\sigma'(\cdot)) W_h`, so

.. math::
    \Bigl\lVert\frac{\partial h^{(i)}}{\partial h^{(j)}}\Bigr\rVert
    \le \lVert W_h\rVert^{i-j} \prod_{j<t\le i}\lVert\operatorname{diag}\sigma'(\cdot)\rVert
    \le (\gamma\lVert W_h\rVert)^{i-j},

and when :math:`\gamma\lVert W_h\rVert_2 < 1` (:math:`\gamma = 1` for tanh, :math:`1/4` for the
sigmoid) the gradient shrinks exponentially; above the threshold it may explode (a necessary
condition, not a sufficient one).

gradflow derives the chain and the bound from the Elman cell's own equations, then measures the
norms of :math:`\partial h^{(T)}/\partial h^{(T-k)}` on simulated cells with orthogonal recurrent
weights (so :math:`\lVert W_h\rVert_2` is the gain) and checks the claims.

Run it::

    python examples/pascanu_bound.py            # n = 64, T = 200
    python examples/pascanu_bound.py --quick    # n = 16, T = 60
"""

from __future__ import annotations

import math

import numpy as np
from _example import Example

import gradflow as gf


def measure(cell: gf.Cell, n: int, gain: float, x: np.ndarray) -> tuple:
    """The chain, the bound beside it and the regime of one cell at one gain (one simulation)."""
    params = gf.init_params(cell, sizes={"n": n, "m": x.shape[-1]}, seed=0, scheme="orthogonal", gain=gain)
    chain = gf.jacobian_chain(cell, params, x)
    return chain, gf.bound_vs_measured(cell, params, x, chain=chain), gf.regime(cell, params, x)


def main() -> None:
    ex = Example(
        "pascanu_bound",
        "C3, C4 (seed 000, CS224n lecture 7)",
        "The Elman chain is bounded by (gamma ||W_h||)^(i-j); below the threshold 1/gamma the gradient "
        "vanishes exponentially (tanh: ||W_h|| < 1; sigmoid: ||W_h|| < 4), above it it may explode.",
    )
    ex.derivation(gf.export.pascanu_bound())

    n, T, B = ex.size(64, 16), ex.size(200, 60), ex.size(8, 4)
    x = 0.5 * np.random.default_rng(0).normal(size=(T, B, 4))
    tanh, sigmoid = gf.cells.elman(), gf.cells.elman("sigmoid")
    runs = {f"tanh, gain {g:g}": measure(tanh, n, g, x) for g in (0.5, 1.0, 3.0)}
    runs["sigmoid, gain 3.5"] = measure(sigmoid, n, 3.5, x)
    print(f"Elman cells, n = {n}, T = {T}, B = {B}, orthogonal W_h scaled by the gain, inputs 0.5 N(0, 1)")
    print(f"{'':20} {'bound rate':>11} {'measured':>10}  regime (rates: natural log per step)")
    for label, (_, _, found) in runs.items():
        print(f"{label:20} {found.predicted_rate:+11.4f} {found.rate:+10.4f}  {found.label}")
    print()

    slack = min(float(np.min(c.slack)) for _, c, _ in runs.values())
    ex.check(
        all(c.holds for _, c, _ in runs.values()),
        f"C3: ||dh(T)/dh(T-k)||_2 <= ||W_h||^k prod ||diag sigma'|| <= (gamma ||W_h||)^k at every lag k <= {T}, "
        f"for every gain and sequence (smallest slack {slack:.2e} in natural log)",
    )
    _, _, half = runs["tanh, gain 0.5"]
    ex.check(
        half.label == "vanishing" and half.rate <= math.log(0.5) + 1e-9,
        f"C4: tanh with ||W_h||_2 = 0.5 < 1/gamma = 1 vanishes at least as fast as 0.5^k: measured "
        f"{math.exp(half.rate):.4f}^k",
    )
    _, _, sig = runs["sigmoid, gain 3.5"]
    ex.check(
        sig.label == "vanishing" and sig.rate <= math.log(3.5 / 4) + 1e-9,
        f"C4: the threshold is 1/gamma, not 1: a sigmoid cell with ||W_h||_2 = 3.5 > 1 still vanishes "
        f"(gamma ||W_h|| = 0.875; measured {math.exp(sig.rate):.4f}^k)",
    )
    _, _, big = runs["tanh, gain 3"]
    ex.check(
        big.label == "exploding" and big.predicted_rate > 0,
        f"C4: above the threshold the gradient can explode: tanh with ||W_h||_2 = 3 grows as "
        f"{math.exp(big.rate):.4f}^k, and only where gamma ||W_h|| > 1 (bound's rate {big.predicted_rate:+.3f})",
    )
    ex.figure(
        gf.plot.chain_norms(
            {label: run for label, run in runs.items()},
            title=f"Pascanu's bound on the Elman chain (n = {n}, T = {T}, B = {B}, orthogonal W_h)",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
