"""Golden strings for the plain-text printer."""

import pytest
import sympy as sp

import gradflow as gf
from gradflow.cli import REPORT_CELLS, parse_cell
from gradflow.export import CLASSICS
from gradflow.export.text import derivation_to_text, to_text
from gradflow.symbolic import step_jacobian
from gradflow.symbolic.nodes import Norm

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
            "α I + (1 - α) diag(tanh'(W_h h^(t-1) + W_x x^(t) + b)) W_h",
        ),
        (lambda: step_jacobian(C.ctrnn(), "h"), "I + Δt/τ (-I + W_h diag(tanh'(h^(t-1))))"),
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


def test_scalars_in_textbook_form():
    i, j, t, q = (gf.symbolic.derivation.i_sym, gf.symbolic.derivation.j_sym, sp.Symbol("t"), sp.Symbol("q"))
    gamma, alpha, tau = sp.symbols("gamma alpha tau", positive=True)
    W = sp.MatrixSymbol("W_h", 3, 3)
    norm = Norm(W)
    assert to_text((gamma * norm) ** (i - j)) == "(γ ‖W_h‖)^(i - j)"
    assert to_text(norm**2 * gamma) == "γ ‖W_h‖²"
    assert to_text(sp.sqrt(1 + gamma**2)) == "√(1 + γ²)"
    assert to_text(gamma * (1 - alpha)) == "(1 - α) γ"
    assert to_text(sp.Abs(alpha - 1)) == "|α - 1|"
    assert to_text(sp.Symbol("gamma_sigmoid") / 4) == "γ_σ/4"
    assert to_text(sp.Symbol("dt") / tau**2) == "Δt/τ²"
    assert to_text(sp.Min(sp.Symbol("T"), t + tau)) == "min(T, t + τ)"
    assert to_text(sp.Product(norm * t, (t, j + 1, i))) == "∏_{j<t≤i} [t ‖W_h‖]"
    assert to_text(sp.Sum(t**2, (t, 1, q))) == "Σ_{t=1}^{q} [t²]"
    assert to_text(Norm(sp.MatrixSymbol("v", 3, 1), sp.oo)) == "‖v‖_∞"
    assert to_text(sp.Matrix([[gamma, 0], [1, alpha]])) == "[γ, 0; 1, α]"
    assert to_text(sp.Symbol(r"\frac{\partial L}{\partial W_h}")) == "∂L/∂W_h"
    assert to_text(sp.Symbol(r"l_{1},\dots,l_{q-1}")) == "l_1, …, l_{q-1}"


def test_a_ones_vector_in_a_product_is_the_double_struck_one() -> None:
    ones, z = sp.OneMatrix(3, 1), sp.MatrixSymbol("z", 3, 1)
    b, v = sp.MatrixSymbol("b", 1, 1), sp.MatrixSymbol("v", 3, 1)
    assert to_text(sp.MatMul(ones, b)) == "𝟙 b"  # a scalar bias broadcast
    assert to_text(sp.MatMul(v.T, ones)) == "vᵀ 𝟙"  # the sum of a vector's entries
    assert to_text(sp.HadamardProduct(z, ones - z)) == "z ∘ (-z + 1)"  # the ones vector of 1 - z stays 1
    assert "(1 - z^(t))" in to_text(C.gru().updates["h"])


def test_the_randomized_truncation_weights_and_their_expectation() -> None:
    import gradflow as gf

    text = gf.export.derivation_to_text(gf.derive(C.elman()))
    assert "    E[ξ_k] = π_ξ (1/π_ξ) + 0 (1 - π_ξ) = 1" in text.splitlines()
    assert "∏_{t<k≤i} [ξ_k diag(" in text and "ξ(k)" not in text
    assert "    δ_{h,ξ}^(t) = Σ_{i=t}^{T}" in text and "    δ_{h,τ}^(t) = Σ_{i=t}^{min(T, t + τ)}" in text


#: What sympy's own str writes, and must never reach a gradflow text output.
LEAKS = (
    "Product(",
    "Sum(",
    "Matrix(",
    "Abs(",
    "sqrt(",
    "Min(",
    "Max(",
    "Indexed",
    "**",
    "*",
    "gamma",
    "_oo",
    "\\",
)


@pytest.mark.parametrize("spec", REPORT_CELLS)
def test_no_sympy_str_in_any_cells_derivation(spec):
    text = derivation_to_text(gf.derive(parse_cell(spec)))
    equations = [
        line for line in text.splitlines() if line.startswith("    ") and not line.startswith("    (")
    ]
    leaks = [(leak, line.strip()[:120]) for line in equations for leak in LEAKS if leak in line]
    assert not leaks, leaks


@pytest.mark.parametrize("name", sorted(CLASSICS))
def test_no_sympy_str_in_the_classics(name):
    text = derivation_to_text(CLASSICS[name]())
    equations = [
        line for line in text.splitlines() if line.startswith("    ") and not line.startswith("    (")
    ]
    leaks = [(leak, line.strip()[:120]) for line in equations for leak in LEAKS if leak in line]
    assert not leaks, leaks


def test_piecewise():
    g, theta = sp.symbols("g theta", positive=True)
    clipped = sp.Piecewise((g, g <= theta), (theta * g / sp.Symbol("n"), True))
    assert to_text(clipped) == "{g if g ≤ θ; g θ/n otherwise}"
