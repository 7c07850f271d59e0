r"""Skip connections through time: the decay goes with k/d instead of k (seed 003, claim C16).

*Deep Learning* §10.9.1, as the seed retells it: adding recurrent connections with a delay
:math:`d`,

.. math:: h^{(t)} = \sigma\bigl(W_h h^{(t-1)} + W_d h^{(t-d)} + W_x x^{(t)} + b\bigr),

lets the gradient reach :math:`h^{(t-k)}` along paths of about :math:`k/d` steps, so "the derivatives
now decrease exponentially in :math:`\tau/d` rather than :math:`\tau`". On the unrolled graph the
paths from :math:`h^{(j)}` to :math:`h^{(i)}`, :math:`k = i - j`, are the compositions of
:math:`k` into parts 1 and :math:`d`,

.. math::
    N_d(k) = \sum_{q=0}^{\lfloor k/d\rfloor} \binom{k - q(d-1)}{q}, \qquad
    \text{shortest path: } \lfloor k/d\rfloor + (k \bmod d) \text{ edges},

and :math:`\partial h^{(i)}/\partial h^{(j)}` is the sum over them of the products of the step
Jacobians. Removing the length-1 connections altogether (the seed's "deleting connections")
leaves a single path of :math:`k/d` factors when :math:`d` divides :math:`k`, and none otherwise.

gradflow counts the paths on its unrolled graph (``gf.graph.count_paths``,
``gf.graph.shortest_path_length``) and writes the path sum (``gf.symbolic.chain`` of
``gf.cells.skip``). Numerically, cells whose only recurrence is :math:`h^{(t-d)}`
(``gf.cells.skip(d, unit_connection=False)``, and the Elman cell for :math:`d = 1`) with the same
recurrent matrix decay per step at :math:`1/d` of the Elman cell's rate: they are :math:`d`
interleaved Elman chains, each advancing once every :math:`d` steps.

Run it::

    python examples/skip_connections.py            # n = 64, T = 400; paths up to k = 60
    python examples/skip_connections.py --quick    # n = 16, T = 120; paths up to k = 30
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure

import gradflow as gf
from gradflow.cells import t
from gradflow.symbolic.nodes import Partial

GOODFELLOW = "I. Goodfellow, Y. Bengio, A. Courville, Deep Learning, MIT Press 2016, section 10.9.1."
LIN = (
    "T. Lin, B. G. Horne, P. Tino, C. L. Giles, Learning long-term dependencies in NARX recurrent neural "
    "networks, IEEE TNN 7(6), 1996."
)
DELAYS = (1, 2, 4)


def compositions(k: int, d: int) -> int:
    """The referee: the number of compositions of k into parts 1 and d (a closed form, not a graph)."""
    if d == 1:
        return 1
    return sum(math.comb(k - q * (d - 1), q) for q in range(k // d + 1))


def formulas(ex: Example) -> None:
    """The cell, its two step Jacobians, the path sum (unevaluated and for k = 5, d = 3), the counts."""
    cell = gf.cells.skip(delay=3)
    only = gf.cells.skip(delay=3, unit_connection=False)
    i, j, k, q = sp.symbols("i j k q", integer=True, nonnegative=True)
    d = sp.Symbol("d", integer=True, positive=True)
    count, shortest = sp.Function("N_d"), sp.Function("ell_d")
    steps = [
        Step(
            "Cell",
            sp.Eq(cell.signal("h", t), cell.updates["h"], evaluate=False),
            "A skip connection of delay d = 3.",
            GOODFELLOW,
        ),
        Step(
            "Step Jacobians",
            sp.Eq(
                Partial(cell.signal("h", t), cell.signal("h", t - 1)),
                gf.symbolic.state_jacobian(cell, 1),
                evaluate=False,
            ),
            "The length-1 edge.",
            GOODFELLOW,
        ),
        Step(
            "Step Jacobians",
            sp.Eq(
                Partial(cell.signal("h", t), cell.signal("h", t - 3)),
                gf.symbolic.state_jacobian(cell, 3),
                evaluate=False,
            ),
            "The delayed edge.",
            GOODFELLOW,
        ),
        Step(
            "Path sum",
            sp.Eq(
                Partial(cell.signal("h", i), cell.signal("h", j)),
                gf.symbolic.chain(cell, i, j),
                evaluate=False,
            ),
            "The chain of a cell with delays is a sum over the paths of the unrolled graph (gradflow's PathSum).",
            GOODFELLOW,
        ),
        Step(
            "Path sum",
            sp.Eq(
                Partial(cell.signal("h", 5), cell.signal("h", 0)),
                gf.symbolic.chain(cell, 5, 0).doit().expand(),
                evaluate=False,
            ),
            "For k = 5: the compositions 1+1+1+1+1, 1+1+3, 1+3+1, 3+1+1, one product each.",
            GOODFELLOW,
        ),
        Step(
            "Counting",
            sp.Eq(count(k), sp.Sum(sp.binomial(k - q * (d - 1), q), (q, 0, sp.floor(k / d))), evaluate=False),
            "The number of paths from h(j) to h(j + k): compositions of k into parts 1 and d.",
            LIN,
        ),
        Step(
            "Counting",
            sp.Eq(shortest(k), sp.floor(k / d) + sp.Mod(k, d), evaluate=False),
            "The shortest path: as many d-steps as fit, then single steps; the least damped product has about k/d "
            "factors instead of k.",
            LIN,
        ),
        Step(
            "Removing connections",
            sp.Eq(
                Partial(only.signal("h", 6), only.signal("h", 0)),
                # the one path h(0) -> h(3) -> h(6), from gradflow's delayed step Jacobian (PathSum.doit() fails
                # on a cell without a length-1 connection: it has no term for k < d)
                sp.MatMul(*(gf.symbolic.state_jacobian(only, 3).xreplace({t: s}) for s in (6, 3))),
                evaluate=False,
            ),
            "Without the length-1 connection a single path remains, of k/d = 2 factors for k = 6 (none when d does "
            "not divide k).",
            GOODFELLOW,
        ),
    ]
    ex.formulas("Skip connections through time (seed 003, C16)", steps, [GOODFELLOW, LIN])


def main() -> None:
    ex = Example(
        "skip_connections",
        "C16 (seed 003, Deep Learning 10.9.1)",
        "With skip connections of delay d the paths from h(j) to h(j+k) are the compositions of k into 1s and ds, "
        "the shortest of floor(k/d) + k mod d edges: gradients decay exponentially in k/d instead of k.",
    )
    formulas(ex)

    # 1. the unrolled graph: path counts and shortest paths
    K = ex.size(60, 30)
    counted, shortest_ok, removed_ok = {}, True, True
    for d in (2, 3, 4):
        graph = gf.unroll(gf.cells.skip(delay=d), K)
        counted[d] = [gf.graph.count_paths(graph, ("h", 0), ("h", k)) for k in range(1, K + 1)]
        shortest_ok &= all(
            gf.graph.shortest_path_length(graph, ("h", 0), ("h", k)) == k // d + k % d
            for k in range(1, K + 1)
        )
        bare = gf.unroll(gf.cells.skip(delay=d, unit_connection=False), K)
        removed_ok &= all(
            gf.graph.count_paths(bare, ("h", 0), ("h", k)) == (1 if k % d == 0 else 0)
            for k in range(1, K + 1)
        )
    counts_ok = all(counted[d] == [compositions(k, d) for k in range(1, K + 1)] for d in counted)
    print(f"paths from h(0) to h({K}): " + ", ".join(f"d = {d}: {counted[d][-1]}" for d in counted))
    ex.check(
        counts_ok,
        f"C16: on gradflow's unrolled graph the paths from h(0) to h(k) number the compositions of k into parts 1 "
        f"and d, sum_q C(k - q(d-1), q), for every k = 1..{K} and d = 2, 3, 4 (e.g. {counted[2][-1]} for d = 2, "
        f"{counted[4][-1]} for d = 4 at k = {K})",
    )
    ex.check(
        shortest_ok,
        f"C16: the shortest path from h(0) to h(k) has floor(k/d) + k mod d edges, for every k = 1..{K} and "
        f"d = 2, 3, 4 (k = {K}, d = 4: {K // 4 + K % 4} edges instead of {K})",
    )
    ex.check(
        removed_ok,
        f"without the length-1 connection one path remains when d divides k and none otherwise (k = 1..{K}, "
        "d = 2, 3, 4)",
    )
    terms = gf.symbolic.chain(gf.cells.skip(delay=3), 5, 0).doit().expand()
    ex.check(
        isinstance(terms, sp.MatAdd) and len(terms.args) == compositions(5, 3),
        f"gradflow's symbolic dh(5)/dh(0) for d = 3, multiplied out, is a sum of {len(terms.args)} products, one "
        f"per path ({compositions(5, 3)} compositions of 5 into 1s and 3s)",
    )

    # 2. numerically: cells whose only recurrence is h(t - d), the same orthogonal matrix (gain 0.8)
    n, T, B, m = ex.size(64, 16), ex.size(400, 120), 8, 4
    x = 0.5 * np.random.default_rng(0).normal(size=(T, B, m))
    weights = gf.init_params(gf.cells.elman(), sizes={"n": n, "m": m}, seed=0, scheme="orthogonal", gain=0.8)
    rates, runs, zero_between = {}, {}, True
    for d in DELAYS:
        cell = gf.cells.elman() if d == 1 else gf.cells.skip(delay=d, unit_connection=False)
        params = {"W_x": weights["W_x"], "b": weights["b"], ("W_h" if d == 1 else "W_d"): weights["W_h"]}
        # spectral norms from Gram eigenvalues: exact, and faster than power iteration at these sizes
        chain = gf.jacobian_chain(cell, params, x, spectral="gram")
        logs, lags = np.asarray(chain.log_spectral), np.asarray(chain.lags)
        zero_between &= bool(np.all(np.isneginf(logs[lags % d != 0])))
        fit = (lags % d == 0) & (lags > 0)
        rates[d] = float(np.polyfit(lags[fit], logs[fit].mean(axis=1), 1)[0])
        # the chain is 0 between multiples of d (no path): draw the lags that have one
        every = slice(None, None, d)
        shown = dataclasses.replace(
            chain,
            times=chain.times[every],
            lags=chain.lags[every],
            log_frobenius=chain.log_frobenius[every],
            log_spectral=chain.log_spectral[every],
        )
        label = "Elman, $d = 1$" if d == 1 else f"only $h^{{(t-{d})}}$, $d = {d}$"
        runs[f"{label}: slope {rates[d] / math.log(10):+.4f} per step"] = shown
    print(
        f"tanh cells, n = {n}, T = {T}, B = {B}, one orthogonal recurrent matrix with gain 0.8, inputs 0.5 N(0, 1)"
    )
    for d in DELAYS:
        print(f"  d = {d}: measured rate {rates[d]:+.5f} per step; d x rate = {d * rates[d]:+.5f}")
    ratios = {d: d * rates[d] / rates[1] for d in DELAYS}
    ex.check(
        zero_between,
        "without length-1 connections dh(T)/dh(T-k) is exactly 0 unless d divides k: gf.jacobian_chain's norms "
        "there are 0 (log = -inf), as the path counts say",
    )
    ex.check(
        all(abs(ratios[d] - 1) < 0.1 for d in DELAYS[1:]),
        f"C16: the measured decay per step scales as 1/d: rates {', '.join(f'{rates[d]:+.4f}' for d in DELAYS)} "
        f"for d = {', '.join(map(str, DELAYS))}; d x rate / (Elman's rate) = "
        f"{', '.join(f'{ratios[d]:.3f}' for d in DELAYS[1:])} (within 10% of 1): the exponent goes with k/d",
    )
    print()
    ex.figure(
        gf.plot.chain_norms(
            runs,
            title=f"Recurrence through $h^{{(t-d)}}$ only: the chain decays in k/d (tanh, n = {n}, T = {T}, B = {B})",
        )
    )
    # the graph the paths are counted on
    figure = Figure(figsize=(9.0, 2.8), layout="constrained")
    axes = figure.subplots()
    shown_T = 7
    gf.graph.draw(gf.unroll(gf.cells.skip(delay=3), shown_T), axes, params=False, font_size=8)
    axes.set_title(
        f"skip(delay=3) unrolled over T = {shown_T}: "
        f"{gf.graph.count_paths(gf.unroll(gf.cells.skip(delay=3), shown_T), ('h', 0), ('h', shown_T))} paths "
        f"$h^{{(0)}} \\leadsto h^{{({shown_T})}}$, the shortest of {shown_T // 3 + shown_T % 3} edges (red: delay 3)",
        fontsize=10,
    )
    ex.figure(figure, "graph")
    ex.finish()


if __name__ == "__main__":
    main()
