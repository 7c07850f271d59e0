"""Referees between the two layers: numeric ``gf.bptt`` == the symbolic ``parameter_gradient`` at one point.

The symbolic formula (:func:`gradflow.symbolic.bptt.parameter_gradient`: per-direction-group adjoints
written out as sums of chains, the other groups' truncated adjoints nested in each group's upstream) and
the numeric reverse pass (:func:`gradflow.numeric.bptt.bptt`: cotangents pulled back node by node over the
compiled schedule, with a budget axis for truncation and a draw per step and group for randomization) are
written independently. Both claim the same semantics for ``Full()``, ``Truncated(tau)`` and
``Randomized(pi, seed)``, subtle above all for cells running both ways in time: truncation counts steps
per direction group (what one group sends the other within a step starts the other's count afresh), and
the backward group's steps draw their own weights ξ̄_k. So the same numbers go into both worlds --
parameters, inputs x(1..T), initial states (a backward state's after step T), the direct gradients
∂⁺L/∂s(t) -- and every parameter gradient must agree to a relative 1e-10 (sympy evaluated to 30 digits,
NumPy in float64), for every tau in 1..T and for every keep pattern of the draws (B = 1: a seed is found
for each pattern, and ξ_k -> 1/π or 0 is put into the formula).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import sympy as sp
from randomized_draws import seed_for_each_pattern
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells.expr import Signal, t
from gradflow.numeric.backend import to_numpy
from gradflow.symbolic.bptt import direction_groups, parameter_gradient, state_signal, xi, xi_backward
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.nodes import Adjoint

C = gf.cells
LENGTH = 3
PI = 0.6
RTOL, ATOL = 1e-10, 1e-13

CELLS = {
    "elman": lambda: C.elman(n=2, m=1),
    "lstm": lambda: C.lstm(n=1, m=1),
    "stack": lambda: C.stack([C.elman(), C.elman()]).with_sizes(n=2, m=1),
    "bidirectional": lambda: C.bidirectional(C.elman()).with_sizes(n=2, m=1),
    "stack_bidirectional": lambda: C.stack([C.bidirectional(C.elman()), C.elman()]).with_sizes(n=2, m=1),
    "under_bidirectional": lambda: C.stack([C.elman(), C.bidirectional(C.elman())]).with_sizes(n=2, m=1),
}
MIXED = ("bidirectional", "stack_bidirectional", "under_bidirectional")
#: One parameter of each kind and gate of the LSTM (all twelve take too long); every parameter elsewhere.
SOME = {"lstm": ("W_f", "U_i", "b_o", "W_c")}


def entries(node) -> list[MatrixElement]:
    return [MatrixElement(node, r, 0) for r in range(int(node.shape[0]))]


def exact(value) -> sp.Float:
    return sp.Float(float(value), 30)  # the float64 number itself, to 30 digits


@functools.cache
def point(name: str):
    """The cell, the numeric arrays (B = 1) and the same numbers as sympy leaves, with the sympy forward pass."""
    cell = CELLS[name]()
    rng = np.random.default_rng(sorted(CELLS).index(name))
    params = {k: rng.uniform(-1.2, 1.2, tuple(int(d) for d in shape)) for k, shape in cell.params.items()}
    x = rng.uniform(-1.5, 1.5, (LENGTH, 1, int(cell.inputs["x"])))
    initial = {s: rng.uniform(-1, 1, (1, int(n))) for s, n in cell.states.items()}
    upstream = {s: rng.uniform(-1, 1, (LENGTH, 1, int(n))) for s, n in cell.states.items()}
    values: dict[sp.Basic, sp.Basic] = {}
    for key, array in params.items():
        symbol = cell.parameter(key)
        cols = int(symbol.shape[1])
        values.update({symbol[a // cols, a % cols]: exact(v) for a, v in enumerate(array.reshape(-1))})
    for k in range(1, LENGTH + 1):
        values.update(
            zip(entries(Signal("x", cell.inputs["x"], k, "input")), map(exact, x[k - 1, 0]), strict=True)
        )
    for s, value in initial.items():  # a backward state starts after step T
        values.update(
            zip(
                entries(cell.signal(s, LENGTH + 1 if s in cell.backward else 0)),
                map(exact, value[0]),
                strict=True,
            )
        )
    for group in direction_groups(cell).values():  # ∂⁺L/∂s_G(k): the group's states stacked in its order
        for k in range(1, LENGTH + 1):
            g = np.concatenate([upstream[s][k - 1, 0] for s in group])
            values.update(
                zip(
                    entries(Adjoint(state_signal(cell, k, states=group), total=False)),
                    map(exact, g),
                    strict=True,
                )
            )
    step = explicit_step(cell)

    def evaluate(kind, node, k):  # forward and backward states, in the order the dependencies ask
        own = entries(cell.signal(node, k))
        if own[0] not in values:
            template = step[(kind, node)].xreplace({t: k})
            for e in template.atoms(MatrixElement):
                if isinstance(e.parent, Signal) and e.parent.role == "state":
                    evaluate("state", e.parent.name, int(e.parent.time))
            values.update(zip(own, template.xreplace(values).evalf(30), strict=True))

    for k, (kind, node) in itertools.product(range(1, LENGTH + 1), cell.order):
        evaluate(kind, node, k)
    return cell, (params, x, initial, upstream), values


def numeric(name: str, strategy) -> dict[str, np.ndarray]:
    cell, (params, x, initial, upstream), _ = point(name)
    grads = gf.bptt(cell, params, x, upstream, truncation=strategy, initial=initial)
    return {key: to_numpy(grads[key]).reshape(-1) for key in cell.params}


@functools.cache
def symbolic(name: str, param: str, strategy) -> sp.Matrix:
    """The formula at the point, flattened like the parameter; under Randomized, a polynomial in the draws."""
    cell, _, values = point(name)
    formula = parameter_gradient(cell, param, strategy, LENGTH, expand_adjoint=True).rhs.doit()
    return sp.Matrix(list(explicit(formula, cell, values=values))).evalf(30)


def as_floats(matrix: sp.Matrix) -> np.ndarray:
    return np.array([float(v) for v in matrix])


def disagreements(name: str, strategy, expected=None) -> list[str]:
    cell = point(name)[0]
    got = numeric(name, strategy)
    bad = []
    for param in SOME.get(name, cell.params):
        ours = as_floats(symbolic(name, param, strategy)) if expected is None else expected[param]
        if not np.allclose(got[param], ours, rtol=RTOL, atol=ATOL):
            bad.append(f"{param}: numeric {got[param]} vs symbolic {ours}")
    return bad


def test_both_worlds_hold_the_same_numbers():
    """The sympy forward pass from the leaves == gf.simulate from the arrays (the layouts are mapped right)."""
    for name in CELLS:
        cell, (params, x, initial, _), values = point(name)
        trajectory = gf.simulate(cell, params, x, initial)
        for s, k in itertools.product(cell.states, range(1, LENGTH + 1)):
            index = k - 1 if s in cell.backward else k  # a backward state's initial value is last
            ours = as_floats(sp.Matrix([values[e] for e in entries(cell.signal(s, k))]))
            np.testing.assert_allclose(
                to_numpy(trajectory[s])[index, 0], ours, rtol=1e-13, err_msg=(name, s, k)
            )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_full(name):
    """Full(): the symbolic adjoints written out as sums of chains (expand_adjoint) == the numeric reverse pass."""
    bad = disagreements(name, gf.Full())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("tau", range(1, LENGTH + 1))
@pytest.mark.parametrize("name", sorted(CELLS))
def test_truncated(name, tau):
    """Every tau in 1..T: each direction group counts its own steps, for the symbolic and the numeric layer."""
    bad = disagreements(name, gf.Truncated(tau))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_truncation_is_not_the_full_gradient(name):
    """Truncated(1) is not Full, numerically nor symbolically, so test_truncated cannot pass trivially;
    Truncated(T - 1) already is, for the parameters (a path within one group is at most T - 1 steps long)."""
    cell = point(name)[0]
    full, cut = numeric(name, gf.Full()), numeric(name, gf.Truncated(1))
    params = SOME.get(name, cell.params)
    assert any(not np.allclose(cut[p], full[p], rtol=1e-6) for p in params)
    assert any(symbolic(name, p, gf.Truncated(1)) != symbolic(name, p, gf.Full()) for p in params)
    full_formula = {p: as_floats(symbolic(name, p, gf.Full())) for p in params}
    assert not disagreements(name, gf.Truncated(LENGTH - 1), expected=full_formula)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_randomized_for_every_keep_pattern(name):
    """ξ_k (forward group's step k) and ξ̄_k (backward group's) -> 1/π if kept, else 0, as the seed draws them."""
    cell = point(name)[0]
    groups = len(direction_groups(cell))
    draws = [xi(k) for k in range(1, LENGTH + 1)] + [xi_backward(k) for k in range(1, LENGTH + 1)]
    strategy = gf.Randomized(PI)
    params = SOME.get(name, cell.params)
    found = set().union(*(symbolic(name, p, strategy).atoms(xi, xi_backward) for p in params))
    # J_1 (forward) and J̄_T (backward) lead only to the initial states: no parameter gradient draws them
    assert found == {xi(2), xi(3)} | ({xi_backward(1), xi_backward(2)} if name in MIXED else set())
    full = numeric(name, gf.Full())
    differs = False
    for pattern, seed in seed_for_each_pattern(LENGTH, PI, groups).items():
        weights = {
            d: sp.Float(1 / PI, 30) if keep else sp.S.Zero
            for d, keep in zip(draws[: groups * LENGTH], pattern, strict=True)
        }
        expected = {p: as_floats(symbolic(name, p, strategy).xreplace(weights)) for p in params}
        bad = disagreements(name, gf.Randomized(PI, seed), expected=expected)
        assert not bad, f"pattern {pattern} (seed {seed}):\n" + "\n".join(bad)
        differs = differs or any(not np.allclose(expected[p], full[p], rtol=1e-6) for p in params)
    assert differs
