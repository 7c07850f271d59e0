r"""Bidirectional and stacked RNNs: where the gradient flows in each (C6, C20, C24).

CS224n (seed 000) and the Datawhale notes (seed 004) build two larger networks from one cell:

* a **bidirectional** RNN runs a second copy backwards in time,
  :math:`\overleftarrow h^{(t)} = \sigma(\overleftarrow W_h \overleftarrow h^{(t+1)} + \overleftarrow W_x x^{(t)} + \overleftarrow b)`,
  and outputs :math:`[\overrightarrow h^{(t)}; \overleftarrow h^{(t)}]`. Its chain runs the other way:
  :math:`\partial \overleftarrow h^{(j)}/\partial \overleftarrow h^{(i)} = \prod_{j\le t<i}
  \operatorname{diag}(\sigma'(\cdot)) \overleftarrow W_h` for :math:`j < i`, so a loss at step
  :math:`t_0` reaches earlier inputs through the forward copy and later ones through the backward
  copy; truncation after :math:`\tau` steps counts in each direction;
* a **stacked** (multi-layer) RNN feeds layer :math:`l`'s state into layer :math:`l+1` at the same
  step, :math:`h_{l+1}^{(t)} = \sigma(W_h^{l+1} h_{l+1}^{(t-1)} + W_x^{l+1} h_l^{(t)} + b^{l+1})`: a
  gradient from the top layer at :math:`T` reaches the bottom input :math:`x^{(t)}` along every
  path that climbs the :math:`L - 1` layers at some steps between :math:`t` and :math:`T`:
  :math:`\binom{T - t + L - 1}{L - 1}` paths, one more free step per layer.

gradflow's combinators ``bidirectional`` and ``stack`` build both from the Elman cell; the example
derives their Jacobians and measures the chains, the truncated gradients and the paths.

Run it::

    python examples/bidirectional_and_stacked.py            # n = 32, T = 200
    python examples/bidirectional_and_stacked.py --quick    # n = 12, T = 60
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure

import gradflow as gf
from gradflow.cells.expr import t
from gradflow.symbolic.nodes import Partial

SCHUSTER = (
    "M. Schuster, K. K. Paliwal, Bidirectional recurrent neural networks, IEEE Trans. Signal "
    "Processing 45(11), 1997."
)
GRAVES = (
    "A. Graves, A. Mohamed, G. Hinton, Speech recognition with deep recurrent neural networks, ICASSP 2013."
)
CS224N = "Stanford CS224n, lecture 7: vanishing gradients and fancy RNNs."
i_sym, j_sym = sp.symbols("i j", integer=True)


def formulas(both: gf.Cell, deep: gf.Cell) -> list[Step]:
    """Both combinators' equations, the backward copy's step Jacobian and chain, the stack's cross Jacobian."""
    steps = []
    for kind, name in both.order:
        expression = both.expression(kind, name)
        steps.append(
            Step(
                "Bidirectional",
                sp.Eq(both.signal(name, t), expression, evaluate=False),
                {
                    "fwd.h": "The forward copy reads h(t−1).",
                    "bwd.h": "The backward copy reads h(t+1): it runs from the end of the sequence.",
                }.get(name, "The output at step t concatenates both directions."),
                SCHUSTER,
            )
        )
    backward = both.signal("bwd.h", t)
    steps.append(
        Step(
            "Bidirectional",
            sp.Eq(
                Partial(backward, both.signal("bwd.h", t + 1)),
                gf.symbolic.state_jacobian(both, states="bwd.h"),
                evaluate=False,
            ),
            "The backward copy's step Jacobian, against its state one step later.",
            SCHUSTER,
        )
    )
    steps.append(
        Step(
            "Bidirectional",
            sp.Eq(
                Partial(both.signal("bwd.h", j_sym), both.signal("bwd.h", i_sym)),
                gf.symbolic.chain(both, i_sym, j_sym, states=["bwd.h"]),
                evaluate=False,
            ),
            "Its chain runs the other way in time: from a later step i back to an earlier j < i, "
            "earlier steps on the left.",
            SCHUSTER,
        )
    )
    for kind, name in deep.order:
        steps.append(
            Step(
                "Stacked",
                sp.Eq(deep.signal(name, t), deep.expression(kind, name), evaluate=False),
                "Layer 2 reads layer 1's state of the same step."
                if name == "layer2.h"
                else "The bottom layer.",
                GRAVES,
            )
        )
    steps.append(
        Step(
            "Stacked",
            sp.Eq(
                Partial(deep.signal("layer2.h", t), deep.signal("layer1.h", t - 1)),
                gf.symbolic.step_jacobian(deep, "layer2.h", "layer1.h"),
                evaluate=False,
            ),
            "The cross block of the stack's step Jacobian: a path climbs from layer 1 to layer 2 inside a step.",
            CS224N,
        )
    )
    return steps


def lone(params: dict, prefix: str) -> dict:
    """The parameters of one layer or direction of a combined cell, under the plain cell's names."""
    return {name.removeprefix(prefix): value for name, value in params.items() if name.startswith(prefix)}


def main() -> None:
    ex = Example(
        "bidirectional_and_stacked",
        "C6, C20, C24 (seeds 000, 004)",
        "A bidirectional RNN's backward copy reads h(t+1), so its chain runs the other way in time and "
        "truncation counts per direction; a stacked RNN adds a path per layer from the bottom input to "
        "the top state.",
    )
    elman = gf.cells.elman()
    both, deep = gf.cells.bidirectional(elman), gf.cells.stack([elman, elman])
    ex.formulas(
        "Bidirectional and stacked Elman networks: the backward chain and the path between layers",
        formulas(both, deep),
        references=(SCHUSTER, GRAVES, CS224N),
    )

    n, m, T, B = ex.size(32, 12), 4, ex.size(200, 60), ex.size(4, 2)
    sizes = {"n": n, "m": m}
    x = np.random.default_rng(0).normal(size=(T, B, m))
    print(f"Elman layers, n = {n}, m = {m}, T = {T}, B = {B}, orthogonal weights (gain 1), inputs N(0, 1)")
    print()

    # bidirectional: the backward chain, symbolically and numerically
    step = gf.symbolic.state_jacobian(both, states="bwd.h")
    chain = gf.symbolic.chain(both, i_sym, j_sym, states=["bwd.h"])
    ex.check(
        step.has(both.signal("bwd.h", t + 1))
        and not step.has(both.signal("bwd.h", t - 1))
        and chain.backward,
        "C6, C20: gradflow derives the backward copy's step Jacobian against bwd.h(t+1) and its chain "
        f"as a product running backwards in time: {gf.export.to_text(chain)}",
    )
    p_both = gf.init_params(both, sizes=sizes, seed=0, scheme="orthogonal", gain=1.0)
    chain_fwd = gf.jacobian_chain(both, p_both, x, states=["fwd.h"])
    chain_bwd = gf.jacobian_chain(both, p_both, x, states=["bwd.h"])
    mirror = gf.jacobian_chain(elman, lone(p_both, "bwd."), x[::-1])  # a forward Elman on the reversed input
    gap = float(np.max(np.abs(np.asarray(chain_bwd.log_spectral) - np.asarray(mirror.log_spectral))))
    times = np.asarray(chain_bwd.times)
    ex.check(
        chain_bwd.anchor == 1 and np.array_equal(times, np.arange(1, T + 2)) and gap < 1e-10,
        f"C6, C20: the backward chain dh(1)/dh(1+k) runs forward in time (anchor 1, steps 1..{T + 1}) and "
        f"is the chain of a forward Elman network on the reversed sequence (largest log difference {gap:.1e})",
    )

    # truncation per direction: a loss at t0 reaches tau steps back (forward copy) and forward (backward copy)
    t0, tau = T // 2, ex.size(20, 8)
    upstream = np.zeros((T, B, 2 * n))
    upstream[t0 - 1] = np.random.default_rng(1).normal(size=(B, 2 * n))
    full = gf.bptt(both, p_both, x, {"h": upstream})
    cut = gf.bptt(both, p_both, x, {"h": upstream}, truncation=gf.Truncated(tau))
    steps = np.arange(1, T + 1)
    near = np.abs(steps - t0) <= tau
    inside = float(np.max(np.abs(cut.inputs["x"][near] - full.inputs["x"][near])))
    outside = float(np.max(np.abs(cut.inputs["x"][~near])))
    reach = np.flatnonzero(np.abs(full.inputs["x"]).max(axis=(1, 2)) > 0) + 1
    ex.check(
        inside < 1e-13 and outside == 0.0 and reach[0] == 1 and reach[-1] == T,
        f"C6: with a loss at t0 = {t0}, Truncated({tau}) keeps dL/dx(t) exactly for {t0 - tau} <= t <= "
        f"{t0 + tau} (largest difference {inside:.1e}) and nothing beyond: tau steps back through the "
        f"forward copy and tau steps ahead through the backward one; the full gradient reaches every "
        f"step 1..{T}",
    )

    # stacked: the paths from the bottom input to the top state
    horizon = 12
    counts_ok, shown = True, []
    for depth in (2, 3):
        graph = gf.unroll(gf.cells.stack([elman] * depth), horizon)
        counts = [
            gf.graph.count_paths(graph, ("x", s), (f"layer{depth}.h", horizon)) for s in range(1, horizon + 1)
        ]
        expected = [math.comb(horizon - s + depth - 1, depth - 1) for s in range(1, horizon + 1)]
        counts_ok = counts_ok and counts == expected
        shown.append(f"{depth} layers: {counts[0]}")
    ex.check(
        counts_ok,
        f"C6, C24: in the unrolled stack the paths from x(t) to the top state at T = {horizon} number "
        f"C(T - t + L - 1, L - 1), one more free step per layer (gf.graph.count_paths; from x(1): "
        + ", ".join(shown)
        + ")",
    )
    p_deep = gf.init_params(deep, sizes=sizes, seed=0, scheme="orthogonal", gain=1.0)
    top = np.zeros((T, B, n))
    top[-1] = 1.0
    stacked = gf.bptt(deep, p_deep, x, {"layer2.h": top})
    # referee: layer 2's backpropagation to its inputs, fed into layer 1's
    bottom = gf.simulate(elman, lone(p_deep, "layer1."), x)["h"][1:]
    into_bottom = gf.bptt(elman, lone(p_deep, "layer2."), bottom, {"h": top}).inputs["x"]
    composed = gf.bptt(elman, lone(p_deep, "layer1."), x, {"h": into_bottom}).inputs["x"]
    error = float(np.max(np.abs(stacked.inputs["x"] - composed)) / np.max(np.abs(composed)))
    ex.check(
        error < 1e-12,
        f"C6, C24: the gradient at the bottom input of the 2-layer stack, from a loss on the top state at "
        f"T, is layer 2's backpropagation to its input fed into layer 1's (relative difference {error:.1e})",
    )
    chain_deep = gf.jacobian_chain(deep, p_deep, x, full=True)
    chain_1 = gf.jacobian_chain(deep, p_deep, x, states=["layer1.h"])
    chain_2 = gf.jacobian_chain(deep, p_deep, x, states=["layer2.h"])
    alone = gf.jacobian_chain(elman, lone(p_deep, "layer1."), x)
    cross = np.linalg.norm(chain_deep.matrix(T)[:, n:, :n], 2, axis=(1, 2))  # d layer2.h(T) / d layer1.h(0)
    joint = np.asarray(chain_deep.log_spectral)
    ex.check(
        float(np.max(np.abs(np.asarray(chain_1.log_spectral) - np.asarray(alone.log_spectral)))) < 1e-10
        and bool(np.all(joint >= np.maximum(chain_1.log_spectral, chain_2.log_spectral) - 1e-9))
        and float(np.min(cross)) > 0,
        "C6: per layer, the bottom chain is a lone Elman layer's and the top chain holds layer 1 fixed; "
        f"the stack's joint chain adds the climbing paths (||d layer2.h(T)/d layer1.h(0)||_2 = "
        f"{float(np.median(cross)):.3g}) and is at least either layer's at every lag",
    )

    figure = Figure(figsize=(14.0, 4.8), layout="constrained")
    left, right = figure.subplots(1, 2)
    gf.plot.chain_norms(
        {
            r"forward copy $\partial h^{(T)}/\partial h^{(T-k)}$": chain_fwd,
            r"backward copy $\partial h^{(1)}/\partial h^{(1+k)}$": chain_bwd,
        },
        ax=left,
        title="bidirectional(elman): per direction",
    )
    gf.plot.chain_norms(
        {
            "layer 1 (bottom)": chain_1,
            "layer 2 (top), layer 1 held": chain_2,
            "both layers (joint state)": chain_deep,
        },
        ax=right,
        title="stack([elman, elman]): per layer, and the joint chain",
    )
    figure.suptitle(
        f"Chain norms of a bidirectional and a 2-layer stacked Elman network (n = {n}, T = {T}, B = {B}, "
        "orthogonal weights of gain 1, inputs N(0, 1))",
        x=0.01,
        ha="left",
    )
    ex.figure(figure)
    ex.finish()


if __name__ == "__main__":
    main()
