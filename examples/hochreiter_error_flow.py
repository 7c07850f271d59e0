r"""Hochreiter's local error flow, unit by unit, and the sum over paths (seed 002, claims C12 and C13).

Hochreiter (1991) and Hochreiter & Schmidhuber (1997, §3.1.1) follow the error of a fully recurrent
net unit by unit. With :math:`\mathrm{net}_i(t) = \sum_j w_{ij}\,y_j(t-1)` (:math:`w_{ij}`: the weight
*from unit j to unit i*; for gradflow's Elman cell :math:`w_{ij} = (W_h)_{ij}`) and
:math:`\vartheta_j(t) = \partial E/\partial\mathrm{net}_j(t)`, the local error flow is (C12)

.. math:: \vartheta_j(t) = f'_j(\mathrm{net}_j(t)) \sum_i w_{ij}\, \vartheta_i(t+1),

and going back :math:`q` steps from unit :math:`u` to unit :math:`v` the error is scaled by a sum
over all paths :math:`l_0 = u, l_1, \dots, l_q = v` (C13)

.. math::
    \frac{\partial\vartheta_v(t-q)}{\partial\vartheta_u(t)}
    = \sum_{l_1}\cdots\sum_{l_{q-1}} \prod_{m=1}^{q} f'_{l_m}(\mathrm{net}_{l_m}(t-m))\, w_{l_{m-1} l_m} ;

if every :math:`|f'_{l_m} w_{l_{m-1} l_m}| > 1` the error explodes, if every one is below 1 it
vanishes.

**Seed 002's weight subscripts.** The seed (after the 1997 paper's closed form) prints the factor
as :math:`f'_{l_m}(\mathrm{net}_{l_m}(t-m))\, w_{l_m l_{m-1}}`. With the paper's convention that is
the *forward* connection from :math:`l_{m-1}` to :math:`l_m`; it contradicts the seed's own
recursion and its own case :math:`q = 1`, :math:`f'_v(\mathrm{net}_v(t-1))\, w_{uv}`, as soon as
:math:`W_h` is not symmetric (the seed also says the error of unit u reaches "unit u" at
:math:`t - q`, where it means unit v). gradflow follows the recursion, :math:`w_{l_{m-1} l_m}`;
this script shows the difference on numbers.

The checks: gradflow's path sum equals the product of its structured step Jacobians exactly
(explicit mode, small sizes); applied to the error signal :math:`\vartheta(t)` that ``gf.bptt``
computes, it gives ``gf.bptt``'s :math:`\vartheta(t-q)`, while the seed's printed order does not;
and for a single unit :math:`|f'w|` below, at and above 1 vanishes, stays and explodes.

Run it::

    python examples/hochreiter_error_flow.py            # q up to 4, T = 200
    python examples/hochreiter_error_flow.py --quick    # q up to 3, T = 60
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from _example import Example, Step
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells import t
from gradflow.symbolic import explicit, explicit_step, step_jacobian
from gradflow.symbolic.hochreiter import (
    ErrorSignal,
    OpaqueDerivative,
    classify_scaling,
    error_flow_paths,
    scaling_factor,
)
from gradflow.symbolic.nodes import Partial

LSTM_1997 = "S. Hochreiter, J. Schmidhuber, Long short-term memory, Neural Computation 9(8):1735-1780, 1997."
SEED = "Seed 002: LSTM (1), the road of evolution (restating Hochreiter and Schmidhuber 1997)."


def swapped(cell: gf.Cell) -> dict:
    """W_h[i, j] -> W_h[j, i]: turns gradflow's w_(l(m-1) l(m)) into the seed's printed w_(l(m) l(m-1))."""
    w = cell.parameter("W_h")
    n = int(cell.states["h"])
    return {MatrixElement(w, i, j): MatrixElement(w, j, i) for i in range(n) for j in range(n)}


def formulas(ex: Example) -> None:
    """gradflow's classic (the units, the recursion, the paths, the scaling), then the seed's printed order."""
    classic = gf.export.hochreiter_cec()
    ours = [s for s in classic if s.title in ("Units", "Local error flow", "Paths", "Scaling")]
    u, v, m, q = sp.symbols("u v m q", integer=True)
    n = sp.Symbol("n", integer=True, positive=True)
    w, paths = sp.IndexedBase("w"), sp.IndexedBase("l")
    flow = Partial(ErrorSignal(v, t - q), ErrorSignal(u, t))
    printed = OpaqueDerivative(paths[m], t - m) * w[paths[m], paths[m - 1]]
    every_path = sp.Sum(sp.Product(printed, (m, 1, q)), (sp.Symbol(r"l_{1},\dots,l_{q-1}"), 0, n - 1))
    small = gf.cells.elman(gf.cells.activations.generic("f", "f"), n=2, m=1)
    seed_small = error_flow_paths(small, 0, 1, 2).xreplace(swapped(small))
    seed_steps = [
        Step(
            "Seed 002's order",
            sp.Eq(flow, every_path, evaluate=False),
            "As printed in seed 002: the weight w_(l_m l_(m-1)) is the connection from l_(m-1) to l_m, the "
            "forward direction; its own recursion and its case q = 1 (f'_v w_uv) give w_(l_(m-1) l_m).",
            SEED,
        ),
        Step(
            "Seed 002's order",
            sp.Eq(flow.xreplace({u: 0, v: 1, q: 2}), seed_small, evaluate=False),
            "The seed's order for two units, q = 2: W_h transposed against gradflow's path sum above; the two "
            "agree only for a symmetric W_h.",
            SEED,
        ),
    ]
    ex.formulas(
        "Hochreiter's local error flow and its sum over paths (seed 002, C12 and C13)",
        [*ours, *seed_steps],
        classic.references[:2],
    )


def product_matches_paths(n: int, q: int) -> bool:
    r"""Exactly: every path sum equals entry [v, u] of (W_h \prod J \operatorname{diag} f')^T, J gradflow's step Jacobian."""
    cell = gf.cells.elman(n=n, m=1)
    step = explicit_step(cell)
    jacobian = step_jacobian(cell, "h")  # diag(f'(net(t))) W_h
    diag, weights = jacobian.args
    # d net(t) / d net(t - q) = W_h dh(t-1)/dh(t-q) diag(f'(net(t-q))), its transpose maps vartheta(t) to vartheta(t-q)
    factors = [weights, *(jacobian.xreplace({t: t - s}) for s in range(1, q)), diag.xreplace({t: t - q})]
    matrix = explicit(sp.Transpose(sp.MatMul(*factors)), cell, step)
    return all(
        sp.expand(error_flow_paths(cell, u, v, q, opaque=False) - matrix[v, u]) == 0
        for u in range(n)
        for v in range(n)
    )


def path_matrix(
    cell: gf.Cell, sums: dict, q: int, slopes: np.ndarray, W: np.ndarray, seed_order: bool
) -> np.ndarray:
    """Entry [v, u] = the path sum from u at t back to v at t - q, at numbers (slopes[m, l] = f'_l(net_l(t - m))).

    ``sums[(u, v, q)]`` holds gradflow's ``error_flow_paths(cell, u, v, q)``.
    """
    n = W.shape[0]
    weights = {MatrixElement(cell.parameter("W_h"), i, j): W[i, j] for i in range(n) for j in range(n)}
    derivatives = {OpaqueDerivative(k, t - m): slopes[m, k] for k in range(n) for m in range(1, q + 1)}
    result = np.empty((n, n))
    for u in range(n):
        for v in range(n):
            expr = sums[(u, v, q)].xreplace(swapped(cell)) if seed_order else sums[(u, v, q)]
            result[v, u] = float(expr.xreplace(derivatives).xreplace(weights))
    return result


def main() -> None:
    ex = Example(
        "hochreiter_error_flow",
        "C12, C13 (seed 002, Hochreiter 1991; Hochreiter & Schmidhuber 1997)",
        "Hochreiter's error flow vartheta_j(t) = f'_j(net_j(t)) sum_i w_ij vartheta_i(t+1) and its sum over paths "
        "of prod f' w equal the product of step Jacobians and BPTT; |f'w| > 1 explodes, < 1 vanishes; seed 002's "
        "printed weight subscripts w_(l_m l_(m-1)) are swapped.",
    )
    formulas(ex)
    qmax = ex.size(4, 3)

    # 1. exactly: the path sum is the product of gradflow's structured step Jacobians
    cases = [(2, q) for q in range(1, qmax + 1)] + [(3, q) for q in ex.size((1, 2), (1,))]
    exact = all(product_matches_paths(n, q) for n, q in cases)
    ex.check(
        exact,
        "C13: gradflow's sum over paths of prod f'_(l_m) w_(l_(m-1) l_m) equals, entry by entry and exactly "
        "(sympy: expanded difference 0), the transposed product W_h dh(t-1)/dh(t-q) diag(f'(net(t-q))) of its "
        f"structured step Jacobians, for n = 2 (q = 1..{qmax}) and n = 3 (q = {', '.join(str(q) for k, q in cases if k == 3)})",
    )

    # 2. numerically: the error signals of gf.bptt, one unit layer of n = 3 tanh units
    n, T = 3, 8
    cell = gf.cells.elman(n=n, m=n)
    rng = np.random.default_rng(0)
    results = {}
    sums = {
        (u, v, q): error_flow_paths(cell, u, v, q)
        for u in range(n)
        for v in range(n)
        for q in range(1, qmax + 1)
    }
    for symmetric in (False, True):
        W = 0.9 * rng.normal(size=(n, n))
        W = (W + W.T) / 2 if symmetric else W
        params = gf.init_params(cell, seed=0, values={"W_h": W, "W_x": np.eye(n)})
        x = rng.normal(size=(T, 1, n))
        h = np.asarray(gf.simulate(cell, params, x)["h"])[:, 0]
        upstream = np.zeros((T, 1, n))
        upstream[-1, 0] = rng.normal(size=n)
        # with W_x = I, dE/dx(s) = W_x^T vartheta(s) = vartheta(s): Hochreiter's error signal at every step
        theta = np.asarray(gf.bptt(cell, params, x, {"h": upstream}).inputs["x"])[:, 0]
        slopes = (
            1 - h[T - np.arange(qmax + 1)] ** 2
        )  # slopes[m] = tanh'(net(T - m)) = 1 - h(T - m)^2 (referee)
        for q in range(1, qmax + 1):
            for seed_order in (False, True):
                predicted = path_matrix(cell, sums, q, slopes, W, seed_order) @ theta[T - 1]
                found = theta[T - 1 - q]
                results[(symmetric, q, seed_order)] = float(
                    np.max(np.abs(predicted - found)) / np.max(np.abs(found))
                )
    print(f"n = {n} tanh units, W_x = I, an error injected at t = T = {T}; relative error of the path sum's")
    print("vartheta(T - q) against gf.bptt's:")
    print(f"{'W_h':14} {'q':>3} {'gradflow (w_(l(m-1) l(m)))':>28} {'seed 002 (w_(l(m) l(m-1)))':>28}")
    for (symmetric, q, seed_order), error in results.items():
        if not seed_order:
            name = "symmetric" if symmetric else "non-symmetric"
            print(f"{name:14} {q:3d} {error:28.1e} {results[(symmetric, q, True)]:28.1e}")
    ours = max(e for (s, q, order), e in results.items() if not order)
    seed_off = min(e for (s, q, order), e in results.items() if order and not s)
    seed_sym = max(e for (s, q, order), e in results.items() if order and s)
    ex.check(
        ours < 1e-12,
        f"C12, C13: the path sum applied to gf.bptt's error signal vartheta(T) gives gf.bptt's vartheta(T - q) for "
        f"q = 1..{qmax}, symmetric or not (largest relative error {ours:.1e})",
    )
    ex.check(
        seed_off > 0.1 and seed_sym < 1e-12,
        f"seed 002's printed order w_(l_m l_(m-1)) is wrong for a non-symmetric W_h: it misses vartheta(T - q) by "
        f"at least {seed_off:.0%} (q = 1..{qmax}, even q = 1, where the seed's own case w_uv is right), and "
        f"agrees only when W_h is symmetric (error {seed_sym:.1e})",
    )

    # 3. a single unit: |f' w| below, at and above 1 (sigmoid unit at its fixed point h = 0.5, net = 0)
    T1 = ex.size(200, 60)
    unit = gf.cells.elman("sigmoid", n=1, m=1)
    factor = scaling_factor(unit, 0, 0, opaque=False)  # |f'(net(t-1)) w| at h(t-2), x(t-1)
    w_sym, b_sym = (MatrixElement(unit.parameter(k), 0, 0) for k in ("W_h", "b"))
    h_prev, x_now = MatrixElement(unit.signal("h", t - 2), 0, 0), MatrixElement(unit.signal("x", t - 1), 0, 0)
    runs, lines = {}, []
    zeros = np.zeros((T1, 1, 1))
    for w in (sp.Rational(18, 5), sp.Integer(4), sp.Rational(22, 5)):
        exact_factor = sp.nsimplify(
            factor.xreplace({w_sym: w, b_sym: -w / 2, h_prev: sp.Rational(1, 2), x_now: 0})
        )
        expected = classify_scaling(exact_factor)
        params = {"W_h": np.full((1, 1), float(w)), "W_x": np.ones((1, 1)), "b": np.full(1, -float(w) / 2)}
        h0 = {"h": np.full((1, 1), 0.5)}
        chain = gf.jacobian_chain(unit, params, zeros, h0)
        found = gf.regime(unit, params, zeros, h0)
        runs[rf"sigmoid unit at $h = 0.5$, $w = {float(w):g}$: $|f'w| = {float(exact_factor):g}$"] = (
            gf.bound_vs_measured(unit, params, zeros, h0, chain=chain),
            found,
        )
        lines.append((float(w), exact_factor, expected, found))
    for w, exact_factor, expected, found in lines:
        print(
            f"sigmoid unit, w = {w:g}, at h = 0.5: |f'w| = {exact_factor} ({expected}); measured rate "
            f"{found.rate:+.6f}, log|f'w| = {math.log(float(exact_factor)):+.6f} ({found.label})"
        )
    worst = max(abs(f.rate - math.log(float(e))) for _, e, _, f in lines)
    agree = [(exp, f.label) for _, _, exp, f in lines]
    ex.check(
        worst < 1e-12
        and agree == [("vanishing", "vanishing"), ("constant", "neutral"), ("exploding", "exploding")],
        "C13 for one unit: gradflow reads |f'w| = 9/10, 1, 11/10 (sigmoid, w = 3.6, 4, 4.4, at h = 0.5) as "
        "vanishing, constant, exploding (classify_scaling), and the chains measured over "
        f"{T1} steps vanish, stay, explode at exactly log|f'w| per step (largest deviation {worst:.1e})",
    )

    # a driven tanh unit: f' changes every step, and the chain is the product of Hochreiter's factors
    tanh_unit = gf.cells.elman(n=1, m=1)
    factor = scaling_factor(tanh_unit, 0, 0, opaque=False)
    symbols = [MatrixElement(tanh_unit.parameter(k), 0, 0) for k in ("W_h", "W_x", "b")]
    symbols += [
        MatrixElement(tanh_unit.signal("h", t - 2), 0, 0),
        MatrixElement(tanh_unit.signal("x", t - 1), 0, 0),
    ]
    dummies = sp.symbols("w u b h x", real=True)
    evaluate = sp.lambdify(dummies, factor.xreplace(dict(zip(symbols, dummies, strict=True))), "numpy")
    w, B = 1.2, 4
    params = {"W_h": np.full((1, 1), w), "W_x": np.ones((1, 1)), "b": np.zeros(1)}
    x = 0.3 * rng.normal(size=(T1, B, 1))
    h = np.asarray(gf.simulate(tanh_unit, params, x)["h"])[..., 0]
    factors = np.real(evaluate(w, 1.0, 0.0, h[:-1], x[..., 0]))  # step s: f'(net(s)) w with h(s-1), x(s)
    chain = gf.jacobian_chain(tanh_unit, params, x)
    from_factors = np.concatenate([np.zeros((1, B)), np.cumsum(np.log(factors[::-1]), axis=0)])
    gap = float(np.max(np.abs(np.asarray(chain.log_spectral) - from_factors)))
    found = gf.regime(tanh_unit, params, x)
    above = float(np.mean(factors > 1))
    runs[rf"tanh unit, $w = {w:g}$, driven: $|f'w|$ above 1 at {above:.0%} of the steps"] = (
        gf.bound_vs_measured(tanh_unit, params, x, chain=chain),
        found,
    )
    mean_log = float(np.mean(np.log(factors)))
    print(
        f"tanh unit, w = {w:g}, inputs 0.3 N(0, 1): |f'w| > 1 at {above:.0%} of the steps, mean log|f'w| = "
        f"{mean_log:+.4f}; measured rate {found.rate:+.4f} ({found.label})"
    )
    ex.check(
        gap < 1e-10 and 0 < above < 1 and found.label == ("vanishing" if mean_log < 0 else "exploding"),
        f"C13 for one driven unit: log|dh(T)/dh(T-k)| is the sum of gradflow's log|f'(net) w| over the k steps at "
        f"every lag (largest difference {gap:.1e}); with |f'w| > 1 at only {above:.0%} of the steps, the mean "
        f"{mean_log:+.3f} decides: {found.label}",
    )
    print()
    ex.figure(
        gf.plot.chain_norms(
            runs,
            title=rf"Hochreiter's scaling $|f'(\mathrm{{net}})\,w|$ for one unit: below, at and above 1 (T = {T1})",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
