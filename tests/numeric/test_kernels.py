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


@pytest.mark.parametrize(("make", "gate"), [(gf.cells.lstm, "f"), (gf.cells.gru, "z"), (gf.cells.elman, "h")])
def test_pullbacks_read_the_saved_activation_instead_of_recomputing_it(make, gate):
    compiled = gf.numeric.compile(make(), n=3, m=2)
    source = compiled.program.vjp(gate, False).source
    assert "act" not in source and "_sigmoid" not in source and "tanh" not in source, source
    assert "F[" in source


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
