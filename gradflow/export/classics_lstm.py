r"""Seed 002's classic argument: Hochreiter's local error flow and the constant error carousel.

Hochreiter (1991) and Hochreiter & Schmidhuber (1997, §3) follow the error unit
by unit: its recursion, its sum over paths, and why it vanishes or explodes;
the constant error carousel of the 1997 LSTM keeps it; Gers et al.'s forget
gate (2000) scales it. Every formula on gradflow's own cells comes from
:mod:`gradflow.symbolic.hochreiter` and :mod:`gradflow.symbolic.cec`; the
general statements about a unit ``j`` are written with sympy directly.
"""

from __future__ import annotations

import sympy as sp

from gradflow.cells.activations import generic
from gradflow.cells.builtin import elman, lstm
from gradflow.cells.expr import Elementwise, Signal, t
from gradflow.symbolic.cec import cec_path, cec_weights
from gradflow.symbolic.derivation import Derivation, Step
from gradflow.symbolic.hochreiter import (
    ErrorSignal,
    OpaqueDerivative,
    error_flow_paths,
    error_flow_product,
    error_recursion,
)
from gradflow.symbolic.jacobian import Diag, step_jacobian
from gradflow.symbolic.nodes import Chain, Norm, Partial

__all__ = ["GERS_2000", "HOCHREITER_1991", "LSTM_1997", "hochreiter_cec"]

HOCHREITER_1991 = (
    "S. Hochreiter, Untersuchungen zu dynamischen neuronalen Netzen, Diploma thesis, "
    "Technische Universität München, 1991."
)
LSTM_1997 = "S. Hochreiter, J. Schmidhuber, Long short-term memory, Neural Computation 9(8):1735-1780, 1997."
GERS_2000 = (
    "F. A. Gers, J. Schmidhuber, F. Cummins, Learning to forget: continual prediction with LSTM, "
    "Neural Computation 12(10), 2000."
)

i, j = sp.symbols("i j", integer=True)


def _eq(lhs: sp.Basic, rhs: sp.Basic) -> sp.Eq:
    return sp.Eq(lhs, rhs, evaluate=False)


def _hochreiter_units() -> list[Step]:
    """Hochreiter's local error flow: the recursion, its paths, and when they vanish or explode."""
    cell = elman(generic("f", "f"))
    small = elman(generic("f", "f"), n=2, m=1)
    n = cell.states["h"]
    u, v, m, q = sp.symbols("u v m q", integer=True)
    w, paths = sp.IndexedBase("w"), sp.IndexedBase("l")
    net = Signal("net", n, t, "intermediate")
    theta = Signal("vartheta", n, t, "intermediate")
    slope = Elementwise(cell.updates["h"].activation.derivative, net)
    factor = OpaqueDerivative(paths[m], t - m) * w[paths[m - 1], paths[m]]
    every_path = sp.Sum(sp.Product(factor, (m, 1, q)), (sp.Symbol(r"l_{1},\dots,l_{q-1}"), 0, n - 1))
    flow = Partial(ErrorSignal(v, t - q), ErrorSignal(u, t))
    return [
        Step(
            "Units",
            _eq(net, cell.updates["h"].arg),
            "The net input of the units; Hochreiter's weight from unit j to unit i is the entry (i, j) of Wₕ.",
            LSTM_1997,
        ),
        Step(
            "Local error flow",
            _eq(
                ErrorSignal(j, t),
                OpaqueDerivative(j, t) * sp.Sum(w[i, j] * ErrorSignal(i, t + 1), (i, 0, n - 1)),
            ),
            "The error at unit j's net input: the errors of the units it feeds, weighted and scaled by f′.",
            HOCHREITER_1991,
        ),
        Step(
            "Local error flow",
            _eq(
                theta, sp.MatMul(Diag(slope), sp.Transpose(cell.parameter("W_h")), theta.xreplace({t: t + 1}))
            ),
            "The same recursion for all units at once: the transposed step Jacobian.",
            LSTM_1997,
        ),
        *(
            Step(
                "Local error flow", equation, "gradflow's explicit recursion for two units.", HOCHREITER_1991
            )
            for equation in error_recursion(small, opaque=True)
        ),
        Step(
            "Paths",
            _eq(flow, every_path),
            "Going back q steps: a sum over every path of units from u (at t) back to v (at t − q) of "
            "products of f′ w (weights in the recursion's order; seed 002 prints their indices swapped).",
            LSTM_1997,
        ),
        Step(
            "Paths",
            _eq(flow.xreplace({u: 0, v: 1, q: 2}), error_flow_paths(small, 0, 1, 2)),
            "gradflow's path sum for two units, q = 2: one term per path.",
            LSTM_1997,
        ),
        Step(
            "Paths",
            _eq(theta.xreplace({t: t - 2}), sp.MatMul(error_flow_product(cell, 2), theta)),
            "The same in matrix form, M₂ = the product of the transposed step Jacobians.",
            LSTM_1997,
        ),
        Step(
            "Scaling",
            sp.StrictGreaterThan(sp.Abs(factor), 1, evaluate=False),
            "For every step m of a path: the error explodes exponentially in q.",
            LSTM_1997,
        ),
        Step(
            "Scaling",
            sp.StrictLessThan(sp.Abs(factor), 1, evaluate=False),
            "For every step m of a path: the error vanishes exponentially in q.",
            LSTM_1997,
        ),
    ]


def _hochreiter_cec() -> list[Step]:
    """The constant error carousel on gradflow's 1997 LSTM, then the forget gate."""
    w = sp.IndexedBase("w")
    q = sp.Symbol("q", integer=True, positive=True)
    weights = sp.Symbol(r"\{w : f'(\mathrm{net})\, w = 1\ \forall\, \mathrm{net}\}")
    old, gated = lstm(forget_gate=False), lstm()
    carousel = Partial(old.signal("c", t), old.signal("c", t - 1))
    gate = gated.signal("f", t)
    return [
        Step(
            "Constant error carousel",
            _eq(OpaqueDerivative(j, t) * w[j, j], 1),
            "A unit j connected only to itself keeps its error, ϑⱼ(t) = ϑⱼ(t+1), exactly when this holds.",
            LSTM_1997,
        ),
        Step(
            "Constant error carousel",
            _eq(weights, cec_weights("identity")),
            "For every net input: f′ constant, so f linear; the identity with wⱼⱼ = 1 (for tanh the set is empty).",
            LSTM_1997,
        ),
        *(
            Step(
                "1997 LSTM",
                _eq(old.signal(name, t), old.expression(kind, name)),
                "The 1997 LSTM, without a forget gate.",
                LSTM_1997,
            )
            for kind, name in old.order
            if name in ("i", "c_tilde", "c")
        ),
        Step(
            "1997 LSTM",
            _eq(carousel, step_jacobian(old, "c")),
            "The cell state is the carousel: the 1997 paper's s(t) = s(t−1) + g yⁱⁿ, its direct Jacobian the identity.",
            LSTM_1997,
        ),
        Step(
            "1997 LSTM",
            _eq(Chain(carousel, t - q, t), cec_path(old, 5)),
            "So the error flows back along the cell state unchanged, for every number of steps q (gradflow's cec_path).",
            LSTM_1997,
        ),
        Step(
            "Forget gate",
            _eq(gated.signal("c", t), gated.updates["c"]),
            "Gers et al.'s forget gate scales the carousel.",
            GERS_2000,
        ),
        Step(
            "Forget gate",
            _eq(Partial(gated.signal("c", t), gated.signal("c", t - 1)), step_jacobian(gated, "c")),
            "The carousel's Jacobian becomes the gate.",
            GERS_2000,
        ),
        Step(
            "Forget gate",
            _eq(Chain(Partial(gated.signal("c", t), gated.signal("c", t - 1)), t - 3, t), cec_path(gated, 3)),
            "Three steps back (gradflow.cec_path): a product of gates.",
            GERS_2000,
        ),
        Step(
            "Forget gate",
            sp.Le(Norm(Diag(gate)), Norm(gate, sp.oo), evaluate=False),
            "Its norm is the largest gate value, at most 1: the cell can learn to forget, or to keep (f ≈ 1).",
            GERS_2000,
        ),
    ]


def hochreiter_cec() -> Derivation:
    r"""Hochreiter's local error flow and the constant error carousel of the 1997 LSTM, then the forget gate (seed 002).

    Returns
    -------
    Derivation

    Examples
    --------
    >>> d = hochreiter_cec()
    >>> print(d.titled("1997 LSTM")[-1].equation.rhs)
    I

    References
    ----------
    S. Hochreiter, Diploma thesis, TU München, 1991. S. Hochreiter, J. Schmidhuber,
    "Long short-term memory", Neural Computation 9(8), 1997, §3-4. F. A. Gers,
    J. Schmidhuber, F. Cummins, "Learning to forget", Neural Computation 12(10), 2000.
    """
    steps = [*_hochreiter_units(), *_hochreiter_cec()]
    title = "Local error flow and the constant error carousel: Hochreiter and Schmidhuber's LSTM (seed 002)"
    return Derivation(title, tuple(steps), None, (HOCHREITER_1991, LSTM_1997, GERS_2000))
