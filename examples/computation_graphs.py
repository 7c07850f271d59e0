r"""The chain rule on the unrolled computation graph, and BPTT as a sum over time (seed 004, C19 and C21).

The Datawhale notes (after Li Hongyi's lecture) derive gradients on a computation graph with the
chain rule in two cases: along a **chain** :math:`x \to y \to z` the derivatives multiply,
:math:`dz/dx = (dz/dy)(dy/dx)`; where the graph **branches**, :math:`s \to x \to z` and
:math:`s \to y \to z`, the paths add up. So on any graph

.. math::
    \frac{\partial a}{\partial b} = \sum_{\text{paths } b \leadsto a}\ \prod_{(u \to v)}
    \frac{\partial v}{\partial u} .

Backpropagation through time is this rule on the unrolled recurrent network: the total loss is
:math:`L = \sum_t E^{(t)}`, so the gradient of every parameter is the sum of the gradients of the
:math:`E^{(t)}`; a parameter is *one* node of the graph with an edge into every step, so its
gradient is also a sum over those time edges,

.. math::
    \frac{\partial L}{\partial W_h} = \sum_{t=1}^{T}
    \Bigl(\frac{\partial^{+} h^{(t)}}{\partial W_h}\Bigr)^{\!\top} \delta^{(t)},
    \qquad \delta^{(t)} = \frac{\partial^{+} L}{\partial h^{(t)}}
    + \Bigl(\frac{\partial h^{(t+1)}}{\partial h^{(t)}}\Bigr)^{\!\top} \delta^{(t+1)},

and :math:`h^{(t-1)}` may not be treated as a constant: its own dependence on :math:`W_h` reaches
back to :math:`t = 0` (the notes' warning).

gradflow unrolls the cell into a networkx graph whose edges carry their local Jacobians; this
script counts the paths, multiplies the edges' Jacobians along every path (evaluated at simulated
numbers) and sums them, and checks the result and ``gf.bptt`` against central finite
differences.

Run it::

    python examples/computation_graphs.py            # n = 4, T = 12
    python examples/computation_graphs.py --quick    # n = 3, T = 5
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells import Signal, t
from gradflow.symbolic import explicit, explicit_step
from gradflow.symbolic.nodes import Adjoint, MatSum, Partial

DATAWHALE = "Datawhale notes on RNN and LSTM (after Li Hongyi's lectures): computation graphs and BPTT."
EPS = 1e-6


def formulas(ex: Example, T: int) -> None:
    """The chain, the branches, the total loss and the gradient as a sum over time edges."""
    elman, skip = gf.cells.elman(), gf.cells.skip(delay=2)
    length = sp.Symbol("T", integer=True, positive=True)
    gradient = gf.symbolic.parameter_gradient(elman, "W_h")
    small = gf.symbolic.parameter_gradient(elman, "W_h", gf.Full(), length=3, expand_adjoint=True)
    steps = [
        Step(
            "Chain",
            sp.Eq(Partial(elman.signal("h", 3), elman.signal("h", 0)), gf.symbolic.chain(elman, 3, 0).doit()),
            "Case 1, a chain: the Elman graph has one path from h(0) to h(3), and the derivative is the product "
            "of its edges' Jacobians.",
            DATAWHALE,
        ),
        Step(
            "Branches",
            sp.Eq(
                Partial(skip.signal("h", 3), skip.signal("h", 0)),
                gf.symbolic.chain(skip, 3, 0).doit().expand(),
            ),
            "Case 2, branches: with a skip connection h(t-2) -> h(t) there are three paths from h(0) to h(3) "
            "(steps 1+1+1, 1+2, 2+1), and the derivative is the sum of their products.",
            DATAWHALE,
        ),
        Step(
            "Total loss",
            sp.Eq(sp.Symbol("L"), MatSum(Signal("E", 1, t, "output"), (t, 1, length)), evaluate=False),
            "C21: the loss of the sequence is the sum of the losses of its steps, so every gradient is the sum "
            "of theirs.",
            DATAWHALE,
        ),
        *(
            Step(
                "Adjoint",
                equation,
                "The gradient reaching h(t): its own loss term plus what step t+1 sends back; h(t-1) is "
                "not a constant.",
                DATAWHALE,
            )
            for equation in gf.symbolic.adjoint_recursion(elman)
        ),
        Step(
            "Parameter gradient",
            gradient,
            "W_h is one node of the graph with an edge into every step: its gradient is a sum over those "
            "time edges.",
            DATAWHALE,
        ),
        Step(
            "Parameter gradient",
            sp.Eq(gradient.lhs, small.rhs.doit(), evaluate=False),
            "For T = 3, written out: three time edges, and 3 + 2 + 1 = 6 paths from W_h through some h(t) "
            "and the chain to a loss term.",
        ),
    ]
    ex.formulas("The chain rule on the unrolled graph, and BPTT (seed 004, C19 and C21)", steps, [DATAWHALE])


def point_values(cell: gf.Cell, params: dict, x: np.ndarray, states: dict[int, np.ndarray]) -> dict:
    """Numbers for the components of the parameters, inputs and states (sequence 0) of a simulation."""
    point = {}
    for name, value in params.items():
        symbol = cell.parameter(name)
        array = np.asarray(value).reshape(symbol.shape[0], -1)
        point.update(
            {MatrixElement(symbol, r, c): sp.Float(array[r, c], 30) for r, c in np.ndindex(*array.shape)}
        )
    for time, value in states.items():
        symbol = cell.signal("h", time)
        point.update({MatrixElement(symbol, r, 0): sp.Float(v, 30) for r, v in enumerate(value)})
    for time in range(1, x.shape[0] + 1):
        symbol = cell.signal("x", time)
        point.update({MatrixElement(symbol, r, 0): sp.Float(v, 30) for r, v in enumerate(x[time - 1, 0])})
    return point


def path_sum(cell: gf.Cell, params: dict, x: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, int, int]:
    """dh(T)/dh(0) of sequence 0 as the sum over the graph's paths of the products of its edges' Jacobians.

    Each edge's Jacobian is the graph's own (``LocalJacobian.doit()``, symbolic), evaluated at the
    simulated numbers in explicit mode. Returns the matrix, the number of paths and of distinct edges.
    """
    T, n = x.shape[0], int(cell.states["h"])
    h = np.asarray(gf.simulate(cell, params, x, {"h": history})["h"])[:, 0]
    states = {time: h[time] for time in range(T + 1)}
    states.update({-k: history[-1 - k, 0] for k in range(1, history.shape[0])})
    point = point_values(cell, params, x, states)
    step = explicit_step(cell)
    unrolled = gf.unroll(cell, T)
    edges: dict = {}
    total = np.zeros((n, n))
    paths = gf.graph.enumerate_paths(unrolled, ("h", 0), ("h", T))
    for path in paths:
        product = np.eye(n)
        for edge in itertools.pairwise(path):
            if edge not in edges:
                jacobian = unrolled.graph.edges[edge]["jacobian"].doit()
                edges[edge] = np.array(explicit(jacobian, cell, step, values=point).evalf(20), dtype=float)
            product = edges[edge] @ product
        total += product
    return total, len(paths), len(edges)


def central_chain(cell: gf.Cell, params: dict, x: np.ndarray, history: np.ndarray) -> np.ndarray:
    """The referee: dh(T)/dh(0) of sequence 0 by central differences of the forward pass."""
    n = int(cell.states["h"])
    columns = []
    for col in range(n):
        shift = np.zeros_like(history)
        shift[-1, :, col] = EPS
        up = np.asarray(gf.simulate(cell, params, x, {"h": history + shift})["h"])[-1, 0]
        down = np.asarray(gf.simulate(cell, params, x, {"h": history - shift})["h"])[-1, 0]
        columns.append((up - down) / (2 * EPS))
    return np.stack(columns, axis=1)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def loss_and_upstream(cell: gf.Cell, params: dict, x: np.ndarray, y: np.ndarray, h0: np.ndarray):
    """L = sum_t E(t), E(t) = 1/2 ||h(t) - y(t)||^2 summed over the batch, and dE(t)/dh(t) per step."""
    h = np.asarray(gf.simulate(cell, params, x, {"h": h0})["h"])[1:]
    return 0.5 * float(np.sum((h - y) ** 2)), h - y


def segmented_loss(cell, params, x, y, h0, step: int, changed: dict) -> float:
    """L with the parameters replaced by ``changed`` at one step only (the other steps keep theirs)."""
    pieces = [(0, step - 1, params), (step - 1, step, {**params, **changed}), (step, x.shape[0], params)]
    state, hs = h0, []
    for start, stop, values in pieces:
        if stop > start:
            h = np.asarray(gf.simulate(cell, values, x[start:stop], {"h": state})["h"])
            hs.append(h[1:])
            state = h[-1]
    return 0.5 * float(np.sum((np.concatenate(hs) - y) ** 2))


def main() -> None:
    ex = Example(
        "computation_graphs",
        "C19, C21 (seed 004, Datawhale notes)",
        "On the unrolled graph a derivative is the sum over paths of the products of the edges' Jacobians "
        "(a chain multiplies, branches add); the total loss is sum_t E(t), and dL/dW_h is the sum of the "
        "per-step losses' gradients and a sum over W_h's time edges.",
    )
    n, m, T, B = ex.size(4, 3), 2, ex.size(12, 5), 2
    formulas(ex, T)

    # 1. the graph: counts of paths
    elman, skip = gf.cells.elman(), gf.cells.skip(delay=2)
    plain, lossy = gf.unroll(elman, T), gf.unroll(elman, T, loss=True)
    branchy = gf.unroll(skip, T)
    chain_paths = gf.graph.count_paths(plain, ("h", 0), ("h", T))
    fibonacci = [1, 1]
    while len(fibonacci) <= T:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    skip_paths = [gf.graph.count_paths(branchy, ("h", 0), ("h", k)) for k in range(1, T + 1)]
    print(
        f"paths from h(0) to h({T}): Elman {chain_paths}; skip connection d = 2, to h(1..{T}): {skip_paths}"
    )
    ex.check(
        chain_paths == 1 and gf.graph.shortest_path_length(plain, ("h", 0), ("h", T)) == T,
        f"C19, case 1: in the Elman graph h(0) -> h({T}) is a single chain of {T} edges",
    )
    ex.check(
        skip_paths == fibonacci[1 : T + 1],
        f"C19, case 2: with a skip connection h(t-2) -> h(t) the graph branches: the paths from h(0) to h(k) "
        f"number {skip_paths} for k = 1..{T}, the Fibonacci numbers (compositions of k into 1s and 2s)",
    )
    terms = gf.symbolic.chain(skip, 3, 0).doit().expand()
    ex.check(
        isinstance(terms, sp.MatAdd)
        and len(terms.args) == gf.graph.count_paths(gf.unroll(skip, 3), ("h", 0), ("h", 3)),
        f"gradflow's symbolic dh(3)/dh(0) of the skip cell, multiplied out, has one product per path: "
        f"{len(terms.args)} terms, {gf.graph.count_paths(gf.unroll(skip, 3), ('h', 0), ('h', 3))} paths",
    )
    edges_of_w = lossy.graph.out_degree(("W_h", None))
    to_loss = gf.graph.count_paths(lossy, ("W_h", None), ("L", None))
    small = gf.symbolic.parameter_gradient(elman, "W_h", gf.Full(), length=3, expand_adjoint=True).rhs.doit()
    formula_edges = len(small.args) if isinstance(small, sp.MatAdd) else 1
    formula_paths = sum(1 for node in sp.preorder_traversal(small) if isinstance(node, Adjoint))
    small_paths = gf.graph.count_paths(gf.unroll(elman, 3, loss=True), ("W_h", None), ("L", None))
    print(f"W_h: one node with {edges_of_w} time edges; {to_loss} paths from W_h to L (T = {T})")
    ex.check(
        edges_of_w == T and to_loss == T * (T + 1) // 2,
        f"C21: W_h is one node with an edge into each of the {T} steps, and {to_loss} = T(T+1)/2 paths lead "
        f"from it to L = sum_t E(t) (one for each pair t <= i: edge into step t, chain to the loss at step i)",
    )
    ex.check(
        formula_edges == 3 and formula_paths == small_paths == 6,
        f"gradflow's dL/dW_h for T = 3, written out, has {formula_edges} terms (one per time edge) holding "
        f"{formula_paths} upstream gradients dL+/dh(i): the graph's {small_paths} paths from W_h to L",
    )

    # 2. the chain rule numerically: the sum over paths of products of the edges' own Jacobians
    rng = np.random.default_rng(0)
    for name, cell, depth in (("Elman", elman, 1), ("skip d = 2", skip, 2)):
        concrete = cell.with_sizes(n=n, m=m)
        params = gf.init_params(concrete, seed=1, gain=0.9)
        x = rng.normal(size=(T, 1, m))
        history = 0.5 * rng.normal(size=(depth, 1, n))
        summed, count, distinct = path_sum(concrete, params, x, history)
        reference = central_chain(concrete, params, x, history)
        error = relative(summed, reference)
        kernels = np.asarray(gf.jacobian_chain(concrete, params, x, {"h": history}, full=True).matrix(T))[0]
        print(
            f"{name}: dh({T})/dh(0) as the sum over {count} path(s) of products of {distinct} edge Jacobians: "
            f"vs central differences {error:.1e}, vs gf.jacobian_chain {relative(kernels, summed):.1e}"
        )
        ex.check(
            error < 1e-6,
            f"C19 ({'a chain' if count == 1 else 'branches'}): for the {name} cell (n = {n}), the sum over the "
            f"{count} path{'s' if count > 1 else ''} from h(0) to h({T}) of the products of the graph's edge Jacobians, evaluated at "
            f"simulated numbers, equals central differences of the forward pass (relative error {error:.1e})",
        )

    # 3. BPTT: the gradient of the total loss is the sum of the per-step losses' gradients
    concrete = elman.with_sizes(n=n, m=m)
    params = gf.init_params(concrete, seed=2, gain=1.1)
    x = rng.normal(size=(T, B, m))
    y = 0.5 * rng.normal(size=(T, B, n))
    h0 = 0.5 * rng.normal(size=(B, n))
    loss, upstream = loss_and_upstream(concrete, params, x, y, h0)
    total = gf.bptt(concrete, params, x, {"h": upstream}, initial={"h": h0})
    per_step = []
    for step in range(T):
        only = np.zeros_like(upstream)
        only[step] = upstream[step]
        per_step.append(gf.bptt(concrete, params, x, {"h": only}, initial={"h": h0}))
    sums = {name: sum(np.asarray(g[name]) for g in per_step) for name in params}
    sum_error = max(relative(np.asarray(total[name]), sums[name]) for name in params)
    print(f"Elman n = {n}, m = {m}, T = {T}, B = {B}: L = {loss:.4f}")
    ex.check(
        sum_error < 1e-12,
        f"C21: gf.bptt's gradient of L = sum_t E(t) equals the sum of the gradients of the {T} losses E(t), "
        f"for W_h, W_x and b (largest relative difference {sum_error:.1e})",
    )
    w = np.asarray(params["W_h"])
    differences = np.zeros_like(w)
    edges = np.zeros((T, *w.shape))
    for index in np.ndindex(*w.shape):
        shift = np.zeros_like(w)
        shift[index] = EPS
        up = loss_and_upstream(concrete, {**params, "W_h": w + shift}, x, y, h0)[0]
        down = loss_and_upstream(concrete, {**params, "W_h": w - shift}, x, y, h0)[0]
        differences[index] = (up - down) / (2 * EPS)
        for step in range(1, T + 1):
            up = segmented_loss(concrete, params, x, y, h0, step, {"W_h": w + shift})
            down = segmented_loss(concrete, params, x, y, h0, step, {"W_h": w - shift})
            edges[step - 1][index] = (up - down) / (2 * EPS)
    fd_error = relative(np.asarray(total["W_h"]), differences)
    edge_error = relative(np.asarray(total["W_h"]), edges.sum(axis=0))
    norms = ", ".join(f"{v:.3f}" for v in np.linalg.norm(edges.reshape(T, -1), axis=1))
    print(f"  ||contribution of W_h's edge into step t||_F, t = 1..{T}: {norms}")
    ex.check(
        fd_error < 1e-6,
        f"gf.bptt's dL/dW_h equals central differences of L (all {w.size} entries; relative error {fd_error:.1e})",
    )
    ex.check(
        edge_error < 1e-6,
        f"C21: dL/dW_h is the sum over W_h's {T} time edges: perturbing W_h at one step t only (finite "
        f"differences of the forward pass run in pieces) and summing over t gives gf.bptt's gradient "
        f"(relative error {edge_error:.1e})",
    )
    print()

    # 4. the figure: the unrolled graph with its losses, and the branches of a skip connection
    figure = Figure(figsize=(14.0, 5.6), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1.0, 1.4])
    shown = 3
    with_loss = gf.unroll(elman, shown, loss=True)
    gf.graph.draw(with_loss, left, font_size=8)
    left.set_title(
        f"Chain: Elman unrolled over T = {shown} with the losses, $L = \\sum_t E^{{(t)}}$;\n"
        f"$W_h$ is one node with {with_loss.graph.out_degree(('W_h', None))} time edges "
        f"and {gf.graph.count_paths(with_loss, ('W_h', None), ('L', None))} paths to $L$",
        fontsize=10,
    )
    shown_skip = 4
    branches = gf.unroll(skip, shown_skip, loss=True)
    paths = gf.graph.count_paths(branches, ("h", 0), ("h", shown_skip))
    gf.graph.draw(branches, right, font_size=8)
    right.set_title(
        f"Branches: a skip connection $h^{{(t-2)}} \\to h^{{(t)}}$ (red) gives {paths} paths "
        f"$h^{{(0)}} \\leadsto h^{{({shown_skip})}}$;\n"
        f"$\\partial h^{{({shown_skip})}}/\\partial h^{{(0)}}$ is the sum of their products",
        fontsize=10,
    )
    ex.figure(figure)
    ex.finish()


if __name__ == "__main__":
    main()
