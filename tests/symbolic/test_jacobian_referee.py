"""Referee: structured step Jacobians equal sympy's componentwise Jacobians (explicit mode)."""

from __future__ import annotations

import random

import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells.expr import t
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.jacobian import local_jacobian, step_jacobian, total_jacobians

C = gf.cells

CELLS = {
    "elman": lambda n: C.elman(n=n, m=2),
    "elman_relu": lambda n: C.elman("relu", n=n, m=2),
    "elman_softsign": lambda n: C.elman("softsign", n=n, m=2),
    "jordan": lambda n: C.jordan(n=n, m=2, k=2),
    "lstm": lambda n: C.lstm(n=n, m=2),
    "lstm1997": lambda n: C.lstm(forget_gate=False, n=n, m=2),
    "lstm_peephole": lambda n: C.lstm(peephole=True, n=n, m=2),
    "lstm1997_peephole": lambda n: C.lstm(False, True, n=n, m=2),
    "gru": lambda n: C.gru(n=n, m=2),
    "gru_reset_after": lambda n: C.gru(True, n=n, m=2),
    "leaky": lambda n: C.leaky(n=n, m=2),
    "skip3": lambda n: C.skip(3, n=n, m=2),
    "skip2_only": lambda n: C.skip(2, unit_connection=False, n=n, m=2),
    "ctrnn": lambda n: C.ctrnn(n=n, m=2),
    "indrnn": lambda n: C.indrnn(n=n, m=2),
    "minimal": lambda n: C.minimal(n=n, m=2),
    "stack": lambda n: C.stack([C.elman(n=n, m=2), C.gru(n=n, m=n)]),
    "bidirectional": lambda n: C.bidirectional(C.lstm(n=n, m=2)),
}


def _compare(cell, step, structured, target, variables, seed, count=3):
    """Evaluate the structured Jacobian and sympy's componentwise one at random points.

    The step's intermediates are evaluated numerically first and fed to the
    structured expression, so nothing is expanded symbolically but the
    reference itself: sympy's Jacobian of the fully expanded step, with real
    component symbols so that Abs and sign differentiate.
    """
    rng = random.Random(seed)
    atoms = set(variables)
    scalars = set()
    for matrix in step.values():
        atoms |= matrix.atoms(MatrixElement)
        scalars |= {s for s in matrix.free_symbols if not isinstance(s, MatrixElement) and s != t}
    real = {atom: sp.Symbol(str(atom), real=True) for atom in atoms}
    reference = step[target].xreplace(real).jacobian([real[v] for v in variables])
    for _ in range(count):
        point = {}
        for atom in [*sorted(atoms, key=str), *sorted(scalars, key=str)]:
            value = rng.randint(-150, 150) / 97
            while abs(value) < 0.05 or abs(abs(value) - 1) < 0.05:
                value = rng.randint(-150, 150) / 97
            point[atom] = sp.Float(value, 30)
        numeric_step = {node: m.xreplace(point).evalf(30) for node, m in step.items()}
        ours = explicit(structured, cell, numeric_step).xreplace(point).evalf(30)
        real_point = {real.get(k, k): v for k, v in point.items()}
        theirs = reference.xreplace(real_point).evalf(30)
        assert ours.shape == theirs.shape
        assert max(abs(v) for v in (ours - theirs)) < 1e-18, (ours, theirs)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_step_jacobians_match_componentwise(name, n):
    cell = CELLS[name](n)
    step = explicit_step(cell)
    for state in cell.states:
        for wrt in cell.states:
            for lag in cell.delays(wrt) or (1,):
                structured = step_jacobian(cell, state, wrt, lag)
                offset = lag if wrt in cell.backward else -lag
                wrt_signal = cell.signal(wrt, t + offset)
                variables = [MatrixElement(wrt_signal, i, 0) for i in range(int(cell.states[wrt]))]
                _compare(cell, step, structured, ("state", state), variables, seed=lag + 10 * n)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "leaky", "ctrnn", "minimal", "indrnn"])
def test_parameter_jacobians_match_componentwise(name):
    """∂⁺s/∂θ for vector, scalar and (through vec) matrix parameters."""
    cell = CELLS[name](2)
    step = explicit_step(cell)
    state = next(iter(cell.states))
    for param, shape in cell.params.items():
        symbol = cell.parameter(param)
        total = total_jacobians(cell, symbol)[("state", state)]
        if len(shape) == 2:
            rows, cols = (int(s) for s in shape)
            variables = [symbol[i, j] for j in range(cols) for i in range(rows)]  # vec: columns stacked
        elif len(shape) == 1:
            variables = [symbol[i, 0] for i in range(int(shape[0]))]
        else:
            variables = [symbol]
        _compare(cell, step, total, ("state", state), variables, seed=7)


def test_local_jacobian_of_unread_signal_is_zero():
    cell = C.elman()
    result = local_jacobian(cell.updates["h"], cell.signal("h", t - 2))
    assert isinstance(result, sp.ZeroMatrix)


def test_lstm_constant_error_carousel():
    """Hochreiter & Schmidhuber 1997: without a forget gate the cell carries error unchanged."""
    assert step_jacobian(C.lstm(forget_gate=False), "c") == sp.Identity(
        sp.Symbol("n", integer=True, positive=True)
    )
    assert str(step_jacobian(C.lstm(), "c")) == "diag(f[t])"


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (dict(state="q"), "no state 'q'"),
        (dict(state="h", wrt="c"), "no state 'c'"),
        (dict(state="h", lag=0), "lag"),
        (dict(state="h", lag=1.5), "lag"),
    ],
)
def test_malformed_requests(request_, match):
    with pytest.raises(gf.GradflowError, match=match):
        step_jacobian(C.elman(), **request_)


def test_explicit_mode_needs_integer_sizes():
    with pytest.raises(gf.CellDefinitionError, match="with_sizes"):
        explicit_step(C.elman())
