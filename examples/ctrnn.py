r"""The continuous-time RNN: a small Euler step Δt/τ slows the decay of the gradient (seed 004, claim C24).

A continuous-time RNN (Funahashi and Nakamura 1993; Beer 1995) evolves as
:math:`\tau\,\dot h = -h + W_h \sigma(h) + W_x x + b`; one forward-Euler step of length
:math:`\Delta t` is gradflow's ``ctrnn`` cell,

.. math::
    h^{(t)} = h^{(t-1)} + \frac{\Delta t}{\tau}\bigl(-h^{(t-1)} + W_h \sigma(h^{(t-1)}) + W_x x^{(t)} + b\bigr),
    \qquad
    \frac{\partial h^{(t)}}{\partial h^{(t-1)}}
      = \Bigl(1 - \frac{\Delta t}{\tau}\Bigr) I + \frac{\Delta t}{\tau}\, W_h \operatorname{diag}(\sigma'(h^{(t-1)})).

With :math:`a = \Delta t/\tau` the step Jacobian is a convex mixture of the identity and the
discrete RNN's :math:`W_h \operatorname{diag}(\sigma')`: :math:`a = 1` is the discrete network,
:math:`a \to 0` the identity. So the gradient decays per *step* at a rate proportional to
:math:`a` -- it decays at the same rate per unit of *time* :math:`\tau`, and a fine step spreads
that decay over many more steps -- and for :math:`a \le 1` every step contracts by at most
:math:`(1 - a) + a\,\gamma\lVert W_h\rVert_2`.

gradflow derives the Jacobian from the cell, then measures :math:`\lVert\partial h^{(T)}/\partial
h^{(T-k)}\rVert_2` for several :math:`a` with a contracting :math:`W_h` (orthogonal, gain 0.5).

Run it::

    python examples/ctrnn.py            # n = 32, T = 300
    python examples/ctrnn.py --quick    # n = 12, T = 100
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

FUNAHASHI = (
    "K. Funahashi, Y. Nakamura, Approximation of dynamical systems by continuous time recurrent neural "
    "networks, Neural Networks 6, 1993."
)
#: The Euler steps a = dt/tau; the continuous-time limit is a -> 0.
STEPS = (1.0, 0.5, 0.2, 0.1, 0.05)
GAIN = 0.5


def formulas(cell: gf.Cell) -> list[Step]:
    """The cell, its step Jacobian, and the two ends a = 1 (the discrete RNN) and a = 0 (the identity)."""
    jacobian = gf.symbolic.step_jacobian(cell, "h")
    partial = Partial(cell.signal("h", t), cell.signal("h", t - 1))
    dt, tau = cell.parameter("dt"), cell.parameter("tau")
    return [
        Step(
            "Continuous-time RNN",
            sp.Eq(cell.signal("h", t), cell.updates["h"], evaluate=False),
            "One forward-Euler step of τ dh/dt = −h + W σ(h) + U x + b, of length Δt.",
            FUNAHASHI,
        ),
        Step(
            "Step Jacobian",
            sp.Eq(partial, jacobian, evaluate=False),
            "gradflow's step Jacobian, I + (Δt/τ)(−I + W diag σ′) = (1 − Δt/τ) I + (Δt/τ) W diag σ′: a mixture of "
            "the identity and the discrete network's step Jacobian.",
            FUNAHASHI,
        ),
        Step(
            "Step Jacobian",
            sp.Eq(partial, jacobian.xreplace({dt: tau}).doit(), evaluate=False),
            "With Δt = τ the step is the discrete network h = W σ(h) + U x + b.",
            "",
        ),
        Step(
            "Step Jacobian",
            sp.Eq(partial, jacobian.xreplace({dt: 0}).doit(), evaluate=False),
            "As Δt → 0 the step Jacobian tends to the identity: each step forgets less.",
            "",
        ),
    ]


def main() -> None:
    ex = Example(
        "ctrnn",
        "C24 (seed 004, other variants)",
        "The CTRNN's step Jacobian is (1 - dt/tau) I + (dt/tau) W_h diag(sigma'); a small Euler step dt/tau "
        "slows the decay of the gradient per step in proportion, and the chain bound holds.",
    )
    cell = gf.cells.ctrnn()
    ex.formulas(
        "The continuous-time RNN: the step Jacobian of a forward-Euler step",
        formulas(cell),
        references=(
            FUNAHASHI,
            "R. D. Beer, On the dynamics of small continuous-time recurrent neural networks, Adaptive Behavior 3(4), 1995.",
        ),
    )

    jacobian = gf.symbolic.step_jacobian(cell, "h")
    dt, tau, W_h = cell.parameter("dt"), cell.parameter("tau"), cell.parameter("W_h")
    n_sym = cell.states["h"]
    ends = (jacobian.xreplace({dt: 0}).doit(), jacobian.xreplace({dt: tau}).doit())
    ex.check(
        ends[0] == sp.Identity(n_sym) and W_h in ends[1].args and len(ends[1].args) == 2,
        "C24: gradflow's step Jacobian of the CTRNN is the identity at dt = 0 and W_h diag(tanh'(h)) "
        f"(the discrete network's) at dt = tau: {gf.export.to_text(ends[1])}",
    )

    n, m, T, B = ex.size(32, 12), 4, ex.size(300, 100), ex.size(4, 2)
    sizes = {"n": n, "m": m}
    x = np.random.default_rng(0).normal(size=(T, B, m))
    print(
        f"CTRNN, n = {n}, m = {m}, T = {T}, B = {B}, orthogonal W_h of gain {GAIN}, tau = 1, inputs N(0, 1)"
    )
    print(f"{'dt/tau':>8} {'rate/step':>10} {'rate/a':>8} {'referee':>9}")
    runs, found, referee_holds, bound_holds = {}, [], True, True
    for a in STEPS:
        params = gf.init_params(
            cell, sizes=sizes, seed=0, scheme="orthogonal", gain=GAIN, values={"dt": a, "tau": 1.0}
        )
        chain = gf.jacobian_chain(cell, params, x)
        bound_holds = bound_holds and gf.bound_vs_measured(cell, params, x, chain=chain).holds
        logs = np.asarray(chain.log_spectral)
        rate = float(np.polyfit(np.arange(1, T + 1), np.median(logs, axis=1)[1:], 1)[0])
        # independent referee: each step contracts by at most (1 - a) + a * gamma * ||W_h||_2 (gamma = 1)
        contraction = math.log(1 - a + a * float(np.linalg.norm(params["W_h"], 2)))
        referee_holds = referee_holds and bool(np.all(logs <= np.arange(T + 1)[:, None] * contraction + 1e-9))
        found.append((a, rate, contraction))
        print(f"{a:8g} {rate:+10.4f} {rate / a:+8.4f} {contraction:+9.4f}")
        runs[rf"$\Delta t/\tau = {a:g}$: ${math.exp(rate):.4f}^k$"] = chain
    print()

    fine = [(a, r) for a, r, _ in found if a <= 0.2]
    per_time = [r / a for a, r in fine]
    ex.check(
        all(p[1] < q[1] for p, q in itertools.pairwise(found))
        and max(per_time) - min(per_time) <= 0.1 * abs(per_time[-1]),
        "C24: the smaller dt/tau, the slower the gradient decays per step: "
        + ", ".join(f"{a:g}: {math.exp(r):.4f}^k" for a, r, _ in found)
        + f"; in proportion to dt/tau (for dt/tau <= 0.2 the rate per unit of tau is {min(per_time):.3f} "
        f"to {max(per_time):.3f} in natural log: the same decay in time, spread over 1/(dt/tau) steps)",
    )
    last = {  # ||dh(T)/dh(0)||_2, batch median
        a: math.exp(float(np.median(np.asarray(chain.log_spectral)[-1])))
        for a, chain in zip(STEPS, runs.values(), strict=True)
    }
    ex.check(
        referee_holds and last[STEPS[-1]] > 1e3 * last[STEPS[0]],
        f"C24: every step contracts by at most (1 - dt/tau) + (dt/tau) ||W_h||_2 (an independent referee bound, "
        f"checked at every lag); ||dh(T)/dh(0)||_2 over T = {T} steps is {last[STEPS[-1]]:.3g} at dt/tau = "
        f"{STEPS[-1]:g} and {last[STEPS[0]]:.3g} at dt/tau = 1",
    )
    ex.check(
        bound_holds,
        f"gradflow's chain bound of the CTRNN holds at every lag for every dt/tau ({len(STEPS)} simulations, "
        "BoundComparison.holds)",
    )
    ex.figure(
        gf.plot.chain_norms(
            runs,
            title=r"CTRNN chains $\|\partial h^{(T)}/\partial h^{(T-k)}\|_2$ for several Euler steps "
            rf"$\Delta t/\tau$ (n = {n}, T = {T}, B = {B}, orthogonal $W_h$ of gain {GAIN})",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
