r"""The Elman cell and its structured step Jacobian (seed 000, claims C1 and C2).

CS224n writes the Elman (simple) recurrent network as

.. math:: h^{(t)} = \sigma\bigl(W_h h^{(t-1)} + W_x x^{(t)} + b_1\bigr)

and its step Jacobian, in numerator layout, as

.. math::
    \frac{\partial h^{(t)}}{\partial h^{(t-1)}}
    = \operatorname{diag}\bigl(\sigma'(W_h h^{(t-1)} + W_x x^{(t)} + b_1)\bigr)\, W_h ,

the factor every chain :math:`\partial h^{(i)}/\partial h^{(j)}` is a product of (gradflow calls
the bias :math:`b`). gradflow derives the structured form from the cell's one equation, and this
script checks it three ways:

* symbolically: expanded into components at small sizes (explicit mode), the structured
  Jacobian equals sympy's own componentwise differentiation of the expanded step, exactly
  (the simplified difference is 0), for several activations;
* numerically: the compiled kernels' step Jacobian equals the hand formula
  :math:`\operatorname{diag}(\sigma'(z))W_h` evaluated with NumPy on the simulated states, the chain
  :math:`\partial h^{(T)}/\partial h^{(0)}` equals the product of those hand-made factors and
  central finite differences of the forward pass, and ``gf.numeric.check_cell`` passes its
  referees (sympy componentwise, forward step, gradients and chain against finite differences);
* in a figure: the unrolled graph, whose edges :math:`h^{(t-1)} \to h^{(t)}` carry the step
  Jacobian, beside the norms of the chain for three activations with the same :math:`W_h`
  (the factor :math:`\operatorname{diag}\sigma'` alone sets them apart).

Run it::

    python examples/elman_step_jacobian.py            # n = 32, T = 50; five activations symbolically
    python examples/elman_step_jacobian.py --quick    # n = 8, T = 20; three activations
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells import t
from gradflow.symbolic import explicit, explicit_step, step_jacobian
from gradflow.symbolic.nodes import Partial

CS224N = "Stanford CS224n, lecture 7: vanishing gradients and fancy RNNs."
i, j = sp.symbols("i j", integer=True)


def formulas(ex: Example) -> None:
    """The cell, its structured step Jacobian, the same in components (n = 2), and the chain."""
    generic, tanh = gf.cells.elman("sigma"), gf.cells.elman()
    small = gf.cells.elman(n=2, m=1)
    link = Partial(generic.signal("h", t), generic.signal("h", t - 1))
    step = explicit_step(small)
    # the components, with the net input z^(t) = W_h h^(t-1) + W_x x^(t) + b named, so that they fit a line
    net = explicit(small.updates["h"].arg, small, step)
    z = sp.MatrixSymbol("z", 2, 1)
    components = explicit(step_jacobian(small, "h"), small, step).xreplace({net[k]: z[k] for k in range(2)})
    steps = [
        Step(
            "Cell",
            sp.Eq(generic.signal("h", t), generic.updates["h"], evaluate=False),
            "C1: the Elman RNN.",
            CS224N,
        ),
        Step(
            "Step Jacobian",
            sp.Eq(link, step_jacobian(generic, "h"), evaluate=False),
            "C2, derived by gradflow from the equation above (numerator layout: rows are components of h(t)).",
            CS224N,
        ),
        Step(
            "Step Jacobian",
            sp.Eq(link, step_jacobian(tanh, "h"), evaluate=False),
            "For tanh, sigma' = tanh' = 1 - tanh^2.",
            CS224N,
        ),
        Step(
            "Explicit mode",
            sp.Eq(Partial(small.signal("h", t), small.signal("h", t - 1)), components, evaluate=False),
            "The same for n = 2, m = 1, expanded into components (z = W_h h(t-1) + W_x x(t) + b): row i is "
            "tanh'(z_i) times row i of W_h, which is what sympy's componentwise differentiation gives.",
        ),
        Step(
            "Chain",
            sp.Eq(
                Partial(generic.signal("h", i), generic.signal("h", j)),
                gf.symbolic.chain(generic, i, j),
                evaluate=False,
            ),
            "Every chain back through time is a product of these factors (C3).",
            CS224N,
        ),
        Step(
            "Chain",
            sp.Eq(
                Partial(generic.signal("h", 3), generic.signal("h", 1)),
                gf.symbolic.chain(generic, 3, 1).doit(),
                evaluate=False,
            ),
            "Two steps, multiplied out.",
        ),
    ]
    ex.formulas("The Elman cell and its step Jacobian (seed 000, C1 and C2)", steps, references=[CS224N])


def componentwise_difference(activation: str, n: int, m: int) -> sp.Matrix:
    """gradflow's structured step Jacobian minus sympy's componentwise one, simplified (0 if equal)."""
    cell = gf.cells.elman(activation, n=n, m=m)
    step = explicit_step(cell)
    ours = explicit(step_jacobian(cell, "h"), cell, step)
    # real symbols, so that sympy differentiates the piecewise activations (Abs, Heaviside)
    atoms = step[("state", "h")].atoms(MatrixElement) | ours.atoms(MatrixElement)
    real = {a: sp.Symbol(f"e{k}", real=True) for k, a in enumerate(sorted(atoms, key=str))}
    previous = [real[MatrixElement(cell.signal("h", t - 1), r, 0)] for r in range(n)]
    theirs = step[("state", "h")].xreplace(real).jacobian(previous)
    return (ours.xreplace(real) - theirs).applyfunc(sp.simplify)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main() -> None:
    ex = Example(
        "elman_step_jacobian",
        "C1, C2 (seed 000, CS224n lecture 7)",
        "The Elman cell h(t) = sigma(W_h h(t-1) + W_x x(t) + b) has the step Jacobian "
        "diag(sigma'(W_h h(t-1) + W_x x(t) + b)) W_h: gradflow's structured form equals sympy's "
        "componentwise differentiation, and the numeric chain built from it equals finite differences.",
    )
    formulas(ex)

    # 1. symbolically, against sympy's componentwise differentiation
    activations = ex.size(["tanh", "sigmoid", "relu", "softsign", "elu"], ["tanh", "sigmoid", "relu"])
    sizes = [(2, 1), (3, 2)]
    zero, entries = True, 0
    for activation in activations:
        for n, m in sizes if activation in ("tanh", "sigmoid") or not ex.quick else sizes[:1]:
            difference = componentwise_difference(activation, n, m)
            entries += n * n
            zero = zero and difference == sp.zeros(n, n)
    ex.check(
        zero,
        f"C2: diag(sigma'(W_h h + W_x x + b)) W_h equals sympy's componentwise dh_i(t)/dh_j(t-1) exactly "
        f"(simplified difference 0 in all {entries} entries) for sigma = {', '.join(activations)} at "
        f"n = 2 and 3",
    )

    # 2. numerically: the compiled kernels against a hand formula and central differences
    cell = gf.cells.elman()
    n, T, B, m = ex.size(32, 8), ex.size(50, 20), 2, 4
    params = gf.init_params(cell, sizes={"n": n, "m": m}, seed=0, scheme="orthogonal", gain=1.0)
    rng = np.random.default_rng(0)
    x = 0.5 * rng.normal(size=(T, B, m))
    h0 = 0.5 * rng.normal(size=(B, n))
    chain = gf.jacobian_chain(cell, params, x, {"h": h0}, full=True)
    h = np.asarray(gf.simulate(cell, params, x, {"h": h0})["h"])
    W_h, W_x, b = (np.asarray(params[k]) for k in ("W_h", "W_x", "b"))
    # the referee: diag(1 - tanh^2(z)) W_h at every step, by hand
    factors = []
    for step in range(1, T + 1):
        z = h[step - 1] @ W_h.T + x[step - 1] @ W_x.T + b
        factors.append((1 - np.tanh(z) ** 2)[:, :, None] * W_h[None])
    step_error = relative(np.asarray(chain.matrix(1)), factors[-1])
    product = np.broadcast_to(np.eye(n), (B, n, n))
    for factor in factors:
        product = factor @ product
    product_error = relative(np.asarray(chain.matrix(T)), product)
    print(f"tanh Elman cell, n = {n}, m = {m}, T = {T}, B = {B}, orthogonal W_h, inputs 0.5 N(0, 1)")
    print(f"  dh(T)/dh(T-1): kernels vs diag(1 - tanh^2(z)) W_h by hand, relative error {step_error:.1e}")
    print(
        f"  dh(T)/dh(0):   chain vs the product of the {T} hand factors, relative error {product_error:.1e}"
    )
    ex.check(
        step_error < 1e-12,
        f"C2 numerically: gradflow's compiled step Jacobian equals diag(tanh'(W_h h + W_x x + b)) W_h computed by "
        f"hand with NumPy on the simulated states (n = {n}; relative error {step_error:.1e})",
    )
    ex.check(
        product_error < 1e-10,
        f"the chain dh(T)/dh(0) is the product of the {T} step Jacobians (relative error {product_error:.1e})",
    )

    # central differences of the forward pass: d h(T) / d h(0), column by column
    eps = 1e-6
    differences = np.empty((B, n, n))
    for col in range(n):
        shift = np.zeros((B, n))
        shift[:, col] = eps
        up = np.asarray(gf.simulate(cell, params, x, {"h": h0 + shift})["h"])[-1]
        down = np.asarray(gf.simulate(cell, params, x, {"h": h0 - shift})["h"])[-1]
        differences[:, :, col] = (up - down) / (2 * eps)
    fd_error = relative(np.asarray(chain.matrix(T)), differences)
    print(f"  dh(T)/dh(0):   chain vs central differences (step {eps:g}), relative error {fd_error:.1e}")
    ex.check(
        fd_error < 1e-6,
        f"the numeric chain dh({T})/dh(0) equals central finite differences of the simulated forward pass "
        f"({n * n * B} entries; relative error {fd_error:.1e})",
    )

    checks = gf.numeric.check_cell(cell, {"n": 3, "m": 2}, T=6)
    print("gf.numeric.check_cell(elman, n = 3, m = 2, T = 6):")
    for found in checks:
        print(f"  {found.name:42} error {found.error:.1e} (tolerance {found.tolerance:g})  {found.note}")
    worst = {c.name: c.error for c in checks}
    ex.check(
        all(c.passed for c in checks),
        f"gradflow's referees pass: step Jacobians vs sympy componentwise (30 digits, error "
        f"{worst['step Jacobians vs sympy componentwise']:.1e}), gradients and chain vs central differences "
        f"(errors {worst['gradients vs central differences']:.1e} and "
        f"{worst['jacobian_chain vs central differences']:.1e})",
    )
    print()

    # 3. the figure: the unrolled graph, and the chains of three activations with the same W_h
    figure = Figure(figsize=(13.5, 4.8), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.35])
    gf.graph.draw(gf.unroll(cell, 3), left, font_size=8)
    row = len(cell.params) + len(cell.inputs)  # draw's rows, bottom up: parameters, inputs, then h
    for step in range(1, 4):
        left.annotate(
            f"$J^{{({step})}}$", xy=(step - 0.5, row), xytext=(0, 9), textcoords="offset points", ha="center"
        )
    left.text(
        2.0,
        0.6,
        "each edge $h^{(t-1)} \\to h^{(t)}$ carries\n"
        "$J^{(t)} = \\mathrm{diag}(\\sigma'(z^{(t)}))\\,W_h$,\n"
        "$z^{(t)} = W_h h^{(t-1)} + W_x x^{(t)} + b$",
        ha="center",
        va="center",
        fontsize=9,
    )
    left.set_title("C1: the Elman cell unrolled over 3 steps; C2 on its edges", fontsize=10)
    runs = {}
    for activation in ("tanh", "sigmoid", "relu"):
        other = gf.cells.elman(activation)
        series = gf.jacobian_chain(other, params, x)
        runs[activation] = (gf.bound_vs_measured(other, params, x, chain=series), gf.regime(other, params, x))
    gf.plot.chain_norms(
        runs,
        ax=right,
        title=rf"Chains of $\mathrm{{diag}}(\sigma')\,W_h$, one orthogonal $W_h$ (Elman, n = {n}, T = {T}, B = {B})",
    )
    ex.figure(figure)
    ex.finish()


if __name__ == "__main__":
    main()
