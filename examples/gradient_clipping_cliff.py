r"""The cliff of a one-unit recurrent network, and gradient clipping (seed 000 C5, seed 004 C21).

Pascanu, Mikolov and Bengio (2013, §3 and fig. 6), retold in *Deep Learning* §10.11.1, CS224n and
the Datawhale notes: the one-unit network

.. math:: h^{(t)} = w\,\sigma\bigl(h^{(t-1)}\bigr) + b, \qquad h^{(0)} = 0.5,

trained so that :math:`h^{(T)}` reaches :math:`0.7`, has a loss
:math:`L = \tfrac12 (h^{(T)} - 0.7)^2` with plains cut by a **cliff**: for :math:`w > 4` the map
has two stable fixed points, and which one :math:`h^{(T)}` settles near depends on the side of the
unstable one that :math:`h^{(0)}` starts on -- the line :math:`b = 0.5 - w\,\sigma(0.5)`. Near it the
chain :math:`\partial h^{(T)}/\partial h^{(0)} = \prod_t w\,\sigma'(h^{(t-1)})` explodes, so does the
gradient, and one gradient step throws the parameters far away. **Clipping** (Pascanu et al.'s
algorithm 1) rescales the gradient :math:`g = \partial L/\partial(w, b)` to the norm
:math:`\theta` when it is longer:

.. math::
    \hat g = \begin{cases} \dfrac{\theta}{\lVert g\rVert}\, g & \lVert g\rVert > \theta \\
    g & \text{otherwise} \end{cases},
    \qquad \lVert\Delta(w, b)\rVert = \eta\,\lVert\hat g\rVert \le \eta\,\theta .

gradflow derives the step Jacobian, the adjoint recursion and the gradients from the cell's one
equation (a ``gf.Cell`` with a zero input), draws the surface with ``gf.numeric.loss_surface``,
and follows gradient descent with ``gf.numeric.gradient_descent`` (gradients from ``gf.bptt``,
clipped by its ``clip_norm``). The script checks that the surface has a cliff on the predicted
line, that unclipped steps near it are huge and clipped ones never exceed :math:`\eta\theta`, and
the gradient against central differences.

Run it::

    python examples/gradient_clipping_cliff.py            # a 71 x 71 grid
    python examples/gradient_clipping_cliff.py --quick    # a 29 x 29 grid
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from _example import Example, Step

import gradflow as gf
from gradflow.cells import t
from gradflow.symbolic.nodes import Norm, Partial

PASCANU = (
    "R. Pascanu, T. Mikolov, Y. Bengio, On the difficulty of training recurrent neural networks, ICML 2013."
)
GOODFELLOW = "I. Goodfellow, Y. Bengio, A. Courville, Deep Learning, MIT Press 2016, section 10.11.1."

#: Pascanu, Mikolov and Bengio's one-unit network h(t) = w sigma(h(t-1)) + b; its input is zero.
CLIFF = gf.Cell(
    "pascanu_cliff",
    states={"h": 1},
    inputs={"x": 1},
    params={"w": (), "b": ()},
    updates={"h": "w * sigmoid(h) + b + x"},
    description="Pascanu et al.'s one-unit network; the input x is zero.",
)

T = 20  # steps: long enough for a sharp cliff, short enough that its wall has a width a step can land on
TARGET, START_STATE = 0.7, 0.5
LEARNING_RATE, THRESHOLD, STEPS = 0.05, 5.0, 40
W0 = 6.0
B0 = 0.5 - W0 / (1 + math.exp(-0.5)) + 1.0  # 1 above the cliff's line, on the slope that leads down to it


def formulas(ex: Example) -> None:
    """The cell, its step Jacobian and chain, the adjoint recursion, the gradients, the clipping rule."""
    h = CLIFF.signal("h", t)
    i, j = sp.symbols("i j", integer=True)
    g, g_hat, delta = (sp.MatrixSymbol(name, 2, 1) for name in ("g", "g_clipped", "Delta"))
    theta, eta = sp.Symbol("theta", positive=True), sp.Symbol("eta", positive=True)
    steps = [
        Step(
            "Cell",
            sp.Eq(h, CLIFF.updates["h"], evaluate=False),
            "The one-unit network (w, b scalars); its input x is 0.",
            PASCANU,
        ),
        Step(
            "Step Jacobian",
            sp.Eq(
                Partial(h, CLIFF.signal("h", t - 1)), gf.symbolic.step_jacobian(CLIFF, "h"), evaluate=False
            ),
            "Derived by gradflow: the factor that explodes where |w sigma'(h)| > 1.",
            PASCANU,
        ),
        Step(
            "Chain",
            sp.Eq(
                Partial(CLIFF.signal("h", i), CLIFF.signal("h", j)),
                gf.symbolic.chain(CLIFF, i, j),
                evaluate=False,
            ),
            "Near the unstable fixed point every factor exceeds 1: the chain, and the gradient, explode.",
            PASCANU,
        ),
        *(
            Step(
                "Adjoint",
                equation,
                "With L = (h(T) - y)^2 / 2 the direct gradient is h(T) - y at t = T and 0 before.",
                PASCANU,
            )
            for equation in gf.symbolic.adjoint_recursion(CLIFF)
        ),
        *(
            Step("Gradient", gf.symbolic.parameter_gradient(CLIFF, name), f"The gradient of {name}.", PASCANU)
            for name in ("w", "b")
        ),
        Step(
            "Clipping",
            sp.Eq(g_hat, sp.Piecewise((theta / Norm(g) * g, Norm(g) > theta), (g, True)), evaluate=False),
            "Algorithm 1 of Pascanu et al.: g = dL/d(w, b) rescaled to the norm theta when it is longer "
            "(gf.bptt(..., clip_norm=theta)).",
            PASCANU,
        ),
        Step(
            "Clipping",
            sp.Eq(delta, -eta * g_hat, evaluate=False),
            "The step of gradient descent with learning rate eta.",
            GOODFELLOW,
        ),
        Step(
            "Clipping",
            sp.Le(Norm(delta), eta * theta, evaluate=False),
            "So no clipped step is longer than eta theta, however steep the cliff.",
            GOODFELLOW,
        ),
    ]
    ex.formulas("The cliff and gradient clipping (seed 000 C5, seed 004 C21)", steps, [PASCANU, GOODFELLOW])


def loss_and_gradient(params: dict, x: np.ndarray, h0: dict) -> tuple[float, gf.numeric.Gradients]:
    """L and gf.bptt's gradient at one point (the loss reads the last state only)."""
    trajectory = gf.simulate(CLIFF, params, x, h0)
    loss, last = gf.numeric.squared_error(trajectory, "h", TARGET)
    upstream = np.zeros((x.shape[0], 1, 1))
    upstream[-1] = np.asarray(last)
    return loss, gf.bptt(CLIFF, params, x, {"h": upstream}, initial=h0)


def main() -> None:
    ex = Example(
        "gradient_clipping_cliff",
        "C5 (seed 000), C21 (seed 004)",
        "The loss surface of Pascanu's one-unit network x_t = w sigma(x_(t-1)) + b has a cliff; unclipped "
        "gradient steps near it are huge and throw the parameters away; clipping the gradient's norm to theta "
        "keeps every step within eta theta.",
    )
    formulas(ex)
    x = np.zeros((T, 1, 1))
    h0 = {"h": np.full((1, 1), START_STATE)}

    # 1. the surface and its cliff
    points = ex.size(71, 29)
    ws, bs = np.linspace(2.0, 9.0, points), np.linspace(-6.0, 1.0, points)
    start = {"w": np.array(W0), "b": np.array(B0)}
    surface = gf.numeric.loss_surface(CLIFF, start, x, TARGET, {"w": ws, "b": bs}, initial=h0)
    loss = np.asarray(surface.loss)
    across_b = np.abs(np.diff(loss, axis=0))  # L(w_i, b_(j+1)) - L(w_i, b_j): steps up each column
    typical = float(np.median(across_b))
    # a cliff is a jump, not a slope: compare the largest step with the steps just below and above it
    r, c = np.unravel_index(int(np.argmax(across_b)), across_b.shape)
    biggest = float(across_b[r, c])
    beside = float(max(across_b[max(r - 1, 0), c], across_b[min(r + 1, across_b.shape[0] - 1), c]))
    # where the big steps are; the predicted line b = 0.5 - w sigma(0.5)
    line = 0.5 - ws / (1 + math.exp(-0.5))
    step_b = bs[1] - bs[0]
    rows, cols = np.nonzero(across_b > 5 * typical)
    off_line = [abs((bs[j] + bs[j + 1]) / 2 - line[i]) for j, i in zip(rows, cols, strict=True)]
    print(
        f"loss surface over a {points} x {points} grid, w in [2, 9], b in [-6, 1], T = {T}: steps of L between "
        f"neighbours along b: median {typical:.3g}, largest {biggest:.3g} (at w = {ws[c]:.2f}, b = {bs[r]:.2f} "
        f"-> {bs[r + 1]:.2f}), the steps beside it at most {beside:.3g}"
    )
    ex.check(
        biggest > 5 * typical and biggest > 5 * beside,
        f"C5/C21: the surface has a cliff: L jumps by {biggest:.3g} between neighbouring grid points, "
        f"{biggest / typical:.0f} times the median step ({typical:.3g}) and {biggest / beside:.0f} times the "
        f"steps just beside it ({beside:.3g}): a wall, not a slope",
    )
    ex.check(
        len(off_line) > 0 and max(off_line) <= step_b,
        f"the cliff lies where h(0) = 0.5 is the unstable fixed point, b = 0.5 - w sigma(0.5): all {len(off_line)} "
        f"steps above 5 times the median sit within one grid step ({step_b:.3g}) of that line "
        f"(farthest {max(off_line, default=math.nan):.3g})",
    )

    # 2. the gradient at the start, against central differences
    _, start_grads = loss_and_gradient(start, x, h0)
    eps, fd = 1e-6, []
    for name in ("w", "b"):
        up = loss_and_gradient({**start, name: start[name] + eps}, x, h0)[0]
        down = loss_and_gradient({**start, name: start[name] - eps}, x, h0)[0]
        fd.append((up - down) / (2 * eps))
    ours = np.array([float(start_grads["w"]), float(start_grads["b"])])
    fd_error = float(np.max(np.abs(ours - fd)) / np.max(np.abs(fd)))
    ex.check(
        fd_error < 1e-6,
        f"gf.bptt's gradient (dL/dw, dL/db) = ({ours[0]:.4f}, {ours[1]:.4f}) at the start (w, b) = ({W0:g}, "
        f"{B0:.3f}) equals central differences (relative error {fd_error:.1e})",
    )

    # 3. gradient descent, without and with clipping
    settings = {"train": ["w", "b"], "learning_rate": LEARNING_RATE, "steps": STEPS, "initial": h0}
    plain = gf.numeric.gradient_descent(CLIFF, start, x, TARGET, **settings)
    clipped = gf.numeric.gradient_descent(CLIFF, start, x, TARGET, clip_norm=THRESHOLD, **settings)
    plain_steps = np.linalg.norm(np.diff(np.asarray(plain.params), axis=0), axis=1)
    clipped_steps = np.linalg.norm(np.diff(np.asarray(clipped.params), axis=0), axis=1)
    worst = int(np.argmax(plain_steps))
    thrown = dict(zip(("w", "b"), np.asarray(plain.params)[worst], strict=True))
    chain = gf.jacobian_chain(CLIFF, {k: np.array(v) for k, v in thrown.items()}, x, h0)
    calm = gf.jacobian_chain(CLIFF, start, x, h0)
    print(
        f"descent from (w, b) = ({W0:g}, {B0:.3f}), learning rate eta = {LEARNING_RATE:g}, {STEPS} steps; "
        f"clip_norm theta = {THRESHOLD:g}"
    )
    print(
        f"  no clipping: median step {np.median(plain_steps):.3g}, largest {plain_steps[worst]:.3g} (step "
        f"{worst + 1}, |g| = {float(plain.gradient_norm[worst]):.3g}); loss {plain.loss[0]:.3g} -> {plain.loss[-1]:.3g}, "
        f"ends at (w, b) = ({plain.params[-1][0]:.2f}, {plain.params[-1][1]:.2f})"
    )
    print(
        f"  clipped:     largest step {clipped_steps.max():.3g}, {int(np.sum(clipped.clipped))} of {STEPS} steps "
        f"clipped; loss {clipped.loss[0]:.3g} -> {clipped.loss[-1]:.3g}, ends at (w, b) = "
        f"({clipped.params[-1][0]:.2f}, {clipped.params[-1][1]:.2f})"
    )
    chain_there, chain_start = (
        math.exp(float(chain.log_spectral[-1, 0])),
        math.exp(float(calm.log_spectral[-1, 0])),
    )
    ex.check(
        plain_steps[worst] > 50 * np.median(plain_steps) and chain_there > 100 * chain_start,
        f"C5: near the cliff an unclipped step is huge: {plain_steps[worst]:.3g}, {plain_steps[worst] / np.median(plain_steps):.0f} "
        f"times the median step, because |g| = {float(plain.gradient_norm[worst]):.3g} there; the chain "
        f"|dh(T)/dh(0)| = prod w sigma'(h) is {chain_there:.3g} at that point against {chain_start:.3g} at the start",
    )
    ex.check(
        bool(np.all(clipped_steps <= LEARNING_RATE * THRESHOLD * (1 + 1e-12)))
        and bool(np.any(clipped.clipped)),
        f"C5: no clipped step exceeds eta theta = {LEARNING_RATE * THRESHOLD:g}: the largest is {clipped_steps.max():.6g} "
        f"({int(np.sum(clipped.clipped))} of {STEPS} steps were rescaled, at gradient norms up to "
        f"{float(np.max(clipped.gradient_norm)):.3g})",
    )
    inside = lambda p: 2.0 <= p[0] <= 9.0 and -6.0 <= p[1] <= 1.0  # noqa: E731  (the drawn region)
    plain_end, clipped_end = np.asarray(plain.params)[-1], np.asarray(clipped.params)[-1]
    ex.check(
        not inside(plain_end) and inside(clipped_end) and clipped.loss[-1] < 0.25 * clipped.loss[0],
        f"the unclipped descent is thrown off the map, to (w, b) = ({plain_end[0]:.2f}, {plain_end[1]:.2f}), "
        f"{float(np.linalg.norm(plain_end - [W0, B0])):.3g} from its start; the clipped one stays and keeps "
        f"descending, loss {clipped.loss[0]:.3g} -> {clipped.loss[-1]:.3g}",
    )
    print()
    ex.figure(
        gf.plot.cliff(
            surface,
            {"no clipping": plain, f"clip_norm = {THRESHOLD:g}": clipped},
            title=rf"The cliff of $h^{{(t)}} = w\,\sigma(h^{{(t-1)}}) + b$ ($h^{{(0)}} = {START_STATE}$, target "
            rf"$h^{{({T})}} = {TARGET}$)"
            + f"\ngradient descent with eta = {LEARNING_RATE:g}, {STEPS} steps, with and without clipping",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
