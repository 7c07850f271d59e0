r"""The GRU's gated self-loop: the update gate decides how much gradient survives (C6, C18, C24).

CS224n (seed 000) and the *Deep Learning* notes (seed 003) present gated RNNs as recurrences whose
self-loop weight is itself computed at every step: the network learns *when* to forget. In the GRU
(Cho et al. 2014; gradflow's convention, as PyTorch's: the update gate :math:`z` keeps the old
state, CS224n's :math:`u = 1 - z` writes the new one)

.. math::
    h^{(t)} = z^{(t)} \circ h^{(t-1)} + (1 - z^{(t)}) \circ \tilde h^{(t)}, \qquad
    \frac{\partial h^{(t)}}{\partial h^{(t-1)}} = \operatorname{diag}(z^{(t)})
      + \operatorname{diag}(1 - z^{(t)}) \frac{\partial \tilde h^{(t)}}{\partial h^{(t-1)}}
      + \operatorname{diag}(h^{(t-1)} - \tilde h^{(t)})\,\frac{\partial z^{(t)}}{\partial h^{(t-1)}}.

The first term is a self-loop of weight :math:`z^{(t)}`, different at every step: when the gate
keeps the state (:math:`z \approx 1`) the gradient passes almost unchanged; when it overwrites
(:math:`z \approx 0`) it goes through the candidate's :math:`\operatorname{diag}(\tanh') W_h` and
shrinks like an Elman network's. gradflow derives this for both forms of the candidate, Cho et
al.'s (reset before :math:`W_h`, ``gru()``) and cuDNN/PyTorch's (reset after, ``gru(reset_after=True)``),
and measures the chains :math:`\lVert\partial h^{(T)}/\partial h^{(T-k)}\rVert_2` while the
update-gate bias :math:`b_z` moves the gate from keeping to overwriting.

Run it::

    python examples/gru_and_variants.py            # n = 32, T = 300
    python examples/gru_and_variants.py --quick    # n = 12, T = 80
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure

import gradflow as gf
from gradflow.cells.expr import t
from gradflow.symbolic.nodes import Partial

CHO = (
    "K. Cho et al., Learning phrase representations using RNN encoder-decoder for statistical "
    "machine translation, EMNLP 2014."
)
CS224N = "Stanford CS224n, lecture 7: vanishing gradients and fancy RNNs."
GOODFELLOW = "I. Goodfellow, Y. Bengio, A. Courville, Deep Learning, MIT Press 2016, section 10.10."
#: Update-gate biases, from keeping (z = sigmoid(4) = 0.98) to overwriting (z = sigmoid(-4) = 0.02).
BIASES = (4.0, 2.0, 0.0, -2.0, -4.0)
RECURRENT = ("W_z", "W_r", "W_h")


def formulas() -> list[Step]:
    """Both GRUs' equations and step Jacobians, and the self-loop left when the recurrent weights are 0."""
    steps = []
    for cell, form in ((gf.cells.gru(), "Cho et al."), (gf.cells.gru(reset_after=True), "cuDNN/PyTorch")):
        for kind, name in cell.order:
            if name in ("h_tilde", "h") and (name == "h_tilde" or form == "Cho et al."):
                steps.append(
                    Step(
                        f"GRU ({form})",
                        sp.Eq(cell.signal(name, t), cell.expression(kind, name), evaluate=False),
                        "The candidate, with the reset gate r applied "
                        + ("before" if form == "Cho et al." else "after")
                        + " the recurrent matrix."
                        if name == "h_tilde"
                        else "The update gate z keeps the old state (CS224n's update gate is u = 1 − z).",
                        CHO if form == "Cho et al." else "PyTorch torch.nn.GRU documentation.",
                    )
                )
        jacobian = gf.symbolic.step_jacobian(cell, "h")
        partial = Partial(cell.signal("h", t), cell.signal("h", t - 1))
        steps.append(
            Step(
                f"GRU ({form})",
                sp.Eq(partial, jacobian, evaluate=False),
                "The step Jacobian (gradflow, numerator layout): a self-loop diag(z), the candidate's "
                "path scaled by diag(1 − z), and the gate's own path.",
                CS224N,
            )
        )
        zero = {cell.parameter(p): sp.ZeroMatrix(*cell.parameter(p).shape) for p in RECURRENT}
        steps.append(
            Step(
                f"GRU ({form})",
                sp.Eq(partial, jacobian.xreplace(zero).doit(), evaluate=False),
                "With every recurrent weight matrix set to 0 only the gated self-loop is left: "
                "a weight z(t) that the input sets anew at every step.",
                GOODFELLOW,
            )
        )
    return steps


def measure(cell: gf.Cell, sizes: dict, x: np.ndarray, bias: float, zero: bool = False) -> tuple:
    """Chain, bound comparison and parameters of one GRU at one update-gate bias."""
    params = gf.init_params(cell, sizes=sizes, seed=0, scheme="orthogonal", values={"b_z": bias})
    if zero:
        params.update({name: np.zeros_like(params[name]) for name in RECURRENT})
    chain = gf.jacobian_chain(cell, params, x)
    return chain, gf.bound_vs_measured(cell, params, x, chain=chain)


def rate(chain: gf.numeric.ChainResult) -> float:
    """Fitted slope of the batch median of log ||dh(T)/dh(T-k)||_2 over k >= 1 (natural log per step)."""
    logs = np.median(np.asarray(chain.log_spectral), axis=1)
    return float(np.polyfit(np.arange(1, logs.size), logs[1:], 1)[0])


def main() -> None:
    ex = Example(
        "gru_and_variants",
        "C6, C18, C24 (seeds 000, 003, 004)",
        "The GRU's step Jacobian contains diag(z): a self-loop whose weight the update gate sets at every "
        "step. When the gate keeps the old state the gradient survives for hundreds of steps; when it "
        "overwrites, it vanishes in a few, for both forms of the candidate (reset before or after W_h).",
    )
    ex.formulas(
        "The GRU's gated self-loop: step Jacobians of both candidate forms (Cho et al. 2014; cuDNN/PyTorch)",
        formulas(),
        references=(CHO, CS224N, GOODFELLOW),
    )

    n, m, T, B = ex.size(32, 12), 4, ex.size(300, 80), ex.size(4, 2)
    sizes = {"n": n, "m": m}
    x = np.random.default_rng(0).normal(size=(T, B, m))
    cells = {"gru()": gf.cells.gru(), "gru(reset_after=True)": gf.cells.gru(reset_after=True)}
    print(f"GRUs, n = {n}, m = {m}, T = {T}, B = {B}, orthogonal weights (gain 1), inputs N(0, 1)")
    print()

    # C18, symbolic: only the self-loop diag(z) is left without recurrent weights
    left = []
    for cell in cells.values():
        zero = {cell.parameter(p): sp.ZeroMatrix(*cell.parameter(p).shape) for p in RECURRENT}
        left.append(gf.symbolic.step_jacobian(cell, "h").xreplace(zero).doit())
    ex.check(
        all(j == gf.symbolic.Diag(cell.signal("z", t)) for j, cell in zip(left, cells.values(), strict=True)),
        "C18: gradflow's step Jacobian of both GRUs reduces to diag(z(t)) when W_z = W_r = W_h = 0: a "
        "self-loop whose weight is the update gate",
    )

    # C18, numeric: then the chain is prod diag(z(t)), a time-varying self-loop weight
    worst, spread = 0.0, []
    for cell in cells.values():
        for bias in (2.0, -2.0):
            chain, _ = measure(cell, sizes, x, bias, zero=True)
            z = np.asarray(chain.trajectory["z"])  # (T, B, n), t = 1..T
            products = np.max(np.cumsum(np.log(z[::-1]), axis=0), axis=-1)  # log max_j prod z_j
            referee = np.concatenate([np.zeros((1, B)), products])
            worst = max(worst, float(np.max(np.abs(np.asarray(chain.log_spectral) - referee))))
            spread.append(float(np.mean(np.std(z, axis=0))))
    ex.check(
        worst < 1e-9 and min(spread) > 0.02,
        f"C18: without recurrent weights ||dh(T)/dh(T-k)||_2 is the largest product of update-gate values "
        f"over the last k steps (largest log error {worst:.1e}, b_z = 2 and -2, both forms); the self-loop "
        f"weight changes from step to step (std of z over time {min(spread):.3f} to {max(spread):.3f})",
    )

    # C6, C18: keep vs overwrite, with orthogonal recurrent weights of gain 1
    runs: dict[str, dict[str, tuple]] = {label: {} for label in cells}
    rates: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label in cells}
    holds = True
    for label, cell in cells.items():
        for bias in BIASES:
            chain, comparison = measure(cell, sizes, x, bias)
            holds = holds and comparison.holds
            mean_z = float(np.mean(np.asarray(chain.trajectory["z"])))
            found = rate(chain)
            last = float(math.exp(np.median(np.asarray(chain.log_spectral)[-1])))  # ||dh(T)/dh(0)||_2
            rates[label].append((bias, found, mean_z, last))
            runs[label][f"$b_z = {bias:g}$ (mean $z$ {mean_z:.2f}): ${math.exp(found):.3f}^k$"] = chain
    for label, found in rates.items():
        keep, overwrite = found[0], found[-1]
        ex.check(
            all(a[1] > b[1] for a, b in itertools.pairwise(found))
            and math.exp(keep[1]) > 0.95
            and math.exp(overwrite[1]) < 0.6,
            f"C6, C18 ({label}): the more the update gate keeps, the more gradient survives: "
            + ", ".join(f"b_z = {b:g}: {math.exp(r):.3f}^k" for b, r, _, _ in found)
            + f"; ||dh(T)/dh(0)||_2 over T = {T} steps is {keep[3]:.2g} when z keeps (mean z "
            f"{keep[2]:.2f}), {overwrite[3]:.2g} when it overwrites (mean z {overwrite[2]:.2f})",
        )
    gap = max(
        abs(math.exp(a[1]) / math.exp(b[1]) - 1)
        for a, b in zip(*rates.values(), strict=True)  # the two forms at the same bias
    )
    ex.check(
        gap < 0.05,
        f"C24: the update gate, not the form of the candidate, sets the rate: the reset-after GRU's rate "
        f"per step is within {100 * gap:.1f}% of the reset-before GRU's at every b_z",
    )
    ex.check(
        holds,
        f"the chain bound of gradflow's GRU holds at every lag for every b_z and both forms "
        f"({2 * len(BIASES)} simulations, BoundComparison.holds)",
    )

    figure = Figure(figsize=(13.0, 4.8), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, (label, series) in zip(axes, runs.items(), strict=True):
        gf.plot.chain_norms(series, ax=ax, title=label)
    figure.suptitle(
        r"GRU chains $\|\partial h^{(T)}/\partial h^{(T-k)}\|_2$ as the update-gate bias $b_z$ moves $z$ "
        f"from keeping to overwriting (n = {n}, T = {T}, B = {B}, orthogonal W, inputs N(0, 1))",
        x=0.01,
        ha="left",
    )
    ex.figure(figure)
    ex.finish()


if __name__ == "__main__":
    main()
