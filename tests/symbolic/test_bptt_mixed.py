"""Referees for the per-direction BPTT formulas of cells running both ways (T = 3, n = 2).

The reference is the explicitly unrolled loss L = Σ_G Σ_k g_G(k)ᵀ s_G(k) (one upstream per direction
group G) at a numeric point, differentiated in forward mode (the chain rule through the unrolled graph,
an independent route) from sympy's componentwise derivatives of one explicit step:

* each group's adjoint δ_G(t) == ∂L/∂s_G(t) with s_G(t) cut out of the unrolling (a leaf): every later
  group step counts, the other groups' at the same t included, the group's own states at t do not;
* full parameter gradients from the per-group formula == ∂L/∂θ;
* Truncated(tau >= T - 1) == Full, and Truncated(1) of the backward group == the forward cell's on the
  reversed sequence;
* the randomized estimator's expectation == the full gradient (scalar cells), with independent draws per
  direction (a shared ξ_k would bias the stack, whose paths run through both groups).
"""

from __future__ import annotations

import itertools
import random

import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells.expr import Signal, t
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic.bptt import (
    adjoint,
    chain,
    direction_groups,
    parameter_gradient,
    state_jacobian,
    state_signal,
    xi,
    xi_backward,
)
from gradflow.symbolic.explicit import explicit
from gradflow.symbolic.nodes import Adjoint
from gradflow.symbolic.strategies import Full, Randomized, Truncated

C = gf.cells
LENGTH = 3


def bidirectional(n=2):
    return C.bidirectional(C.elman()).with_sizes(n=n, m=1)


def stacked(n=2):
    return C.stack([C.bidirectional(C.elman()), C.elman()]).with_sizes(n=n, m=1)


def under(n=2):  # the other way round: the backward layer reads the forward one within the step
    return C.stack([C.elman(), C.bidirectional(C.elman())]).with_sizes(n=n, m=1)


CELLS = {"bidirectional": bidirectional, "stack": stacked, "under": under}
#: A parameter of each direction (and one the other direction's gradient reaches within a step).
PARAMS = {
    "bidirectional": ("fwd.W_h", "bwd.W_x"),
    "stack": ("layer1.bwd.W_h", "layer2.W_x"),
    "under": ("layer1.W_h", "layer2.bwd.W_h"),
}


def entries(node) -> list[MatrixElement]:
    return [MatrixElement(node, r, 0) for r in range(int(node.shape[0]))]


def upstream(cell, group, k):
    return entries(Adjoint(state_signal(cell, k, states=group), total=False))


def shallow_step(cell):
    """Every node of one step in components, reading the step's own states as leaves (not inlined, as
    explicit_step does: a cut state must not reach its readers through its own inputs)."""
    by_name = {name: (kind, name) for kind, name in cell.order}
    done = {("state", n): sp.ImmutableMatrix(entries(cell.signal(n, t))) for n in cell.states}
    for node in cell.order:
        if node[0] != "state":
            done[node] = explicit(cell.expression(*node), cell, done, by_name)
    return {node: explicit(cell.expression(*node), cell, done, by_name) for node in cell.order}


def is_unrolled_state(element):
    signal = element.parent
    return isinstance(signal, Signal) and signal.role == "state" and 1 <= signal.time <= LENGTH


def numeric(matrix, values):
    return matrix.xreplace(values).evalf(30)


class Unrolled:
    """The cell unrolled over steps 1..LENGTH at a numeric point, differentiated in forward mode.

    d s(k)/d v = ∂⁺step_k/∂v + Σ_e ∂⁺step_k/∂e · d e/d v over the unrolled states e that step k reads
    (at k - 1, k + 1, or at k itself), each ∂⁺ by sympy on the step's components. The states in ``cut``
    are leaves: the loss is differentiated holding them as independent variables.
    """

    def __init__(self, cell, values, variables, cut=()):
        self.cell, self.values, self.variables, self.cut = cell, values, list(variables), set(cut)
        self.step, self.memo = shallow_step(cell), {}

    def derivative(self, name, k):
        """d s_name(k) / d variables, a (size, len(variables)) matrix of numbers."""
        own = entries(self.cell.signal(name, k))
        if (name, k) in self.cut:
            return sp.Matrix([[int(leaf == v) for v in self.variables] for leaf in own])
        if (name, k) not in self.memo:
            template = self.step[("state", name)].xreplace({t: k})
            total = sp.Matrix.hstack(
                *(
                    sp.zeros(len(own), 1) if is_unrolled_state(v) else numeric(template.diff(v), self.values)
                    for v in self.variables
                )
            )
            for e in template.atoms(MatrixElement):
                if is_unrolled_state(e):
                    outer = numeric(template.diff(e), self.values)
                    total += outer * self.derivative(e.parent.name, int(e.parent.time))[int(e.i), :]
            self.memo[(name, k)] = total
        return self.memo[(name, k)]

    def gradient(self):
        """dL/d variables for L = Σ_G Σ_k g_G(k)ᵀ s_G(k), a column."""
        total = sp.zeros(1, len(self.variables))
        for group in direction_groups(self.cell).values():
            for k in range(1, LENGTH + 1):
                g = sp.Matrix([self.values[e] for e in upstream(self.cell, group, k)]).T
                total += g * sp.Matrix.vstack(*(self.derivative(name, k) for name in group))
        return total.T


def numeric_point(cell, seed):
    """Random values of every leaf (parameters, inputs, states before step 1 and after step LENGTH,
    upstream gradients), and the values of every signal at steps 1..LENGTH."""
    rng = random.Random(seed)
    step = shallow_step(cell)
    leaves = {
        e
        for k in range(1, LENGTH + 1)
        for template in step.values()
        for e in template.xreplace({t: k}).atoms(MatrixElement)
        if not is_unrolled_state(e)
    }
    for group in direction_groups(cell).values():
        leaves |= {g for k in range(1, LENGTH + 1) for g in upstream(cell, group, k)}
    values = {
        leaf: sp.Float(rng.choice([-1, 1]) * rng.uniform(0.2, 1.3), 30) for leaf in sorted(leaves, key=str)
    }

    def state(name, k):  # the forward (and backward) pass, in the order the dependencies ask
        own = entries(cell.signal(name, k))
        if own[0] not in values:
            template = step[("state", name)].xreplace({t: k})
            for e in template.atoms(MatrixElement):
                if is_unrolled_state(e):
                    state(e.parent.name, int(e.parent.time))
            values.update(zip(own, numeric(template, values), strict=True))

    for k, name in itertools.product(range(1, LENGTH + 1), cell.states):
        state(name, k)
    for k in range(1, LENGTH + 1):  # intermediates and outputs, from the states around them
        for kind, name in cell.order:
            if kind != "state":
                values.update(
                    zip(
                        entries(cell.signal(name, k)),
                        numeric(step[(kind, name)].xreplace({t: k}), values),
                        strict=True,
                    )
                )
    return values


def evaluate(expr, cell, values):
    return sp.Matrix(list(explicit(expr.doit(), cell, values=values).evalf(30)))


def param_entries(cell, name):
    symbol = cell.parameter(name)
    return [symbol[a, b] for a in range(symbol.shape[0]) for b in range(symbol.shape[1])]


def close(a, b, tolerance=1e-20):
    return max(abs(v) for v in sp.Matrix(a) - sp.Matrix(b)) < tolerance


@pytest.mark.parametrize("name", sorted(CELLS))
def test_group_adjoints_equal_the_derivative_of_the_unrolled_loss(name):
    cell = CELLS[name]()
    values = numeric_point(cell, 5)
    groups = direction_groups(cell)
    reference = {}  # (group, t) -> ∂L/∂s_G(t), s_G(t) a leaf
    for group, at in itertools.product(groups.values(), range(1, LENGTH + 1)):
        leaves = [e for n in group for e in entries(cell.signal(n, at))]
        reference[group, at] = Unrolled(cell, values, leaves, cut={(n, at) for n in group}).gradient()
    for (group, at), expected in reference.items():
        others = {  # the other groups' adjoints, where this group's upstream reads them
            e: value
            for (other, k), column in reference.items()
            if other != group
            for e, value in zip(entries(Adjoint(state_signal(cell, k, states=other))), column, strict=True)
        }
        ours = evaluate(adjoint(cell, Full(), LENGTH, states=group).xreplace({t: at}), cell, values | others)
        assert close(ours, expected), (group, at)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_full_gradients_equal_the_gradient_of_the_unrolled_loss(name):
    cell = CELLS[name]()
    values = numeric_point(cell, 3)
    for param in cell.params:
        expected = Unrolled(cell, values, param_entries(cell, param)).gradient()
        ours = evaluate(
            parameter_gradient(cell, param, Full(), LENGTH, expand_adjoint=True).rhs, cell, values
        )
        assert close(ours, expected), param


@pytest.mark.parametrize("name", sorted(CELLS))
def test_truncation_at_least_the_length_is_full(name):
    cell = CELLS[name]()
    for param in PARAMS[name]:
        full = parameter_gradient(cell, param, Full(), LENGTH, expand_adjoint=True).rhs.doit()
        for tau in (LENGTH - 1, LENGTH, LENGTH + 4):
            assert parameter_gradient(cell, param, Truncated(tau), LENGTH).rhs.doit() == full
        assert parameter_gradient(cell, param, Truncated(1), LENGTH).rhs.doit() != full


def test_truncated_backward_group_is_the_forward_cell_on_the_reversed_sequence():
    """bwd.h(k) of the bidirectional cell is h(T + 1 - k) of elman on x reversed: truncation keeps |i - t| <= tau."""
    both, single = bidirectional(), C.elman(n=2, m=1)
    values = numeric_point(both, 7)
    mirror = {}
    for k in range(0, LENGTH + 2):
        pairs = [(Signal("x", 1, k, "input"), Signal("x", 1, LENGTH + 1 - k, "input"))]
        pairs.append((both.signal("bwd.h", k), single.signal("h", LENGTH + 1 - k)))
        pairs.append(
            (Adjoint(both.signal("bwd.h", k), False), Adjoint(single.signal("h", LENGTH + 1 - k), False))
        )
        for ours, theirs in pairs:
            for a, b in zip(entries(ours), entries(theirs), strict=True):
                if a in values:
                    mirror[b] = values[a]
    for name in single.params:
        for a, b in zip(param_entries(both, f"bwd.{name}"), param_entries(single, name), strict=True):
            mirror[b] = values[a]
    for param in ("W_h", "W_x", "b"):
        for tau in (1, 2):
            ours = evaluate(
                parameter_gradient(both, f"bwd.{param}", Truncated(tau), LENGTH).rhs, both, values
            )
            theirs = evaluate(parameter_gradient(single, param, Truncated(tau), LENGTH).rhs, single, mirror)
            assert close(ours, theirs), (param, tau)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_randomized_estimator_is_unbiased(name):
    """E over ξ_k, ξ̄_k ∈ {0, 1/π} (P(1/π) = π) of the randomized gradient == the full gradient."""
    cell = CELLS[name](n=1)
    values = numeric_point(cell, 11)
    for param in PARAMS[name]:
        full = evaluate(
            parameter_gradient(cell, param, Full(), LENGTH, expand_adjoint=True).rhs, cell, values
        )
        estimator = parameter_gradient(cell, param, Randomized(), LENGTH).rhs.doit()
        draws = sorted(estimator.atoms(xi) | estimator.atoms(xi_backward), key=str)
        assert draws
        pi = sp.Rational(1, 3)  # a shared draw would weigh a path by E[ξ²] = 1/π: far off
        expectation = sp.zeros(*full.shape)
        for outcome in itertools.product([0, 1], repeat=len(draws)):
            probability = sp.Mul(*(pi if o else 1 - pi for o in outcome))
            weights = {d: (1 / pi if o else 0) for d, o in zip(draws, outcome, strict=True)}
            expectation += probability * evaluate(estimator.xreplace(weights), cell, values)
        assert close(expectation, full), param


def test_stack_draws_are_independent_per_direction():
    """A path of the stack runs back through the forward group, then the backward one: two kinds of draws."""
    estimator = parameter_gradient(stacked(n=1), "layer1.bwd.W_h", Randomized(), LENGTH).rhs.doit()
    assert estimator.atoms(xi) and estimator.atoms(xi_backward)


def test_single_direction_outputs_are_unchanged():
    cell = C.lstm()
    assert adjoint(cell, states=["h", "c"]) == adjoint(cell)
    assert chain(cell, 4, 1, states=("c", "h")) == chain(cell, 4, 1)
    assert state_jacobian(cell, states=["c", "h"]) == state_jacobian(cell)


def test_backward_group_sums_over_earlier_steps_and_forward_over_later():
    both = C.bidirectional(C.elman())
    forward, backward = adjoint(both, states="fwd.h"), adjoint(both, states=["bwd.h"])
    assert forward.limits[1:] == (t, adjoint(C.elman()).limits[2])
    assert backward.limits[1:] == (1, t)
    assert chain(both, t, 1, states="bwd.h").backward


@pytest.mark.parametrize(
    ("states", "error", "words"),
    [
        (None, UnsupportedCellError, ["forwards", "layer1.fwd.h", "backwards", "layer1.bwd.h", "states="]),
        (
            ["layer1.bwd.h", "layer2.h"],
            UnsupportedCellError,
            ["'layer1.bwd.h' (backward)", "'layer2.h' (forward)"],
        ),
        (["layer2.h"], GradflowError, ["'layer1.fwd.h' is missing"]),
        ("layer9.h", GradflowError, ["no state 'layer9.h'"]),
        ([], GradflowError, ["selects no state"]),
    ],
)
def test_bad_selections_are_named(states, error, words):
    cell = C.stack([C.bidirectional(C.elman()), C.elman()])
    for call in (
        lambda: adjoint(cell, states=states),
        lambda: chain(cell, t, 1, states=states),
        lambda: state_jacobian(cell, states=states),
    ):
        with pytest.raises(error) as caught:
            call()
        assert all(word in str(caught.value) for word in words), str(caught.value)


def test_directions_meeting_other_than_within_a_step_are_refused():
    both_ways = gf.Cell(
        "crossed",
        states={"f": 1, "b": 1},
        inputs={"x": 1},
        params={"u": (1, 1), "v": (1, 1)},
        updates={"f": "tanh(u @ f + x)", "b": "tanh(v @ b + f[t])"},
        backward=["b"],
    )
    assert isinstance(parameter_gradient(both_ways, "u", Truncated(1), LENGTH), sp.Eq)  # within a step: fine
    lagged = gf.Cell(
        "lagged",
        states={"f": 1, "b": 1},
        inputs={"x": 1},
        params={"u": (1, 1), "v": (1, 1)},
        updates={"f": "tanh(u @ f + x)", "b": "tanh(v @ b + f[t-1])"},
        backward=["b"],
    )
    with pytest.raises(UnsupportedCellError, match=r"'b' \(backward\) reads 'f' \(forward\) at time t-1"):
        adjoint(lagged, states="b")
    cyclic = gf.Cell(
        "cyclic",
        states={"f": 1, "b": 1, "g": 1},
        inputs={"x": 1},
        params={"u": (1, 1), "v": (1, 1), "w": (1, 1)},
        updates={"f": "tanh(u @ f + x)", "b": "tanh(v @ b + f[t])", "g": "tanh(w @ g + b[t])"},
        backward=["b"],
    )
    with pytest.raises(UnsupportedCellError, match="read each other within a step"):
        parameter_gradient(cyclic, "u", Truncated(1), LENGTH)


def test_delay_only_chain_is_zero_between_multiples_of_the_delay():
    """No path of length k unless d divides k (skip connections without the length-1 one, seed 003)."""
    import sympy as sp

    cell = gf.cells.skip(delay=3, unit_connection=False)
    for k in (1, 2, 4, 5):
        assert isinstance(gf.symbolic.chain(cell, k, 0).doit(), sp.ZeroMatrix)
    six = gf.export.to_text(gf.symbolic.chain(cell, 6, 0).doit())
    assert six.count("W_d") == 4 and six.count("diag(") == 2  # one path of two delay-3 steps
