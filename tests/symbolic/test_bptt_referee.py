"""Referees for chains and BPTT formulas: explicit unrolling and sympy's componentwise calculus.

* chains ∂s(i)/∂s(j) == sympy's Jacobian of the explicitly unrolled state (T up to 4, n = 2);
* full-BPTT parameter gradients == sympy's gradient of the unrolled loss L = Σ_i g_iᵀ s(i);
* truncated gradients == d2l's forward recursion (9.7.7) cut after τ terms, built from componentwise
  Jacobians of one explicit step (an independent, forward-mode route);
* the randomized estimator's expectation == the full gradient, exactly, for a scalar cell.
"""

from __future__ import annotations

import itertools
import random

import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells.expr import Signal, t
from gradflow.symbolic.bptt import adjoint, chain, parameter_gradient, state_signal, xi
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.nodes import Adjoint
from gradflow.symbolic.strategies import Full, Randomized, Truncated

C = gf.cells

CELLS = {
    "elman": lambda: C.elman(n=2, m=1),
    "lstm": lambda: C.lstm(n=2, m=1),
    "lstm1997": lambda: C.lstm(forget_gate=False, n=1, m=1),
    "gru": lambda: C.gru(n=2, m=1),
    "leaky": lambda: C.leaky(n=2, m=1),
    "ctrnn": lambda: C.ctrnn(n=2, m=1),
    "indrnn": lambda: C.indrnn(n=2, m=1),
    "minimal": lambda: C.minimal(n=2, m=1),
    "skip2": lambda: C.skip(2, n=2, m=1),
    "jordan": lambda: C.jordan(n=2, m=1, k=2),
}


#: Cells cheap enough to unroll symbolically over four steps; the gated ones are checked by composing
#: sympy's componentwise Jacobians of one explicit step instead (the chain rule, done numerically).
UNROLLED = {"ctrnn", "elman", "indrnn", "jordan", "leaky", "skip2"}


def entries(signal: Signal) -> list[MatrixElement]:
    return [MatrixElement(signal, r, 0) for r in range(int(signal.size))]


def state_entries(cell, time):
    return [e for name in cell.states for e in entries(cell.signal(name, time))]


def unrolled_states(cell, start: int, stop: int):
    """Explicit components of every state at times start+1..stop, in terms of earlier states."""
    step = explicit_step(cell)
    known: dict = {}
    for k in range(start + 1, stop + 1):
        for kind, name in cell.order:
            if kind != "state":
                continue
            values = step[("state", name)].xreplace({t: k}).xreplace(known)
            for r, value in enumerate(values):
                known[MatrixElement(cell.signal(name, k), r, 0)] = value
    return known


def random_point(rng, symbols):
    point = {}
    for symbol in sorted(symbols, key=str):
        value = rng.uniform(-1.3, 1.3)
        point[symbol] = sp.Float(value if abs(value) > 0.05 else 0.3, 30)
    return point


def forward_values(cell, stop: int, point: dict) -> dict:
    """Every signal of every step 1..stop at a numeric point (intermediates included)."""
    step = explicit_step(cell)
    values = dict(point)
    for k in range(1, stop + 1):
        for kind, name in cell.order:
            matrix = step[(kind, name)].xreplace({t: k}).xreplace(values).evalf(30)
            for r, value in enumerate(matrix):
                values[MatrixElement(cell.signal(name, k), r, 0)] = value
    return values


def free_leaves(cell, stop: int, history: int = 2) -> set:
    """Parameters' entries, inputs 1..stop, and state history before step 1."""
    leaves = set()
    for name in cell.params:
        symbol = cell.parameter(name)
        if isinstance(symbol, sp.MatrixSymbol):
            leaves |= {symbol[a, b] for a in range(symbol.shape[0]) for b in range(symbol.shape[1])}
        else:
            leaves.add(symbol)
    for k in range(1, stop + 1):
        for name in cell.inputs:
            leaves |= set(entries(cell.signal(name, k)))
    for k in range(1 - history, 1):
        leaves |= set(state_entries(cell, k))
    return leaves


def composed_chain(cell, upper, lower, values):
    """∂s(upper)/∂s(lower) from componentwise one-step Jacobians: D_k = Σ_d J[d]_k D_(k-d)."""
    step = explicit_step(cell)
    state_vector = sp.Matrix([step[("state", n)][r] for n in cell.states for r in range(int(cell.states[n]))])
    lags = sorted({d for s in cell.states for d in cell.delays(s)}) or [1]
    jacobians = {d: state_vector.jacobian(state_entries(cell, t - d)) for d in lags}
    size = state_vector.shape[0]
    memo = {0: sp.eye(size)}
    for k in range(1, upper - lower + 1):
        total = sp.zeros(size, size)
        for d in lags:
            if k - d >= 0:
                total += jacobians[d].xreplace({t: lower + k}).xreplace(values).evalf(30) * memo[k - d]
        memo[k] = total
    return memo[upper - lower]


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize(("upper", "lower"), [(2, 1), (3, 0), (4, 1)])
def test_chain_equals_jacobian_of_unrolled_state(name, upper, lower):
    cell = CELLS[name]()
    rng = random.Random(upper * 10 + lower)
    point = random_point(rng, free_leaves(cell, upper, history=3))
    values = forward_values(cell, upper, point)
    ours = explicit(chain(cell, upper, lower).doit(), cell, values=values).evalf(30)
    if name in UNROLLED:
        known = unrolled_states(cell, lower, upper)
        target = sp.Matrix([known[e] for e in state_entries(cell, upper)])
        theirs = target.jacobian(state_entries(cell, lower)).xreplace(values).evalf(30)
    else:
        theirs = composed_chain(cell, upper, lower, values)
    assert max(abs(v) for v in ours - theirs) < 1e-20


def upstream_symbols(cell, stop):
    """g_i = ∂⁺L/∂s(i), as the entries of the direct adjoint of the whole state."""
    return {k: entries_of_adjoint(cell, k) for k in range(1, stop + 1)}


def entries_of_adjoint(cell, k):
    node = Adjoint(state_signal(cell, k), total=False)
    return [MatrixElement(node, r, 0) for r in range(int(node.shape[0]))]


def param_entries(cell, name):
    """The parameter's entries, row by row."""
    symbol = cell.parameter(name)
    if isinstance(symbol, sp.MatrixSymbol):
        return [symbol[a, b] for a in range(symbol.shape[0]) for b in range(symbol.shape[1])], symbol.shape
    return [symbol], (1, 1)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_full_parameter_gradients_equal_gradient_of_unrolled_loss(name):
    cell = CELLS[name]()
    length = 3
    rng = random.Random(3)
    g = upstream_symbols(cell, length)
    point = random_point(rng, free_leaves(cell, length) | {x for k in g for x in g[k]})
    values = forward_values(cell, length, point)
    if name in UNROLLED:
        known = unrolled_states(cell, 0, length)
        loss = sum(
            (
                gk * known[e]
                for k in range(1, length + 1)
                for gk, e in zip(g[k], state_entries(cell, k), strict=True)
            ),
            sp.S.Zero,
        )
    for param in cell.params:
        variables, _ = param_entries(cell, param)
        if name in UNROLLED:
            reference = sp.Matrix([sp.diff(loss, v) for v in variables]).xreplace(values).evalf(30)
        elif "skip" in name:
            continue  # delays: covered through the unrolled reference above
        else:
            reference = forward_mode_truncated(cell, param, length, length, values, g)
        formula = parameter_gradient(cell, param, Full(), length, expand_adjoint=True).rhs.doit()
        # the gradient has the parameter's shape; read it row by row, as `variables` is
        ours = sp.Matrix(list(explicit(formula, cell, values=values).evalf(30)))
        assert ours.shape[0] == len(variables)
        assert max(abs(v) for v in ours - reference) < 1e-20, (param, ours, reference)


def forward_mode_truncated(cell, param, length, tau, values, g):
    """d2l (9.7.7) cut after tau terms: ∂L/∂θ ≈ Σ_i g_iᵀ Σ_{t=max(1,i-tau)}^{i} (∏ J) ∂⁺s_t/∂θ."""
    step = explicit_step(cell)
    state_vector = sp.Matrix([step[("state", n)][r] for n in cell.states for r in range(int(cell.states[n]))])
    previous = state_entries(cell, t - 1)
    variables, _ = param_entries(cell, param)
    jac_state = state_vector.jacobian(previous)
    jac_param = state_vector.jacobian(variables)

    def at(matrix, k):
        return matrix.xreplace({t: k}).xreplace(values).evalf(30)

    total = sp.zeros(1, len(variables))
    for i in range(1, length + 1):
        g_i = sp.Matrix([values[x] for x in g[i]]).T
        for s in range(max(1, i - tau), i + 1):
            product = sp.eye(jac_state.shape[0])
            for k in range(i, s, -1):
                product = product * at(jac_state, k)
            total += g_i * product * at(jac_param, s)
    return total.T


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "leaky"])
@pytest.mark.parametrize("tau", [1, 2, 5])
def test_truncated_gradients_equal_forward_mode_truncation(name, tau):
    cell = CELLS[name]()
    length = 4
    rng = random.Random(tau)
    g = upstream_symbols(cell, length)
    point = random_point(rng, free_leaves(cell, length) | {x for k in g for x in g[k]})
    values = forward_values(cell, length, point)
    for param in list(cell.params)[:3]:
        formula = parameter_gradient(cell, param, Truncated(tau), length).rhs.doit()
        ours = sp.Matrix(list(explicit(formula, cell, values=values).evalf(30)))
        theirs = forward_mode_truncated(cell, param, length, tau, values, g)
        assert max(abs(v) for v in ours - theirs) < 1e-20, (param, tau)


def test_truncation_at_least_the_length_is_full():
    cell = CELLS["gru"]()
    length = 3
    for param in ("W_z", "U_h"):
        full = parameter_gradient(cell, param, Full(), length, expand_adjoint=True).rhs.doit()
        for tau in (length - 1, length, length + 4):
            assert parameter_gradient(cell, param, Truncated(tau), length).rhs.doit() == full
        assert parameter_gradient(cell, param, Truncated(1), length).rhs.doit() != full


def test_randomized_estimator_is_unbiased_exactly():
    """E over ξ_k ∈ {0, 1/π} (P(1/π) = π) of the randomized gradient == the full gradient, symbolically."""
    cell = C.elman(n=1, m=1)
    length = 3
    pi = sp.Symbol("pi_xi", positive=True)
    estimator = explicit(parameter_gradient(cell, "W_h", Randomized(pi), length).rhs.doit(), cell)[0]
    full = explicit(parameter_gradient(cell, "W_h", Full(), length, expand_adjoint=True).rhs.doit(), cell)[0]
    draws = [xi(k) for k in range(1, length + 1)]
    assert set(estimator.atoms(sp.Function)) & set(draws)
    expectation = sp.S.Zero
    for outcome in itertools.product([0, 1], repeat=length):
        probability = sp.Mul(*(pi if o else 1 - pi for o in outcome))
        values = {d: (1 / pi if o else 0) for d, o in zip(draws, outcome, strict=True)}
        expectation += probability * estimator.xreplace(values)
    assert sp.expand(expectation - full) == 0
    # and the estimator really is random: with all ξ = 0 only the one-step terms survive
    assert sp.expand(estimator.xreplace({d: 0 for d in draws}) - full) != 0


def test_adjoint_of_a_linear_cell_is_the_d2l_power_formula():
    """d2l (9.7.15): ∂L/∂h_t = Σ_{i=t}^{T} (W_hhᵀ)^{T-i} W_qhᵀ ∂L/∂o_{T+t-i}, for a linear hidden layer.

    With ∂⁺L/∂h(i) = W_qhᵀ ∂L/∂o(i), our adjoint Σ_{i=t}^{T} (∏_{t<k≤i} W_hh)ᵀ ∂⁺L/∂h(i) has the
    time-independent factor W_hh, so its chain is the power W_hh^(i-t); reindexing i -> T+t-i gives d2l's.
    """
    cell = gf.Cell(
        "linear",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W_hh": ("n", "n"), "W_hx": ("n", "m")},
        updates={"h": "W_hh @ h + W_hx @ x"},
    )
    delta = adjoint(cell)
    W = cell.parameter("W_hh")
    i = delta.limits[0]
    assert delta.summand.args[0].arg.doit() == sp.MatPow(W, i - t)
    small = cell.with_sizes(n=2, m=1)
    W2 = small.parameter("W_hh")
    length, at = 4, 2
    ours = adjoint(small, length=length).xreplace({t: at}).doit()
    d2l = sp.MatAdd(
        *(
            sp.MatMul(
                sp.MatPow(sp.Transpose(W2), length - k),
                Adjoint(Signal("h", 2, length + at - k, "state"), False),
            )
            for k in range(at, length + 1)
        )
    )
    assert sp.expand(explicit(ours, small) - explicit(d2l, small)) == sp.zeros(2, 1)
