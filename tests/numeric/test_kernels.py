"""The generated kernels: what they compute once, what they defer, and what they reuse.

The referee tests (PyTorch, finite differences) say the numbers are right; these say the work is
shaped as documented -- a pullback through sigma(u) reads the saved sigma(u), and the terms
W^T ell of a pullback to another step or to an input are handed to the caller to form in one product.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import gradflow as gf
from gradflow.cells import activations as act
from gradflow.cells.activations import z
from gradflow.numeric.lower import derivative_of_value, y


@pytest.mark.parametrize("activation", [act.tanh, act.sigmoid])
def test_the_derivative_of_the_value_is_the_derivative(activation):
    form = derivative_of_value(activation)
    assert form is not None and form.free_symbols == {y}
    difference = form.xreplace({y: activation.expression}) - activation.derivative.expression
    assert sp.simplify(difference.rewrite(sp.exp)) == 0


@pytest.mark.parametrize("activation", [act.relu, act.identity, act.hard_tanh])
def test_no_value_form_where_there_is_none_to_gain(activation):
    # relu' and hard_tanh' are piecewise in u, identity' is a constant: nothing to save
    assert derivative_of_value(activation) is None


def test_a_user_activation_gets_a_value_form_when_sympy_finds_one():
    exponential = act.as_activation(sp.Lambda(z, sp.exp(z)), name="exp")  # (e^z)' = e^z = y
    assert derivative_of_value(exponential) == y


def test_a_value_form_is_rejected_where_a_sample_is_not_a_real_number():
    from gradflow.numeric.lower import _agrees_at_samples

    assert _agrees_at_samples(1 - y**2, sp.tanh(z), 1 - sp.tanh(z) ** 2)
    assert not _agrees_at_samples(y, sp.sqrt(z), sp.Integer(0))  # sqrt(-3.5) is imaginary: no TypeError
    assert not _agrees_at_samples(y, 1 / z, sp.Integer(0))  # a pole at z = 0
    assert not _agrees_at_samples(y, sp.tanh(z), sp.nan)


@pytest.mark.parametrize(("make", "gate"), [(gf.cells.lstm, "f"), (gf.cells.gru, "z"), (gf.cells.elman, "h")])
def test_pullbacks_read_the_saved_activation_instead_of_recomputing_it(make, gate):
    compiled = gf.numeric.compile(make(), n=3, m=2)
    source = compiled.program.vjp(gate, False).source
    assert "act" not in source and "_sigmoid" not in source and "tanh" not in source, source
    assert "F[" in source


def test_a_pullback_looks_up_only_the_reads_its_kernel_uses():
    """A gate's pullback has the saved gate and reads nothing; c = f c' + i g reads all four factors."""
    program = gf.numeric.compile(gf.cells.lstm(), n=3, m=2).program
    gate = program.vjp("f", False)
    assert gate.reads == (("h", -1), ("x", 0)) and gate.needs == ()
    cell = program.vjp("c", False)
    assert set(cell.needs) == {("f", 0), ("c", -1), ("c_tilde", 0), ("i", 0)}
    assert all(f"R[{key!r}]" in cell.source for key in cell.needs)


@pytest.mark.parametrize(("make", "most"), [(gf.cells.lstm, 4), (gf.cells.gru, 5)])
def test_runs_of_diagonal_factors_pass_over_the_chain_once(make, most):
    """diag(o) diag(tanh'(c)) diag(i) diag(1 - g^2) W_c: the vectors are multiplied first, then M once.

    Passes over M before merging: 10 for the LSTM's dh/dh, 13 for the GRU's (whose
    diag(h') - diag(h_tilde) took four on its own).
    """
    program = gf.numeric.compile(make(), n=3, m=2).program
    _, source, _ = program.jacobian("h", "h", 1)
    passes = source.count("xp.expand_dims(")  # each is an elementwise pass over the (B, R, N) chain
    assert passes == most, source


def test_diagonals_merge_through_multiples_sums_and_a_closing_sum():
    from gradflow.numeric.lower import _as_diagonal, _merge_diagonals
    from gradflow.symbolic.jacobian import Diag

    a, b, c = (sp.MatrixSymbol(name, 3, 1) for name in "abc")
    W, V = sp.MatrixSymbol("W", 3, 3), sp.MatrixSymbol("V", 3, 3)
    merged = _merge_diagonals([Diag(a), Diag(b), W, Diag(c)])
    assert len(merged) == 3 and merged[1] == W and merged[2] == Diag(c)
    assert set(merged[0].vector.args) == {a, b}
    difference = _as_diagonal(sp.MatAdd(Diag(a), sp.MatMul(-1, Diag(b))))
    assert isinstance(difference, Diag) and sp.simplify(difference.vector - (a - b)) == sp.ZeroMatrix(3, 1)
    assert _as_diagonal(sp.MatAdd(Diag(a), W)) is None
    (total,) = _merge_diagonals([Diag(a), sp.MatAdd(sp.MatMul(Diag(b), W), V)])
    assert isinstance(total, sp.MatAdd)  # diag(a) (diag(b) W + V) = diag(a b) W + diag(a) V
    first, second = sorted(total.args, key=lambda t: len(t.args), reverse=True)
    assert first.args[:2] == (Diag(a), Diag(b)) and second.args == (Diag(a), V)
    from gradflow.numeric.lower import Emitter

    emitter = Emitter({"a", "b"})  # a bare sum of diagonals, M diag(a) - 2 M diag(b): one pass over M
    emitter.right("M", sp.MatAdd(Diag(a), sp.MatMul(-2, Diag(b))))
    assert sum("expand_dims" in line for line in emitter.lines) == 1, emitter.lines


def test_step_jacobians_take_sigma_prime_from_the_preactivation_not_from_the_value():
    """sigma'(u) in a chain's step Jacobian comes from u in a stable form, not from 1 - h^2 or f (1 - f).

    Those are exactly 0 in saturation, where the true factor (4 e^{-2|u|}, e^{-u}) is tiny but
    representable: the chain's log norm would read -inf. Pullbacks (bptt) keep the value forms.
    """
    _, source, reads = gf.numeric.compile(gf.cells.elman(), n=3, m=2).program.jacobian("h", "h", 1)
    assert "act0(xp" in source and "W_x" in source, source  # the pre-activation, then tanh'
    assert ("x", 0) in reads and ("h", -1) in reads
    _, source, reads = gf.numeric.compile(gf.cells.lstm(), n=3, m=2).program.jacobian("h", "h", 1)
    assert all(f"U_{gate}" in source for gate in "fioc"), source  # every gate's pre-activation
    assert ("x", 0) in reads and "1.0 -" not in source
    # and the numbers are those of the pre-activation form: the chain against finite differences
    cell = gf.cells.elman()
    params = gf.init_params(cell, sizes={"n": 3, "m": 2}, seed=4)
    x = np.random.default_rng(4).normal(size=(4, 1, 2))
    chain = gf.jacobian_chain(cell, params, x, full=True)
    traj = gf.simulate(cell, params, x)

    def last(h3):
        z = params["W_h"] @ h3 + params["W_x"] @ x[3, 0] + params["b"]
        return np.tanh(z)

    h3, eps = traj["h"][3, 0], 1e-6
    numeric = np.stack([(last(h3 + eps * e) - last(h3 - eps * e)) / (2 * eps) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(chain.matrix(1)[0], numeric, rtol=1e-7, atol=1e-10)


def test_products_with_weights_are_deferred_to_one_product_per_target():
    compiled = gf.numeric.compile(gf.cells.lstm(), n=3, m=2)
    vjp = compiled.program.vjp("f", False)
    assert vjp.reads == (("h", -1), ("x", 0))
    assert vjp.deferred == ((0, "W_f"), (1, "U_f"))
    assert "matmul" not in vjp.source  # both W_f^T ell and U_f^T ell are formed by the caller
    within = compiled.program.vjp("c", False)  # c reads f, i, c~ at the same step: elementwise, now
    assert within.deferred == ()


def test_input_gradients_are_formed_on_first_access_and_kept():
    cell = gf.cells.lstm()
    rng = np.random.default_rng(0)
    params = gf.init_params(cell.with_sizes(n=3, m=2), seed=1)
    x = rng.normal(size=(4, 2, 2))
    grads = gf.bptt(cell, params, x, {"h": rng.normal(size=(4, 2, 3))})
    assert callable(grads._inputs)
    first = grads.inputs
    assert grads.inputs is first and first["x"].shape == (4, 2, 2)


def fused_groups(cell, **sizes):
    program = gf.numeric.compile(cell, **sizes).program
    return [[(group.read, group.params) for group in groups] for groups in program.fused], program


def test_the_lstm_gates_share_one_product_with_h_per_step():
    groups, program = fused_groups(gf.cells.lstm(), n=3, m=2)
    assert groups == [[(("h", -1), ("W_c", "W_f", "W_i", "W_o"))]]
    for gate in ("f", "i", "o", "c_tilde"):
        assert "matmul" not in program.forward[gate].source  # W_g h comes in H, U_g x is hoisted


def test_only_plain_products_with_a_known_read_are_fused():
    # GRU: W_z h and W_r h share h(t-1); W_h (r * h) reads a gate of the same step: not fused
    groups, _ = fused_groups(gf.cells.gru(), n=3, m=2)
    assert groups == [[(("h", -1), ("W_r", "W_z"))]]
    groups, _ = fused_groups(gf.cells.elman(), n=3, m=2)  # one matrix per read: nothing to gain
    assert groups == [[]]


def test_fused_products_follow_the_sweeps_of_a_stack_over_a_bidirectional_layer():
    cell = gf.cells.stack([gf.cells.bidirectional(gf.cells.lstm()), gf.cells.lstm()])
    groups, _ = fused_groups(cell, n=2, m=1)
    assert [g[0] for sweep in groups for g in sweep] == [
        ("layer1.fwd.h", -1),  # forward sweep, the step before
        ("layer1.bwd.h", 1),  # backward sweep, the step after
        ("layer1.h", 0),  # layer 2 reads layer 1's output of the same step: an earlier sweep computed it
        ("layer2.h", -1),
    ]


def lstm_problem(T=5, B=2, n=3, m=2):
    cell = gf.cells.lstm()
    rng = np.random.default_rng(3)
    params = gf.init_params(cell.with_sizes(n=n, m=m), seed=2)
    return cell, params, rng.normal(size=(T, B, m)), rng.normal(size=(T, B, n))


def test_the_forward_keeps_only_the_saved_values_its_pullbacks_read():
    from gradflow.numeric.simulate import prepare, run_forward

    cell, params, x, _ = lstm_problem()
    problem = prepare(cell, params, x, None)
    program = problem.compiled.program
    uses = {name: program.vjp(name, False).uses for _, name in cell.order}
    assert uses["f"] == {3} and uses["h"] == {0}  # sigma(u_f), for sigma' = y (1 - y); tanh(c)
    assert uses["c"] == set()  # c = f * c' + i * c~ reads its operands, not its products
    values = run_forward(problem, keep=uses)
    kept = values.saved[("f", 2)]
    assert kept[:3] == (None, None, None)  # U_f x, W_f h and the pre-activation are dropped
    assert kept[3] is values("f", 2)  # the gate itself: the row of its series, not a second copy
    assert np.shares_memory(kept[3], values.series["f"])


def test_the_products_with_the_inputs_are_one_flat_product_each(monkeypatch):
    """U_g x for all steps as one (T B, m) x (m, n) product: NumPy loops a stacked (T, B, m) one."""
    from gradflow.numeric.simulate import prepare, run_forward

    cell, params, x, _ = lstm_problem()
    problem = prepare(cell, params, x, None)
    shapes = []
    matmul = np.matmul

    def recorded(a, b, **kwargs):
        shapes.append((a.shape, b.shape))
        return matmul(a, b, **kwargs)

    monkeypatch.setattr(np, "matmul", recorded)
    values = run_forward(problem)
    monkeypatch.undo()
    assert all(len(a) == 2 and len(b) == 2 for a, b in shapes)
    assert sum(a == (5 * 2, 2) for a, _ in shapes) == 4  # one per gate, over all T B rows
    expected = gf.simulate(cell, params, x)
    np.testing.assert_allclose(values.series["h"], expected["h"], rtol=1e-14)


def test_an_input_has_no_value_outside_its_steps():
    from gradflow.errors import GradflowError
    from gradflow.numeric.simulate import Values, prepare

    cell, params, x, _ = lstm_problem()
    values = Values(prepare(cell, params, x, None))
    assert np.array_equal(values("x", 5), x[4])
    for time in (0, 6):
        with pytest.raises(GradflowError, match="no value of input 'x' at time"):
            values("x", time)


def test_a_trajectory_is_the_series_the_forward_wrote():
    cell, params, x, _ = lstm_problem()
    traj = gf.simulate(cell, params, x)
    assert traj["h"].shape == (6, 2, 3) and traj["f"].shape == (5, 2, 3)
    assert traj["h"] is traj._values.series["h"]  # no stacking copy
    assert np.array_equal(traj["h"][0], np.zeros((2, 3)))  # the initial value, row 0
    assert traj.at("h", 3) is not None and np.array_equal(traj.at("h", 3), traj._values("h", 3))


def test_weight_gradients_read_the_series_in_place_and_keep_shared_factors_once():
    import sys

    bptt_module = sys.modules["gradflow.numeric.bptt"]
    cell, params, x, upstream = lstm_problem()
    problem = bptt_module.prepare(cell, params, x, None)
    program = problem.compiled.program
    values = bptt_module.run_forward(
        problem, keep={name: program.vjp(name, False).uses for _, name in cell.order}
    )
    reverse = bptt_module._Reverse(problem, values, gf.Full())
    for t in range(1, 6):
        reverse.seed("h", t, upstream[t - 1])
    reverse.run()
    (pair,) = reverse.factors.outer["W_f"]
    (same,) = reverse.factors.outer["U_f"]
    assert pair[0] == same[0]  # W_f and U_f share their left factor ell_f: one (T, B, n) array
    assert pair[1] == ("signal", "h", -1) and same[1] == ("signal", "x", 0)
    assert list(reverse.input_lefts[("x", "U_f")]) == [pair[0]]  # dL/dx = sum_g L_g U_g reads the same rows
    assert list(reverse.factors.vector["b_f"]) == [pair[0]]  # the bias: ell_f's rows summed once, at the end
    assert "b_f" not in reverse.param_sums  # no reduction per step
    h_before = values.over_time("h", -1)
    assert np.shares_memory(h_before, values.series["h"]) and h_before.shape == (5, 2, 3)
    assert np.array_equal(h_before, values.series["h"][:5])
    assert values.over_time("x", 0) is problem.sequences["x"]
    expected = gf.bptt(cell, params, x, {"h": upstream})
    np.testing.assert_allclose(reverse.parameter_gradients()["W_f"], expected["W_f"], rtol=1e-13)


def test_cotangents_of_both_direction_groups_at_one_node_add_up():
    # Under truncation a node may hold a cotangent of each direction group (tagged apart, pulled
    # one tag at a time). The weight gradient is linear in them: the rows of an outer term's left
    # factor add up, while its right factor (here r * h for W_h) is the same forward value each time.
    import sys

    bptt_module = sys.modules["gradflow.numeric.bptt"]
    cell = gf.cells.bidirectional(gf.cells.gru())
    params = gf.init_params(cell.with_sizes(n=3, m=2), seed=4)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 2, 2))
    first, second = rng.normal(size=(2, 2, 3))

    def gradients(*cotangents):
        problem = bptt_module.prepare(cell, params, x, None)
        program = problem.compiled.program
        values = bptt_module.run_forward(
            problem, keep={name: program.vjp(name, True).uses for _, name in cell.order}
        )
        reverse = bptt_module._Reverse(problem, values, gf.Truncated(2))
        assert reverse.tagged
        for tag, G in cotangents:
            reverse.add(("fwd.h_tilde", 3), reverse._whole(G), tag)
        reverse.run()
        return reverse.parameter_gradients()

    both = gradients((0, first), (1, second))
    apart = [gradients((0, first)), gradients((1, second))]
    for name in ("fwd.W_h", "fwd.U_h", "fwd.b_h", "fwd.W_z", "fwd.W_r"):
        np.testing.assert_allclose(both[name], apart[0][name] + apart[1][name], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_lowered_logistic_is_accurate_and_never_overflows(dtype):
    import warnings

    import mpmath

    from gradflow.numeric._runtime import _sigmoid
    from gradflow.numeric.backend import namespace

    xp = namespace("numpy")
    u = np.concatenate([np.linspace(-40.0, 40.0, 801), [-1e4, -800.0, -100.0, 0.0, 100.0, 800.0, 1e4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning, in either precision
        got = _sigmoid(xp, np.asarray(u, dtype=dtype))
    assert got.dtype == np.dtype(dtype) and np.all(np.isfinite(got)) and np.all((got >= 0) & (got <= 1))
    rounded = np.asarray(u, dtype=dtype).astype(float)  # the arguments as the dtype holds them
    exact = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(v)))) for v in rounded])
    eps = np.finfo(dtype).eps
    normal = exact >= np.finfo(dtype).tiny
    assert np.max(np.abs(got[normal] - exact[normal]) / exact[normal]) <= 4 * eps
    assert np.all(got[~normal] <= np.finfo(dtype).tiny)  # held at the floor: below the normal range
    assert got[-1] == 1.0 and got[-4] == 0.5


def test_a_second_call_with_the_same_shapes_reuses_the_concrete_cell_and_still_checks_them():
    """Sizes solved, equations re-parsed: milliseconds of sympy per call, done once per cell and shapes."""
    from gradflow.errors import ShapeError

    cell, params, x, _ = lstm_problem()
    first, second = gf.simulate(cell, params, x), gf.simulate(cell, params, x)
    assert first.cell is second.cell  # the same concrete cell object: no second with_sizes
    wider = dict(params, W_f=np.zeros((3, 4)))
    with pytest.raises(ShapeError, match="W_f"):
        gf.simulate(cell, wider, x)
    with pytest.raises(ShapeError, match="W_f"):  # an error is not remembered as an answer
        gf.simulate(cell, wider, x)
    skip = gf.cells.skip(delay=3)
    rng = np.random.default_rng(0)
    shapes = {"W_h": (2, 2), "W_d": (2, 2), "W_x": (2, 1), "b": (2,)}
    skip_params = {k: rng.normal(size=s) for k, s in shapes.items()}
    history = rng.normal(size=(3, 1, 2))
    traj = gf.simulate(skip, skip_params, np.ones((4, 1, 1)), {"h": history})
    assert np.array_equal(traj.at("h", 0), history[-1])  # the remembered depth, 3 steps of history


def test_a_negative_term_is_printed_as_a_subtraction_with_the_same_value():
    """1 - y^2, y (1 - y): one operation less than adding -1.0 * y^2, and the same numbers."""
    from gradflow.numeric.backend import namespace
    from gradflow.numeric.scalar import ScalarPrinter

    a, b = sp.symbols("a b")
    printer = ScalarPrinter({a: "a", b: "b"})
    rng = np.random.default_rng(0)
    values = {"a": rng.normal(size=50), "b": rng.normal(size=50), "xp": namespace("numpy")}
    for expr in (1 - b**2, b * (1 - b), -a - b, -a, a - 2 * b, 1 - 3 * a + b, -((a - b) ** 2), 1 / (1 - a)):
        code = printer.print(expr)
        assert "-1.0 *" not in code or expr == -a or expr == -((a - b) ** 2), code
        expected = sp.lambdify((a, b), expr, "numpy")(values["a"], values["b"])
        np.testing.assert_allclose(eval(code, {}, values), expected, rtol=1e-14, atol=1e-15)
    source = gf.numeric.compile(gf.cells.lstm(), n=3, m=2).program.vjp("f", False).source
    assert "(1.0 - F[3])" in source and "-1.0" not in source
