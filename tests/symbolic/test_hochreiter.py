"""Hochreiter's local error flow (seed 002, C12–C14): recursion, path sums, scaling, CEC."""

from __future__ import annotations

import itertools
import re

import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells import CATALOGUE, Cell, t
from gradflow.errors import CellDefinitionError, GradflowError
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.hochreiter import (
    ErrorSignal,
    OpaqueDerivative,
    cec_condition,
    cec_path,
    cec_weights,
    classify_scaling,
    error_flow_matrix,
    error_flow_paths,
    error_flow_product,
    error_recursion,
    scaling_factor,
)
from gradflow.symbolic.jacobian import Diag, step_jacobian

C = gf.cells
theta, slope = ErrorSignal, OpaqueDerivative


def _zero(expr) -> bool:
    return sp.expand(expr) == 0


# -- C12: the recursion ---------------------------------------------------------------------


def test_recursion_at_n2_is_the_hand_written_formula():
    cell = C.elman(n=2, m=1)
    W = cell.parameter("W_h")
    expected = [
        (theta(0, t), slope(0, t) * (W[0, 0] * theta(0, t + 1) + W[1, 0] * theta(1, t + 1))),
        (theta(1, t), slope(1, t) * (W[0, 1] * theta(0, t + 1) + W[1, 1] * theta(1, t + 1))),
    ]
    equations = error_recursion(cell, opaque=True)
    assert len(equations) == 2
    for equation, (lhs, rhs) in zip(equations, expected, strict=True):
        assert isinstance(equation, sp.Eq)
        assert equation.lhs == lhs
        assert _zero(equation.rhs - rhs)


def test_recursion_latex():
    (first, _) = error_recursion(C.elman(n=2, m=1), opaque=True)
    assert sp.latex(first) == (
        r"\vartheta_{0}\left(t\right) = \left(\vartheta_{0}\left(t + 1\right) {W_{h}}_{0,0}"
        r" + \vartheta_{1}\left(t + 1\right) {W_{h}}_{1,0}\right) f'_{0}\left(t\right)"
    )


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softsign", "relu"])
def test_recursion_matches_sympy_differentiation(activation, rng):
    """Referee: ϑ(t) = (∂net(t+1)/∂net(t))ᵀ ϑ(t+1), the Jacobian by sympy's componentwise diff."""
    cell = C.elman(activation, n=2, m=1)
    sigma = C.as_activation(activation)
    update = cell.updates["h"]
    nets = [sp.Symbol(f"a{j}", real=True) for j in range(2)]
    # net(t + 1) with h(t) = σ(a): explicit mode fills h[t] from the given step
    hidden = {("state", "h"): sp.Matrix([sigma(a) for a in nets])}
    K = explicit(update.arg.xreplace({t: t + 1}), cell, hidden).jacobian(nets)
    referee = K.T * sp.Matrix([theta(i, t + 1) for i in range(2)])
    ours = error_recursion(cell)
    net = explicit(update.arg, cell)
    for _ in range(3):
        point = {e: sp.Rational(int(rng.integers(-20, 21)), 7) for e in net.atoms(MatrixElement)}
        point.update({theta(i, t + 1): sp.Rational(int(rng.integers(-9, 10)), 4) for i in range(2)})
        at_nets = {a: net[j, 0].xreplace(point) for j, a in enumerate(nets)}
        for j, equation in enumerate(ours):
            assert equation.lhs == theta(j, t)
            difference = equation.rhs.xreplace(point) - referee[j].xreplace(at_nets).xreplace(point)
            assert abs(sp.N(difference, 40)) < 1e-30


def test_recursion_of_indrnn_is_diagonal():
    cell = C.indrnn(n=2, m=1)
    u = cell.parameter("u")
    for j, equation in enumerate(error_recursion(cell, opaque=True)):
        assert equation.rhs == slope(j, t) * u[j, 0] * theta(j, t + 1)


def test_recursion_of_a_user_cell():
    cell = Cell("hopfield", states={"h": 2}, inputs={}, params={"A": (2, 2)}, updates={"h": "sigmoid(A @ h)"})
    A = cell.parameter("A")
    (first, _) = error_recursion(cell, opaque=True)
    assert _zero(first.rhs - slope(0, t) * (A[0, 0] * theta(0, t + 1) + A[1, 0] * theta(1, t + 1)))


def test_recursion_is_one_step_of_the_flow_matrix():
    cell = C.elman(n=3, m=1)
    M = error_flow_matrix(cell, 1)
    now = sp.Matrix([theta(i, t) for i in range(3)])
    for j, equation in enumerate(error_recursion(cell, opaque=True)):
        shifted = equation.xreplace({t: t - 1})
        assert shifted.lhs == theta(j, t - 1)
        assert _zero(shifted.rhs - (M * now)[j])


# -- C13: paths and matrices ----------------------------------------------------------------


@pytest.mark.parametrize("q", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [2, 3])
def test_paths_equal_the_transposed_jacobian_product(n, q):
    cell = C.elman(n=n, m=1)
    M = error_flow_matrix(cell, q)
    assert M.shape == (n, n)
    for u, v in itertools.product(range(n), repeat=2):
        paths = error_flow_paths(cell, u, v, q)
        if q > 1:
            assert isinstance(paths, sp.Add) and len(paths.args) == n ** (q - 1)
        assert _zero(paths - M[v, u]), (u, v)


def test_q1_is_hochreiters_own_first_case():
    """f'_v(net_v(t-1)) w_uv, with w_uv = W_h[u, v] the connection from v to u."""
    cell = C.elman(n=3, m=1)
    W = cell.parameter("W_h")
    for u, v in itertools.product(range(3), repeat=2):
        assert error_flow_paths(cell, u, v, 1) == slope(v, t - 1) * W[u, v]


def _numbers(cell, q, seed=7):
    """A non-symmetric W_h and distinct derivative values for every unit and step."""
    n = int(cell.states["h"])
    W = sp.Matrix(n, n, lambda i, j: sp.Rational(3 * i + 7 * j * j + 1, 5))
    assert W != W.T
    values = {cell.parameter("W_h")[i, j]: W[i, j] for i in range(n) for j in range(n)}
    D = {}
    for m in range(1, q + 1):
        D[m] = sp.diag(*[sp.Rational(seed * m + 2 * j + 1, 11 + j) for j in range(n)])
        values.update({slope(j, t - m): D[m][j, j] for j in range(n)})
    return W, D, values


@pytest.mark.parametrize("q", [2, 3])
def test_order_is_backwards_in_time_with_transposes(q):
    cell = C.elman(n=3, m=1)
    W, D, values = _numbers(cell, q)
    ours = error_flow_matrix(cell, q).xreplace(values)
    backwards = sp.eye(3)
    for m in range(q, 0, -1):  # D(t-q) Wᵀ … D(t-1) Wᵀ
        backwards = backwards * D[m] * W.T
    assert ours == backwards
    forwards = sp.eye(3)
    for m in range(1, q + 1):
        forwards = forwards * D[m] * W.T
    untransposed = sp.eye(3)
    for m in range(q, 0, -1):
        untransposed = untransposed * D[m] * W
    assert ours != forwards
    assert ours != untransposed
    assert ours != backwards.T
    for u, v in itertools.product(range(3), repeat=2):
        assert error_flow_paths(cell, u, v, q).xreplace(values) == backwards[v, u]


def test_printed_weight_order_needs_a_symmetric_W():
    """Seed 002's closed form writes w_{l_m l_{m-1}}: right only when W_h is symmetric."""
    cell, q = C.elman(n=2, m=1), 2
    W = cell.parameter("W_h")
    printed = sp.Add(
        *(
            sp.Mul(*(slope(path[m], t - m) * W[path[m], path[m - 1]] for m in range(1, q + 1)))
            for path in ((0, middle, 1) for middle in range(2))
        )
    )
    ours = error_flow_paths(cell, 0, 1, q)
    assert not _zero(printed - ours)
    symmetric = {W[1, 0]: W[0, 1]}
    assert _zero(printed.xreplace(symmetric) - ours.xreplace(symmetric))


@pytest.mark.parametrize("q", [1, 2, 3])
def test_flow_matrix_is_the_chain_of_transposed_step_jacobians(q):
    """M_q = diag(f'(t-q)) (∂h(t-1)/∂h(t-q))ᵀ W_hᵀ, the chain built from step_jacobian itself."""
    cell = C.elman(n=2, m=1)
    J = step_jacobian(cell, "h")
    diag, W = J.args
    factors = [diag.xreplace({t: t - q})]
    factors += [sp.Transpose(J.xreplace({t: t - k})) for k in range(q - 1, 0, -1)]
    factors.append(sp.Transpose(W))
    chain = explicit(sp.MatMul(*factors), cell)
    assert all(_zero(entry) for entry in chain - error_flow_matrix(cell, q, opaque=False))


def test_explicit_paths_match_explicit_matrix():
    cell = C.elman(n=2, m=1)
    M = error_flow_matrix(cell, 2, opaque=False)
    assert _zero(error_flow_paths(cell, 1, 0, 2, opaque=False) - M[0, 1])
    assert not M.atoms(OpaqueDerivative)


def test_error_flow_product_is_structured():
    product = error_flow_product(C.elman(), 3)
    assert isinstance(product, sp.MatMul) and len(product.args) == 6
    assert all(isinstance(f, Diag) for f in product.args[::2])
    assert all(f == sp.Transpose(C.elman().parameter("W_h")) for f in product.args[1::2])
    assert product.args[0].has(C.elman().signal("h", t - 4))  # oldest step leftmost


def test_indrnn_flows_only_along_the_diagonal():
    cell = C.indrnn(n=2, m=1)
    u = cell.parameter("u")
    assert error_flow_paths(cell, 0, 1, 3) == 0
    assert error_flow_paths(cell, 1, 1, 3) == sp.Mul(*(slope(1, t - m) for m in (1, 2, 3))) * u[1, 0] ** 3


# -- scaling factors --------------------------------------------------------------------------


def test_classify_scaling():
    assert classify_scaling(sp.Rational(3, 2)) == "exploding"
    assert classify_scaling(0.5) == "vanishing"
    assert classify_scaling(sp.Integer(1)) == "constant"
    assert classify_scaling(scaling_factor(C.elman(n=2, m=1), 0, 1)) == "undetermined"
    with pytest.raises(GradflowError):
        classify_scaling(sp.I)
    with pytest.raises(GradflowError):
        classify_scaling("not a number [")


def _at(factor, w, rest=0):
    """W_h's entries set to ``w``, every other entry (h, x, W_x, b) to ``rest``."""
    return factor.xreplace({e: w if e.parent.name == "W_h" else rest for e in factor.atoms(MatrixElement)})


def test_scaling_factor_explicit_sigmoid_and_tanh():
    sigmoid = C.elman("sigmoid", n=1, m=1)
    factor = scaling_factor(sigmoid, 0, 0, m=2, opaque=False)
    assert factor.has(sigmoid.signal("h", t - 3))
    assert classify_scaling(_at(factor, 4)) == "constant"  # σ'(0) = 1/4
    assert classify_scaling(_at(factor, -4)) == "constant"
    for rest in (0, 1, sp.Rational(-7, 3)):  # |σ'| ≤ 1/4: |w| < 4 vanishes at every net
        assert classify_scaling(_at(factor, sp.Rational(39, 10), rest)) == "vanishing"
    tanh = C.elman(n=1, m=1)
    factor = scaling_factor(tanh, 0, 0, opaque=False)
    assert classify_scaling(_at(factor, 2)) == "exploding"
    assert classify_scaling(_at(factor, 2, 3)) == "vanishing"


# -- C14: the constant error carousel -------------------------------------------------------


def test_cec_condition():
    assert cec_condition("identity", 1).doit() is sp.true
    assert cec_condition("identity", 2).doit() is sp.false
    net = sp.Symbol("net", real=True)
    assert cec_condition("tanh", 1) == sp.Eq(1 - sp.tanh(net) ** 2, 1, evaluate=False)
    assert cec_condition("tanh", 1).subs(net, 1).doit() is sp.false


def test_tanh_fails_for_some_net_whatever_w():
    w = sp.Symbol("w")
    at = [cec_condition("tanh", w).subs(sp.Symbol("net", real=True), value) for value in (0, 1)]
    assert sp.solve([sp.Eq(c.lhs, c.rhs) for c in at], w) == []
    for value in (1, 2, -1, sp.Rational(1, 2)):
        assert any(c.subs(w, value).doit() is sp.false for c in at)


@pytest.mark.parametrize("name", sorted(set(CATALOGUE) - {"sigma"}))
def test_only_the_identity_with_w_1_is_a_cec(name):
    expected = sp.FiniteSet(1) if name == "identity" else sp.S.EmptySet
    assert cec_weights(name) == expected


def test_cec_weights_of_a_scaled_linear_unit_and_generic():
    z = sp.Symbol("z")
    assert cec_weights(C.as_activation(sp.Lambda(z, 2 * z), name="double")) == sp.FiniteSet(sp.Rational(1, 2))
    assert cec_weights(C.as_activation(sp.Lambda(z, 0 * z + 3), name="const")) == sp.S.EmptySet
    with pytest.raises(GradflowError, match="undefined"):
        cec_weights("sigma")


@pytest.mark.parametrize("q", [1, 2, 5])
def test_self_connected_linear_unit_carries_error_unchanged(q):
    cell = C.elman("identity", n=1, m=1)
    w = cell.parameter("W_h")[0, 0]
    assert error_flow_paths(cell, 0, 0, q, opaque=False) == w**q
    assert error_flow_paths(cell, 0, 0, q, opaque=False).subs(w, 1) == 1
    (equation,) = error_recursion(cell)
    assert equation.subs(w, 1) == sp.Eq(theta(0, t), theta(0, t + 1))


@pytest.mark.parametrize("q", [1, 2, 5])
def test_cec_path_of_the_1997_lstm_is_the_identity(q):
    cell = C.lstm(forget_gate=False)
    assert step_jacobian(cell, "c") == sp.Identity(cell.states["c"])
    assert cec_path(cell, q) == sp.Identity(cell.states["c"])
    assert explicit(
        cec_path(C.lstm(forget_gate=False, n=2, m=1), q), C.lstm(forget_gate=False, n=2, m=1)
    ) == sp.eye(2)


def test_1997_cell_update_is_hochreiters_carousel():
    """s_c(t) = s_c(t-1) + g·y_in: the old cell enters with weight 1."""
    cell = C.lstm(forget_gate=False)
    update = cell.updates["c"]
    assert isinstance(update, sp.MatAdd)
    assert set(update.args) == {
        cell.signal("c", t - 1),
        sp.HadamardProduct(cell.signal("i"), cell.signal("c_tilde")),
    }


@pytest.mark.parametrize("q", [1, 2, 4])
def test_cec_path_with_forget_gate(q):
    cell = C.lstm()
    gates = [Diag(cell.signal("f", t - k)) for k in range(q)]
    expected = gates[0] if q == 1 else sp.MatMul(*gates)
    assert cec_path(cell, q) == expected


def test_cec_path_of_an_elman_state():
    cell = C.elman()
    assert cec_path(cell, 2, state="h") == sp.MatMul(
        step_jacobian(cell, "h"), step_jacobian(cell, "h").xreplace({t: t - 1})
    )


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: error_recursion(c),
        lambda c: error_flow_paths(c, 0, 1, 2),
        lambda c: error_flow_matrix(c, 2),
        lambda c: scaling_factor(c, 0, 1),
    ],
)
def test_symbolic_sizes_ask_for_with_sizes(call):
    with pytest.raises(CellDefinitionError, match="with_sizes"):
        call(C.elman())


@pytest.mark.parametrize(
    "cell",
    [
        C.lstm(n=2, m=1),
        C.lstm(forget_gate=False, n=2, m=1),
        C.gru(n=2, m=1),
        C.minimal(n=2, m=1),
        C.leaky(n=2, m=1),
        C.ctrnn(n=2, m=1),
        C.jordan(n=2, m=1, k=2),
        C.skip(2, n=2, m=1),
        C.stack([C.elman(n=2, m=1), C.elman(n=2, m=2)]),
        Cell(
            "backward",
            states={"h": 2},
            inputs={"x": 1},
            params={"W_h": (2, 2), "W_x": (2, 1)},
            updates={"h": "tanh(W_h @ h + W_x @ x)"},
            backward=["h"],
        ),
        Cell(
            "scaled", states={"h": 2}, inputs={}, params={"W_h": (2, 2)}, updates={"h": "tanh(2 * W_h @ h)"}
        ),
    ],
    ids=lambda c: c.name,
)
def test_cells_that_are_not_hochreiter_units_are_refused(cell):
    for call in (error_recursion, lambda c: error_flow_paths(c, 0, 0, 1), lambda c: error_flow_product(c, 1)):
        with pytest.raises(GradflowError, match=re.escape(repr(cell.name))):
            call(cell)


@pytest.mark.parametrize("q", [0, -1, True, 1.5, "2"])
def test_bad_steps(q):
    cell = C.elman(n=2, m=1)
    for call in (
        lambda: error_flow_paths(cell, 0, 1, q),
        lambda: error_flow_matrix(cell, q),
        lambda: error_flow_product(cell, q),
        lambda: cec_path(C.lstm(), q),
        lambda: scaling_factor(cell, 0, 1, q),
    ):
        with pytest.raises(GradflowError, match="int >= 1"):
            call()


@pytest.mark.parametrize("unit", [-1, 2, True, 0.0])
def test_bad_units(unit):
    with pytest.raises(GradflowError, match=re.escape("0..1")):
        error_flow_paths(C.elman(n=2, m=1), unit, 0, 1)


def test_other_bad_input():
    with pytest.raises(GradflowError, match="Cell"):
        error_recursion("elman")
    with pytest.raises(CellDefinitionError, match="no state"):
        cec_path(C.elman(), 1)
    with pytest.raises(CellDefinitionError):
        cec_condition("nope")
    assert explicit_step(C.elman(n=1, m=1))  # explicit mode itself still works on concrete cells
