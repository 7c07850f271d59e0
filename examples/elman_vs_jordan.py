r"""Elman stores the hidden state, Jordan the previous output (seed 004, claim C20).

The Datawhale notes (seed 004) contrast two simple recurrent networks. Elman's feeds the hidden
state back, Jordan's the previous *output*:

.. math::
    \text{Elman: } h^{(t)} = \sigma(W_h h^{(t-1)} + W_x x^{(t)} + b); \qquad
    \text{Jordan: } h^{(t)} = \sigma(W_h y^{(t-1)} + W_x x^{(t)} + b),\;
    y^{(t)} = \sigma_y(W_y h^{(t)} + b_y).

So the recurrent state, and the chain the gradient flows back through, differ: Elman's step
Jacobian is :math:`\operatorname{diag}(\sigma') W_h`; Jordan's passes the output layer at every
step,

.. math::
    \frac{\partial y^{(t)}}{\partial y^{(t-1)}} =
      \operatorname{diag}(\sigma_y'(W_y h^{(t)} + b_y))\, W_y\, \operatorname{diag}(\sigma'(W_h y^{(t-1)} + W_x x^{(t)} + b))\, W_h,

and its bound per step is :math:`\gamma\gamma_y\lVert W_y\rVert\lVert W_h\rVert`: the output
layer's weights and derivative scale Jordan's gradient at every step back.

Run it::

    python examples/elman_vs_jordan.py            # n = 32, T = 200
    python examples/elman_vs_jordan.py --quick    # n = 12, T = 80
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from _example import Example, Step

import gradflow as gf
from gradflow.cells.expr import t
from gradflow.symbolic.nodes import Partial

ELMAN = "J. L. Elman, Finding structure in time, Cognitive Science 14(2), 1990."
JORDAN = "M. I. Jordan, Serial order: a parallel distributed processing approach, ICS report 8604, 1986."
#: Gains of Jordan's output matrix W_y (orthogonal, so ||W_y||_2 is the gain).
OUTPUT_GAINS = (0.5, 1.0, 2.0)


def formulas(elman: gf.Cell, jordan: gf.Cell) -> list[Step]:
    """Both cells and their step Jacobians, and Jordan's bound per step."""
    steps = []
    for cell, cite, what in ((elman, ELMAN, "hidden state h"), (jordan, JORDAN, "previous output y")):
        name = cell.name.capitalize()
        for kind, node in cell.order:
            steps.append(
                Step(
                    name,
                    sp.Eq(cell.signal(node, t), cell.expression(kind, node), evaluate=False),
                    f"{name} feeds back the {what}." if kind == "state" else f"{name}'s hidden layer.",
                    cite,
                )
            )
        state = next(iter(cell.states))
        steps.append(
            Step(
                name,
                sp.Eq(
                    Partial(cell.signal(state, t), cell.signal(state, t - 1)),
                    gf.symbolic.step_jacobian(cell, state),
                    evaluate=False,
                ),
                f"{name}'s step Jacobian (gradflow, numerator layout)"
                + (
                    ": the output layer's derivative and weights enter at every step."
                    if cell is jordan
                    else "."
                ),
                cite,
            )
        )
    bound = gf.symbolic.chain_bound(jordan)
    steps.append(
        Step(
            "Jordan",
            sp.Le(
                sp.Symbol(r"\lVert\partial y^{(t)}/\partial y^{(t-1)}\rVert"),
                bound.step_gamma,
                evaluate=False,
            ),
            "Its bound per step (gradflow's chain bound, γ = sup|σ′|): both layers' norms multiply.",
            "R. Pascanu, T. Mikolov, Y. Bengio, On the difficulty of training recurrent neural networks, ICML 2013.",
        )
    )
    return steps


def finite_difference_chain(
    cell: gf.Cell, params: dict, x: np.ndarray, state: str, eps: float = 1e-6
) -> np.ndarray:
    """Referee: ds(T)/ds(0) by central differences of gf.simulate in the initial state (one sequence)."""
    size = int(params["b_y" if state == "y" else "b"].shape[0])
    start = np.random.default_rng(5).normal(scale=0.3, size=(1, size))
    columns = []
    for j in range(size):
        shift = np.zeros((1, size))
        shift[0, j] = eps
        up = gf.simulate(cell, params, x, {state: start + shift})[state][-1, 0]
        down = gf.simulate(cell, params, x, {state: start - shift})[state][-1, 0]
        columns.append((up - down) / (2 * eps))
    chain = gf.jacobian_chain(cell, params, x, {state: start}, full=True).matrix(x.shape[0])[0]
    return np.max(np.abs(chain - np.stack(columns, axis=1))) / np.max(np.abs(chain))


def main() -> None:
    ex = Example(
        "elman_vs_jordan",
        "C20 (seed 004, Datawhale notes)",
        "Elman feeds back the hidden state, Jordan the previous output; gradflow derives both step "
        "Jacobians: Jordan's passes the output layer (diag(sigma_y') W_y) at every step, so its weights "
        "and derivative scale the gradient at every step back.",
    )
    elman, jordan = gf.cells.elman(), gf.cells.jordan()
    ex.formulas(
        "Elman and Jordan networks: what is fed back, and the step Jacobians",
        formulas(elman, jordan),
        references=(ELMAN, JORDAN),
    )

    J = gf.symbolic.step_jacobian(jordan, "y")
    names = {s.name for s in J.free_symbols}
    ex.check(
        {"W_y", "b_y", "W_h"} <= names
        and "W_y" not in {s.name for s in gf.symbolic.step_jacobian(elman, "h").free_symbols},
        "C20: gradflow's step Jacobian of Jordan's state y contains the output layer (W_y, b_y) and the "
        f"hidden layer: {gf.export.to_text(J)}; Elman's does not",
    )

    n, m, T, B = ex.size(32, 12), 4, ex.size(200, 80), ex.size(4, 2)
    x = np.random.default_rng(0).normal(size=(T, B, m))
    sizes = {"n": n, "m": m}
    p_elman = gf.init_params(elman, sizes=sizes, seed=0, scheme="orthogonal", gain=1.0)
    print(
        f"n = {n} hidden units, k = {n} outputs, m = {m}, T = {T}, B = {B}, orthogonal weights, inputs N(0, 1)"
    )
    print()

    # Jordan whose output layer is the identity stores exactly what Elman stores
    linear = gf.cells.jordan("tanh", "identity")
    p_same = {
        "W_h": p_elman["W_h"], "W_x": p_elman["W_x"], "b": p_elman["b"], "W_y": np.eye(n), "b_y": np.zeros(n)
    }  # fmt: skip
    chain_e, chain_l = gf.jacobian_chain(elman, p_elman, x), gf.jacobian_chain(linear, p_same, x)
    same_states = float(
        np.max(np.abs(np.asarray(chain_e.trajectory["h"]) - np.asarray(chain_l.trajectory["y"])))
    )
    same_chain = float(np.max(np.abs(np.asarray(chain_e.log_spectral) - np.asarray(chain_l.log_spectral))))
    ex.check(
        same_states < 1e-12 and same_chain < 1e-9,
        f"C20: with an identity output layer (y = h) Jordan's network is Elman's: the same states (largest "
        f"difference {same_states:.1e}) and the same chain norms at every lag (largest log difference "
        f"{same_chain:.1e})",
    )

    # both chains against finite differences of the simulation
    steps = 5
    errors = [
        finite_difference_chain(elman, p_elman, x[:steps, :1], "h"),
        finite_difference_chain(
            jordan,
            gf.init_params(jordan, sizes={**sizes, "k": n}, seed=0, scheme="orthogonal"),
            x[:steps, :1],
            "y",
        ),
    ]
    ex.check(
        max(errors) < 1e-7,
        f"C20: gradflow's chains ds(T)/ds(T-{steps}) of Elman (s = h) and Jordan (s = y) match central "
        f"differences of the simulation (relative errors {errors[0]:.1e}, {errors[1]:.1e})",
    )

    # the output layer scales Jordan's chain
    runs = {
        "Elman, $\\|W_h\\| = 1$": (
            gf.bound_vs_measured(elman, p_elman, x, chain=chain_e),
            gf.regime(elman, p_elman, x),
        )
    }
    found, holds = [], True
    for gain in OUTPUT_GAINS:
        params = gf.init_params(jordan, sizes={**sizes, "k": n}, seed=0, scheme="orthogonal")
        params["W_y"] = gain * params["W_y"]
        chain = gf.jacobian_chain(jordan, params, x)
        comparison = gf.bound_vs_measured(jordan, params, x, chain=chain)
        fitted = gf.regime(jordan, params, x)
        holds = holds and comparison.holds
        found.append((gain, fitted.rate, fitted.predicted_rate))
        runs[f"Jordan, $\\|W_h\\| = 1$, $\\|W_y\\| = {gain:g}$"] = (comparison, fitted)
    elman_rate = runs[next(iter(runs))][1].rate
    ex.check(
        all(a[1] < b[1] for a, b in itertools.pairwise(found))
        and all(abs(p - math.log(g)) < 1e-9 for g, _, p in found)
        and holds,
        "C20: the output layer scales Jordan's chain: with ||W_y||_2 = "
        + ", ".join(f"{g:g}: {math.exp(r):.3f}^k" for g, r, _ in found)
        + "; the bound gamma gamma_y ||W_h|| ||W_y|| per step ("
        + ", ".join(f"{math.exp(p):.3g}" for _, _, p in found)
        + ") holds at every lag (BoundComparison.holds)",
    )
    jordan_one = found[OUTPUT_GAINS.index(1.0)][1]
    ex.check(
        jordan_one < elman_rate,
        f"C20: with the same ||W_h||_2 = 1 and ||W_y||_2 = 1 Jordan's gradient decays faster than Elman's "
        f"({math.exp(jordan_one):.3f}^k against {math.exp(elman_rate):.3f}^k): each step back passes two "
        "tanh' factors, the hidden layer's and the output layer's",
    )
    ex.figure(
        gf.plot.chain_norms(
            runs,
            bounds=False,
            title=r"Elman's chain $\|\partial h^{(T)}/\partial h^{(T-k)}\|_2$ and Jordan's "
            r"$\|\partial y^{(T)}/\partial y^{(T-k)}\|_2$"
            f" (n = k = {n}, T = {T}, B = {B}, orthogonal weights, tanh layers)",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
