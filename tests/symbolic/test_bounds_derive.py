"""Bounds (Pascanu and analogues), conditions, and derive(): golden forms, a numeric check, cost."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells.expr import t
from gradflow.export import to_text
from gradflow.symbolic.bounds import chain_bound, norm_bound
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.nodes import Norm

C = gf.cells


@pytest.mark.parametrize(
    ("cell", "step_gamma"),
    [
        (lambda: C.elman(), "γ ‖W_h‖"),
        (lambda: C.elman("sigmoid"), "γ_σ ‖W_h‖"),
        (lambda: C.indrnn(), "γ_relu ‖u‖_∞"),
        (lambda: C.lstm(), None),
    ],
)
def test_step_bounds(cell, step_gamma):
    bound = chain_bound(cell())
    if step_gamma is not None:
        assert to_text(bound.step_gamma) == step_gamma
    assert bound.vanishing.rel_op == "<" and bound.exploding.rel_op == ">"


def test_pascanu_bound_for_elman():
    """‖∂h(i)/∂h(j)‖ ≤ ‖W_h‖^(i-j) ∏_{j<t≤i} ‖diag(σ'(·))‖ ≤ (γ‖W_h‖)^(i-j)  (Pascanu et al. 2013)."""
    bound = chain_bound(C.elman())
    i, j = sp.symbols("i j", integer=True)
    W_h = C.elman().parameter("W_h")
    assert bound.chain.has(sp.Product) and bound.chain.has(Norm(W_h) ** (i - j))
    assert bound.chain_gamma == (sp.Symbol("gamma", positive=True) * Norm(W_h)) ** (i - j)
    assert str(bound.vanishing) == "gamma*||W_h||_2 < 1"
    values = chain_bound(C.elman("sigmoid"), gamma_mode="value")
    assert values.step_gamma == Norm(W_h) / 4  # gamma(sigmoid) = 1/4: vanishing when ‖W_h‖ < 4


def test_leaky_bound_matches_the_literature():
    alpha = sp.Symbol("alpha", real=True)
    bound = chain_bound(C.leaky()).step_gamma.subs(alpha, sp.Rational(9, 10))
    W_h = C.leaky().parameter("W_h")
    assert (
        sp.simplify(
            bound - (sp.Rational(9, 10) + sp.Rational(1, 10) * sp.Symbol("gamma", positive=True) * Norm(W_h))
        )
        == 0
    )


def test_lstm_cell_path_is_bounded_by_the_forget_gate():
    J = gf.symbolic.step_jacobian(C.lstm(), "c")
    assert norm_bound(J, C.lstm()) == 1  # a sigmoid gate lies in (0, 1)
    assert norm_bound(gf.symbolic.step_jacobian(C.lstm(forget_gate=False), "c")) == 1  # the CEC


def _spectral(matrix):
    return float(np.linalg.norm(np.array(matrix.tolist(), dtype=float), 2))


@pytest.mark.parametrize("name", ["elman", "leaky", "indrnn", "gru", "lstm", "minimal", "ctrnn"])
def test_step_bound_is_never_below_the_actual_norm(name):
    """At random points, ‖J_t‖₂ (numeric) ≤ the structured bound, with actual derivative factors and with γ."""
    cell = getattr(C, name)(n=3, m=2)
    J = gf.symbolic.state_jacobian(cell)
    step = explicit_step(cell)
    rng = random.Random(5)
    for _ in range(5):
        atoms = set().union(*(m.atoms(MatrixElement) for m in step.values()))
        scalars = set().union(*(m.free_symbols for m in step.values())) - atoms - {t}
        point = {a: sp.Float(rng.uniform(-2, 2)) for a in atoms}
        point.update({s: sp.Float(rng.uniform(0.05, 0.95)) for s in scalars})  # alpha, dt/tau
        numeric_step = {k: m.xreplace(point).evalf() for k, m in step.items()}
        actual = _spectral(explicit(J, cell, numeric_step).xreplace(point).evalf())
        for mode in ("keep", "value"):
            bound = norm_bound(J, cell, gamma_mode=mode)
            norms = {e: sp.Float(_norm_of(e, cell, numeric_step, point)) for e in bound.atoms(Norm)}
            assert actual <= float(bound.xreplace(norms).xreplace(point)) * (1 + 1e-12)


def _norm_of(norm: Norm, cell, step, point) -> float:
    value = explicit(norm.arg, cell, step).xreplace(point).evalf()
    array = np.array(value.tolist(), dtype=float)
    if norm.p == sp.oo:
        return float(np.abs(array).max())
    return float(np.linalg.norm(array, 2))


def test_derive_every_builtin_cell_is_fast_and_complete():
    for cell in [
        C.elman(),
        C.jordan(),
        C.lstm(),
        C.lstm(False),
        C.lstm(peephole=True),
        C.gru(),
        C.gru(True),
        C.leaky(),
        C.skip(3),
        C.ctrnn(),
        C.indrnn(),
        C.minimal(),
        C.stack([C.elman(), C.gru()]),
        C.bidirectional(C.lstm()),
    ]:
        start = time.perf_counter()
        derivation = gf.derive(cell)
        assert time.perf_counter() - start < 5  # generous; benchmarks/ measures the real figure
        titles = [step.title for step in derivation]
        assert titles[0] == "Cell" and "Step Jacobian" in titles and "Adjoint recursion" in titles
        assert len(derivation.titled("Parameter gradient")) == len(cell.params)
        if not cell.backward:
            assert "Adjoint (randomized)" in titles
        for step in derivation:
            assert isinstance(step.equation, sp.Basic) and step.prose


def test_derive_rejects_non_cells():
    with pytest.raises(gf.GradflowError, match="Cell"):
        gf.derive("elman")


def test_user_defined_gated_cell():
    """A gated cell written in a test: the whole derivation goes through, and its Jacobian is checked."""
    cell = gf.Cell(
        "my_gated",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W_g": ("n", "n"), "U_g": ("n", "m"), "W": ("n", "n"), "U": ("n", "m")},
        intermediates={"g": "sigmoid(W_g @ h + U_g @ x)"},
        updates={"h": "g * h + (1 - g) * tanh(W @ h + U @ x)"},
    )
    derivation = gf.derive(cell)
    assert len(derivation.titled("Parameter gradient")) == 4
    J = gf.symbolic.step_jacobian(cell, "h")
    assert "diag(g^(t))" in to_text(J)


@pytest.mark.parametrize("activation", ["relu", "hard_tanh", "leaky_relu", "elu"])
def test_chain_bound_keeps_piecewise_activations_inside_their_norms(activation):
    """sympy's Product folds a Piecewise to the top; the one inside ReLU' must stay in its norm."""
    cell = gf.cells.elman(activation)
    products = chain_bound(cell).chain.atoms(sp.Product)
    assert products and all(
        not p.function.has(sp.Piecewise) or isinstance(p.function, Norm) for p in products
    )
    assert "Piecewise" not in str(chain_bound(cell).chain.as_ordered_factors()[-1].function.func)
    expanded = chain_bound(cell, 3, 1).chain.doit()
    assert len(expanded.atoms(Norm)) == 3  # two step norms and ||W_h||


def test_a_linear_activation_drops_its_diag():
    """diag(id'(z)) = I: the identity's step Jacobian is W_h itself, and its pullback passes g on."""
    from gradflow.symbolic.jacobian import step_jacobian
    from gradflow.symbolic.vjp import pullback

    cell = gf.cells.elman("identity")
    assert step_jacobian(cell, "h") == cell.parameter("W_h")
    g = sp.MatrixSymbol("g", *cell.updates["h"].shape)
    assert pullback(cell.updates["h"], cell.parameter("b"), g) == g
