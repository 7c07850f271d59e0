"""Golden strings for the plain-text printer."""

import pytest

import gradflow as gf
from gradflow.export.text import to_text
from gradflow.symbolic import step_jacobian

C = gf.cells


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (lambda: C.elman().updates["h"], "tanh(W_h h^(t-1) + W_x x^(t) + b)"),
        (lambda: step_jacobian(C.elman(), "h"), "diag(tanh'(W_h h^(t-1) + W_x x^(t) + b)) W_h"),
        (lambda: step_jacobian(C.lstm(), "c"), "diag(f^(t))"),
        (lambda: step_jacobian(C.lstm(forget_gate=False), "c"), "I"),
        (lambda: step_jacobian(C.lstm(), "h", "c"), "diag(o^(t)) diag(tanh'(c^(t))) diag(f^(t))"),
        (lambda: C.gru().updates["h"], "z^(t) ∘ h^(t-1) + (1 - z^(t)) ∘ h_tilde^(t)"),
        (
            lambda: step_jacobian(C.leaky(), "h"),
            "alpha I + (1 - alpha) diag(tanh'(W_h h^(t-1) + W_x x^(t) + b)) W_h",
        ),
        (lambda: step_jacobian(C.ctrnn(), "h"), "I + dt/tau (-I + W_h diag(tanh'(h^(t-1))))"),
        (
            lambda: step_jacobian(C.skip(3), "h", lag=3),
            "diag(tanh'(W_h h^(t-1) + W_d h^(t-3) + W_x x^(t) + b)) W_d",
        ),
        (lambda: C.bidirectional(C.elman()).outputs["h"], "[fwd.h^(t); bwd.h^(t)]"),
        (
            lambda: step_jacobian(C.bidirectional(C.elman()), "bwd.h"),
            "diag(tanh'(bwd.W_h bwd.h^(t+1) + bwd.W_x x^(t) + bwd.b)) bwd.W_h",
        ),
        (
            lambda: step_jacobian(C.minimal(), "h"),
            "diag(u^(t)) + (diag(h^(t-1)) - diag(z^(t))) diag(sigmoid'(U_h h^(t-1) + U_z z^(t) + b)) U_h",
        ),
        (
            lambda: gf.symbolic.local_jacobian(C.elman().updates["h"], C.elman().parameter("W_h")),
            "diag(tanh'(W_h h^(t-1) + W_x x^(t) + b)) (h^(t-1)ᵀ ⊗ I)",
        ),
    ],
)
def test_golden_text(expr, text):
    assert to_text(expr()) == text
