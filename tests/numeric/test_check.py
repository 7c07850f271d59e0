"""check_cell: every referee passes on the built-in cells and a user cell, and each one can fail."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import gradflow as gf
from gradflow.errors import GradflowError
from gradflow.numeric.check import check_cell

NAMES = [
    "step Jacobians vs sympy componentwise",
    "forward step vs sympy",
    "gradients vs central differences",
    "jacobian_chain vs central differences",
    "Truncated(T + d - 1) vs Full()",
    "actual norms never above the bound",
]


def user_cell() -> gf.Cell:
    return gf.Cell(
        "coupled",
        states={"a": "n", "b": "n"},
        inputs={"x": "m"},
        params={"W": ("n", "n"), "V": ("n", "n"), "U": ("n", "m"), "d": ("n",), "alpha": ()},
        updates={
            "a": "tanh(W @ b + U @ x)",
            "b": "alpha * b + (1 - alpha) * softsign(d * (V @ a[t]))",
        },
    )


@pytest.mark.parametrize(
    "make",
    [gf.cells.elman, gf.cells.lstm, gf.cells.gru, lambda: gf.cells.elman("relu"), user_cell],
    ids=["elman", "lstm", "gru", "elman_relu", "user"],
)
def test_every_check_passes_on_a_correct_cell(make):
    checks = check_cell(make(), T=3)
    assert [c.name for c in checks] == NAMES
    assert all(c.passed for c in checks), [(c.name, c.error, c.note) for c in checks]
    assert all(c.error is not None and c.error <= c.tolerance for c in checks)


def test_checks_that_do_not_apply_say_why():
    skip = {c.name: c for c in check_cell(gf.cells.skip(delay=2), T=3)}
    assert skip["jacobian_chain vs central differences"].passed is None
    assert "more than one step back" in skip["jacobian_chain vs central differences"].note
    assert skip["actual norms never above the bound"].passed is None
    assert skip["gradients vs central differences"].passed is True
    both = {c.name: c for c in check_cell(gf.cells.bidirectional(gf.cells.elman()), T=3)}
    assert both["actual norms never above the bound"].passed is None
    assert "forwards and backwards" in both["actual norms never above the bound"].note
    assert both["gradients vs central differences"].passed is True


def test_a_wrong_gradient_is_caught(monkeypatch):
    module = sys.modules["gradflow.numeric.bptt"]
    original = module.bptt

    def off_by_one_percent(*args, **kwargs):
        grads = original(*args, **kwargs)
        grads._params = {k: v * 1.01 for k, v in grads._params.items()}
        return grads

    monkeypatch.setattr(module, "bptt", off_by_one_percent)
    found = {c.name: c for c in check_cell(gf.cells.elman(), T=3)}
    assert found["gradients vs central differences"].passed is False
    assert found["gradients vs central differences"].error == pytest.approx(0.01, rel=0.05)
    assert "parameter" in found["gradients vs central differences"].note


def test_a_wrong_step_jacobian_is_caught(monkeypatch):
    module = sys.modules["gradflow.numeric.check"]
    original = module.step_jacobian
    monkeypatch.setattr(module, "step_jacobian", lambda *a: 2 * original(*a))
    found = {c.name: c for c in check_cell(gf.cells.gru(), T=3)}
    assert found["step Jacobians vs sympy componentwise"].passed is False
    assert found["step Jacobians vs sympy componentwise"].error == pytest.approx(1.0)


def test_a_wrong_chain_is_caught(monkeypatch):
    module = sys.modules["gradflow.numeric.chain"]
    original = module.ChainResult.matrix
    monkeypatch.setattr(module.ChainResult, "matrix", lambda self, k: original(self, k) * 1.001)
    found = {c.name: c for c in check_cell(gf.cells.lstm(), T=3)}
    assert found["jacobian_chain vs central differences"].passed is False


def test_a_wrong_forward_is_caught(monkeypatch):
    module = sys.modules["gradflow.numeric.simulate"]
    original = module.simulate

    def shifted(*args, **kwargs):
        trajectory = original(*args, **kwargs)
        return {k: np.asarray(trajectory[k]) + (1e-6 if k == "h" else 0.0) for k in trajectory}

    monkeypatch.setattr(module, "simulate", shifted)
    found = {c.name: c for c in check_cell(gf.cells.elman(), T=3)}
    assert found["forward step vs sympy"].passed is False


def test_check_cell_is_part_of_the_numeric_api():
    assert gf.numeric.check_cell is check_cell and "check_cell" in gf.numeric.__all__


def test_sizes_and_arguments():
    checks = check_cell(gf.cells.elman(), {"n": 3, "m": 1}, T=2, B=1, seed=5)
    assert all(c.passed for c in checks)
    with pytest.raises(GradflowError, match="T must be a positive int"):
        check_cell(gf.cells.elman(), T=0)
    with pytest.raises(GradflowError, match="B must be a positive int"):
        check_cell(gf.cells.elman(), B=True)
    with pytest.raises(GradflowError, match=r"has no symbolic size k \(its sizes: m, n\)"):
        check_cell(gf.cells.elman(), {"k": 2})
    with pytest.raises(GradflowError, match="check_cell needs a gradflow Cell, got str"):
        check_cell("elman")  # type: ignore[arg-type]
    with pytest.raises(GradflowError, match="seed must be a non-negative int, got -1"):
        check_cell(gf.cells.elman(), seed=-1)
    with pytest.raises(GradflowError, match="sizes must be a dict"):
        check_cell(gf.cells.elman(), [("n", 2)])  # type: ignore[arg-type]
    with pytest.raises(gf.NotDifferentiableError, match="undefined function"):
        check_cell(
            gf.Cell(
                "g",
                states={"h": "n"},
                inputs={"x": "m"},
                params={"W": ("n", "n"), "U": ("n", "m")},
                updates={"h": "sigma(W @ h + U @ x)"},
            )
        )


def output_cell() -> gf.Cell:
    """V enters only the output y."""
    return gf.Cell(
        "out",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W": ("n", "n"), "U": ("n", "m"), "V": ("k", "n")},
        updates={"h": "tanh(W @ h + U @ x)"},
        outputs={"y": "softsign(V @ h)"},
    )


def test_outputs_are_checked_and_a_vanishing_chain_is_judged_by_its_scale():
    cell = output_cell()
    checks = {c.name: c for c in check_cell(cell, T=3)}
    assert checks["gradients vs central differences"].passed
    # a long chain vanishes; central differences resolve it only to ~1e-10 absolute
    found = {c.name: c for c in check_cell(gf.cells.elman(), T=20)}
    assert found["jacobian_chain vs central differences"].passed
    bound = found["actual norms never above the bound"]
    assert bound.passed and "lags 1..T" in bound.note and "+0 " not in bound.note


def test_large_sizes_skip_the_componentwise_checks():
    found = {c.name: c for c in check_cell(gf.cells.elman(), {"n": 9, "m": 1}, T=2)}
    assert found["step Jacobians vs sympy componentwise"].passed is None
    assert "sizes above 8" in found["forward step vs sympy"].note
    assert found["gradients vs central differences"].passed


def test_the_loss_reaches_the_outputs(monkeypatch):
    """V enters only the output y: a wrong gradient of V is caught only if the loss reads y."""
    cell = output_cell()
    module = sys.modules["gradflow.numeric.bptt"]
    original = module.bptt

    def without_v(*args, **kwargs):
        grads = original(*args, **kwargs)
        grads._params = {k: (0 * v if k == "V" else v) for k, v in grads._params.items()}
        return grads

    monkeypatch.setattr(module, "bptt", without_v)
    found = {c.name: c for c in check_cell(cell, T=3)}
    assert found["gradients vs central differences"].passed is False
    assert "parameter V" in found["gradients vs central differences"].note
