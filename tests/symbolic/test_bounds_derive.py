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
from gradflow.cli import REPORT_CELLS, parse_cell
from gradflow.export import to_text
from gradflow.symbolic.bound_nodes import BlockBound, Unit, UnitMax, UnitRate
from gradflow.symbolic.bounds import chain_bound, norm_bound
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.jacobian import Diag
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
    f = C.lstm().signal("f", t)
    assert norm_bound(J, C.lstm()) == Norm(f, sp.oo)  # its largest value, at most 1
    assert norm_bound(gf.symbolic.step_jacobian(C.lstm(forget_gate=False), "c")) == 1  # the CEC


def _spectral(matrix):
    return float(np.linalg.norm(np.array(matrix.tolist(), dtype=float), 2))


#: Every built-in cell with a chain bound, by its command-line spec.
BOUNDED = [spec for spec in REPORT_CELLS if not spec.startswith(("skip", "bidirectional"))] + [
    "stack(elman, gru)"
]


def concrete(spec: str, size: int = 2) -> gf.Cell:
    cell = parse_cell(spec)
    return cell.with_sizes(**{str(s): size for s in cell.size_symbols})


@pytest.mark.parametrize("spec", BOUNDED)
def test_step_bound_is_never_below_the_actual_norm(spec):
    """At random points, ‖J_t‖₂ (sympy componentwise) ≤ the structured bound ≤ its γ form."""
    cell = concrete(spec, 3 if spec in ("elman", "gru", "minimal", "indrnn") else 2)
    J = gf.symbolic.state_jacobian(cell)
    step = explicit_step(cell)
    atoms = set().union(*(m.atoms(MatrixElement) for m in step.values()))
    scalars = set().union(*(m.free_symbols for m in step.values())) - atoms - {t}
    bounds = {mode: norm_bound(J, cell, gamma_mode=mode) for mode in ("keep", "value")}
    rng = random.Random(5)
    for _ in range(4):
        point = {a: sp.Float(rng.uniform(-2, 2)) for a in atoms}
        point.update({s: sp.Float(rng.uniform(0.05, 0.95)) for s in scalars})  # alpha, dt/tau
        numeric_step = {k: m.xreplace(point).evalf() for k, m in step.items()}
        actual = _spectral(explicit(J, cell, numeric_step).xreplace(point).evalf())
        keep, value = (_evaluate(bounds[mode], cell, numeric_step, point) for mode in ("keep", "value"))
        assert actual <= keep * (1 + 1e-12) and keep <= value * (1 + 1e-12), (actual, keep, value)


def _leaves(e):
    if isinstance(e, sp.Add | sp.Mul | sp.Pow | sp.Abs):
        return set().union(*(_leaves(a) for a in e.args))
    return {e}


def _evaluate(bound: sp.Expr, cell, step, point) -> float:
    """A bound at a point: its norms and per-unit maxima from the explicit components (not the kernels)."""

    def vector(v) -> np.ndarray:
        return np.array(explicit(v, cell, step).xreplace(point).evalf().tolist(), dtype=float)[:, 0]

    def scalar(e) -> float:
        values = {}
        for leaf in _leaves(e):
            if isinstance(leaf, Norm):
                values[leaf] = sp.Float(norm(leaf))
            elif isinstance(leaf, UnitMax):
                values[leaf] = sp.Float(per_unit(leaf.expr).max())
            elif isinstance(leaf, BlockBound):
                values[leaf] = sp.Float(scalar(leaf.definition))
        return float(e.xreplace(values).xreplace(point).evalf())

    def per_unit(e) -> np.ndarray:
        found = sorted((a for a in _leaves(e) if not a.is_number), key=sp.default_sort_key)
        arrays = []
        for leaf in found:
            if isinstance(leaf, Unit):
                arrays.append(vector(leaf.vector))
            elif isinstance(leaf, UnitRate):
                arrays.append(per_unit(leaf.definition))
            else:
                arrays.append(np.array(scalar(leaf)))
        dummies = [sp.Dummy() for _ in found]
        function = sp.lambdify(dummies, e.xreplace(dict(zip(found, dummies, strict=True))), "numpy")
        return np.asarray(function(*arrays), dtype=float)

    def norm(n: Norm) -> float:
        if isinstance(n.arg, sp.ImmutableMatrix):
            return float(np.linalg.norm(np.array([[scalar(x) for x in row] for row in n.arg.tolist()]), 2))
        if isinstance(n.arg, Diag):
            return float(np.abs(vector(n.arg.vector)).max())
        if n.p == sp.oo:
            return float(np.abs(vector(n.arg)).max())
        return _spectral(explicit(n.arg, cell, step).xreplace(point).evalf())

    return scalar(bound)


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
