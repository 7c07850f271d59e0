"""Golden strings for the textbook LaTeX printer (sympy's test_latex style), its options, and round trips."""

import pytest
import sympy as sp
from sympy.parsing.latex import parse_latex

import gradflow as gf
from gradflow.cells.activations import sigmoid, tanh
from gradflow.cells.expr import Elementwise, Signal, t
from gradflow.cli import REPORT_CELLS, parse_cell
from gradflow.errors import GradflowError
from gradflow.export import LatexPrinter, to_latex
from gradflow.export.names import escape_markdown, escape_text, latex_name
from gradflow.graph.labels import latex_label
from gradflow.symbolic import chain_bound, parameter_gradient, step_jacobian
from gradflow.symbolic.bound_nodes import BlockBound, Unit, UnitMax, UnitRate
from gradflow.symbolic.bptt import chain
from gradflow.symbolic.nodes import Norm

C = gf.cells
i, j = sp.symbols("i j", integer=True)
ELMAN_ARG = r"W_{h} h^{(t-1)} + W_{x} x^{(t)} + b"
ELMAN_STEP = rf"\operatorname{{diag}}\left(\tanh'\left({ELMAN_ARG}\right)\right) W_{{h}}"


@pytest.mark.parametrize(
    ("expr", "tex"),
    [
        (lambda: step_jacobian(C.elman(), "h"), ELMAN_STEP),
        (lambda: step_jacobian(C.lstm(), "c"), r"\operatorname{diag}\left(f^{(t)}\right)"),
        (lambda: step_jacobian(C.lstm(forget_gate=False), "c"), "I"),
        (
            lambda: step_jacobian(C.lstm(), "h", "c"),
            r"\operatorname{diag}\left(o^{(t)}\right) \operatorname{diag}\left(\tanh'\left(c^{(t)}\right)\right) "
            r"\operatorname{diag}\left(f^{(t)}\right)",
        ),
        (lambda: chain(C.elman(), i, j), rf"\prod_{{j<t\le i}} {ELMAN_STEP}"),
        (
            lambda: chain(C.elman(), 3, 1).doit(),
            r"\operatorname{diag}\left(\tanh'\left(W_{h} h^{(2)} + W_{x} x^{(3)} + b\right)\right) W_{h} "
            r"\operatorname{diag}\left(\tanh'\left(W_{h} h^{(1)} + W_{x} x^{(2)} + b\right)\right) W_{h}",
        ),
        (
            lambda: chain_bound(C.elman()).chain,
            r"\left\lVert W_{h} \right\rVert_{2}^{i - j} \prod_{j<t\le i} \left\lVert \operatorname{diag}"
            rf"\left(\tanh'\left({ELMAN_ARG}\right)\right) \right\rVert_{{2}}",
        ),
        (
            lambda: chain_bound(C.elman()).chain_gamma,
            r"\left(\gamma \left\lVert W_{h} \right\rVert_{2}\right)^{i - j}",
        ),
        (lambda: chain_bound(C.elman()).vanishing, r"\gamma \left\lVert W_{h} \right\rVert_{2} < 1"),
        (
            lambda: chain_bound(C.elman("sigmoid")).exploding,
            r"\gamma_{\sigma} \left\lVert W_{h} \right\rVert_{2} > 1",
        ),
        (
            lambda: parameter_gradient(C.elman(), "W_h"),
            r"\frac{\partial L}{\partial W_{h}} = \sum_{t=1}^{T} "
            rf"\left(\tanh'\left({ELMAN_ARG}\right) \circ \delta_{{h}}^{{(t)}}\right) h^{{(t-1)\top}}",
        ),
        (
            lambda: parameter_gradient(C.elman(), "W_h", gf.Truncated(5)).rhs.summand.args[0].args[1],
            r"\sum_{i=t}^{\min\left(T, t + 5\right)} \left(\prod_{t<k\le i} "
            r"\operatorname{diag}\left(\tanh'\left(W_{h} h^{(k-1)} + W_{x} x^{(k)} + b\right)\right) W_{h}\right)^{\top} "
            r"\frac{\partial^{+} L}{\partial h^{(i)}}",
        ),
        (
            lambda: C.gru().updates["h"],
            r"z^{(t)} \circ h^{(t-1)} + \left(1 - z^{(t)}\right) \circ \tilde{h}^{(t)}",
        ),
        (
            lambda: step_jacobian(C.leaky(), "h"),
            rf"\alpha I + \left(1 - \alpha\right) {ELMAN_STEP}",
        ),
        (
            lambda: step_jacobian(C.ctrnn(), "h"),
            r"I + \frac{\Delta t}{\tau} \left(-I + W_{h} \operatorname{diag}\left(\tanh'\left(h^{(t-1)}\right)\right)\right)",
        ),
        (
            lambda: C.stack([C.elman(), C.elman()]).updates["layer2.h"],
            r"\tanh\left(W_{h}^{[2]} h^{[2](t-1)} + W_{x}^{[2]} h^{[1](t)} + b^{[2]}\right)",
        ),
        (
            lambda: C.bidirectional(C.elman()).outputs["h"],
            r"\begin{bmatrix}\overrightarrow{h}^{(t)} \\ \overleftarrow{h}^{(t)}\end{bmatrix}",
        ),
        (
            lambda: gf.symbolic.local_jacobian(C.elman().updates["h"], C.elman().parameter("W_h")),
            rf"\operatorname{{diag}}\left(\tanh'\left({ELMAN_ARG}\right)\right) \left(h^{{(t-1)\top}} \otimes I\right)",
        ),
        (
            lambda: gf.symbolic.hochreiter.cec_path(C.lstm(), 2),
            r"\operatorname{diag}\left(f^{(t)}\right) \operatorname{diag}\left(f^{(t-1)}\right)",
        ),
        (
            lambda: gf.symbolic.hochreiter.error_flow_paths(C.elman(n=2, m=1), 0, 1, 1),
            r"f'_{1}\left(\mathrm{net}_{1}\left(t-1\right)\right) \left(W_{h}\right)_{0,1}",
        ),
    ],
)
def test_golden_latex(expr, tex):
    assert to_latex(expr()) == tex


def test_explicit_derivatives_and_bold_vectors():
    J = step_jacobian(C.elman(), "h")
    assert to_latex(J, activation_derivative="explicit") == (
        rf"\operatorname{{diag}}\left(1 - \tanh^{{2}}\left({ELMAN_ARG}\right)\right) W_{{h}}"
    )
    arg = r"W_{h} h^{(t-1)} + W_{x} x^{(t)} + b"
    assert to_latex(step_jacobian(C.elman("sigmoid"), "h"), activation_derivative="explicit") == (
        rf"\operatorname{{diag}}\left(\sigma\left({arg}\right) \circ \left(1 - \sigma\left({arg}\right)\right)\right) W_{{h}}"
    )
    # piecewise and undefined activations keep the prime
    assert r"\operatorname{ReLU}'" in to_latex(
        step_jacobian(C.indrnn(), "h"), activation_derivative="explicit"
    )
    assert r"\sigma'" in to_latex(step_jacobian(C.elman("sigma"), "h"), activation_derivative="explicit")
    assert to_latex(C.lstm().updates["c"], bold_vectors=True) == (
        r"\mathbf{f}^{(t)} \circ \mathbf{c}^{(t-1)} + \mathbf{i}^{(t)} \circ \tilde{\mathbf{c}}^{(t)}"
    )
    assert to_latex(C.elman().updates["h"], bold_vectors=True) == (
        r"\tanh\left(W_{h} \mathbf{h}^{(t-1)} + W_{x} \mathbf{x}^{(t)} + \mathbf{b}\right)"
    )


def test_bad_options_are_gradflow_errors():
    with pytest.raises(GradflowError, match="activation_derivative"):
        to_latex(step_jacobian(C.elman(), "h"), activation_derivative="dots")
    with pytest.raises(GradflowError, match="bold"):
        to_latex(step_jacobian(C.elman(), "h"), bold=True)


@pytest.mark.parametrize(
    ("name", "time", "tex"),
    [
        ("h", "t-1", "h^{(t-1)}"),
        ("c_tilde", "t", r"\tilde{c}^{(t)}"),
        ("W_h", None, "W_{h}"),
        ("dt", None, r"\Delta t"),
        ("layer2.W_h", None, "W_{h}^{[2]}"),
        ("layer1.bwd.c_tilde", "t+1", r"\overleftarrow{\tilde{c}}^{[1](t+1)}"),
        ("θ_1", "t", r"\theta _{1}^{(t)}"),
        ("W_θθ", None, r"W_{\theta \theta }"),
        ("Ω_hat", None, r"\hat{\Omega }"),
        ("h_prime", "t", "{h'}^{(t)}"),
        ("W__x", None, "W_{x}"),
        ("b_1_2", None, "b_{1,2}"),
        ("élan", None, r"\mathrm{\text{é}lan}"),
    ],
)
def test_names(name, time, tex):
    assert latex_name(name, time) == tex


def test_names_agree_with_the_graph_labels():
    """The printer and the unrolled graph label every node of every cell the same way."""
    for spec in REPORT_CELLS:
        cell = parse_cell(spec)
        for name in [*cell.states, *cell.inputs, *cell.params, *cell.intermediates]:
            assert latex_name(name, "3") == latex_label(name, 3), name
            assert latex_name(name) == latex_label(name), name


FORBIDDEN = [
    "DiagMatrix",
    r"\mapsto",
    "PermuteDims",
    "_d",
    "operatorname{Signal",
    "operatorname{Diag}",
    "Elementwise",
    "Norm",
    "Adjoint",
    "Chain",
    "MatSum",
    "Partial",
    "Activation",
    "BOUND",
    "Str(",
    "text{for}",
]


@pytest.mark.parametrize("spec", REPORT_CELLS)
@pytest.mark.parametrize("style", ["prime", "explicit"])
def test_no_sympy_internals_reach_the_output(spec, style):
    d = gf.derive(parse_cell(spec))
    for step in d:
        tex = to_latex(step.equation, activation_derivative=style)
        for word in FORBIDDEN:
            if spec == "indrnn" and word == "text{for}":
                continue  # a Piecewise from chain_bound on a piecewise activation: a symbolic-layer issue
            assert word not in tex, (spec, step.title, tex)
        assert tex.count("{") == tex.count("}"), tex
        assert tex.count(r"\left") == tex.count(r"\right"), tex


def test_escape_text_and_markdown():
    assert escape_text("a & b % c $ d # e _ f { } ~ ^ \\ < > |") == (
        r"a \& b \% c \$ d \# e \_ f \{ \} \~{} \^{} \textbackslash{} \textless{} \textgreater{} \textbar{}"
    )
    assert escape_text("σ′ ‖W‖ ∘ τ ξ γ ∏ ≤ — “q”") == (
        r"\ensuremath{\sigma}\ensuremath{'} \ensuremath{\Vert}W\ensuremath{\Vert} \ensuremath{\circ} "
        r"\ensuremath{\tau} \ensuremath{\xi} \ensuremath{\gamma} \ensuremath{\prod} \ensuremath{\le} --- ``q''"
    )
    assert escape_text("中") == "[U+4E2D]"
    assert escape_text("hₜ₋₁ o⁽ⁱ⁾ W₂") == r"h\ensuremath{_{t-1}} o\ensuremath{^{(i)}} W\ensuremath{_{2}}"
    assert escape_markdown("a_b *c* $x$ [l] #h") == r"a\_b \*c\* \$x\$ \[l\] \#h"


# -- round trips: scalar expressions back through sympy's parse_latex ----------------------------


def _opaque(expr):
    """The operands of the scalar arithmetic of ``expr`` that parse_latex does not know: norms, maxima, components."""
    if isinstance(expr, sp.Add | sp.Mul | sp.Pow | sp.Abs):
        return set().union(*(_opaque(a) for a in expr.args))
    return {expr} if isinstance(expr, Norm | UnitMax | BlockBound | Unit | UnitRate) else set()


def _round_trip(expr):
    """Parse the printed LaTeX back; norms, maxima and components (unknown to parse_latex) stand as symbols N_k."""
    tex = to_latex(expr)
    atoms = {}
    opaque = sorted(_opaque(expr), key=lambda a: (-len(to_latex(a)), sp.default_sort_key(a)))
    for k, node in enumerate(opaque):  # the longest first: a component's text may lie inside another's
        tex = tex.replace(to_latex(node), f"N_{{{k}}}")
        atoms[node] = parse_latex(f"N_{{{k}}}")
    rest = expr.xreplace(atoms)
    symbols = rest.free_symbols - set(atoms.values())
    return parse_latex(tex), rest.xreplace({s: parse_latex(to_latex(s)) for s in symbols})


@pytest.mark.parametrize(
    "spec",
    [
        "elman",
        "elman('sigmoid')",
        "leaky",
        "jordan",
        "ctrnn",
        "stack(elman, elman)",
        "lstm",
        "lstm_peephole",
        "gru",
        "gru_reset_after",
        "indrnn",
        "minimal",
    ],
)
def test_bounds_round_trip(spec):
    bound = chain_bound(parse_cell(spec))
    for expr in (
        bound.step_gamma,
        bound.vanishing.lhs,
        chain_bound(parse_cell(spec), gamma_mode="value").step_gamma,
    ):
        parsed, original = _round_trip(expr)
        assert sp.simplify(parsed - original) == 0, to_latex(expr)
    if not bound.chain_gamma.has(sp.Product):
        parsed, original = _round_trip(bound.chain_gamma)
        assert sp.simplify(parsed - original) == 0
    named = {*bound.step.atoms(UnitRate, BlockBound), *bound.step_gamma.atoms(UnitRate, BlockBound)}
    for node in named:  # the definitions the derivations print beside the bound
        parsed, original = _round_trip(node.definition)
        assert sp.simplify(parsed - original) == 0, to_latex(node.definition)


def test_powers_of_norms_round_trip():
    W = C.elman().parameter("W_h")
    gamma = sp.Symbol("gamma", positive=True)
    for expr in (
        Norm(W) ** (i - j),
        (gamma * Norm(W)) ** (i - j),
        sp.sqrt(gamma**2 * Norm(W) ** 2 + 1),
        4 * Norm(W) ** 2,
    ):
        parsed, original = _round_trip(expr)
        assert sp.simplify(parsed - original) == 0, to_latex(expr)


@pytest.mark.parametrize("activation", [tanh, sigmoid])
def test_derivative_forms_round_trip(activation):
    z = sp.Symbol("z")
    # the scalar derivative as sympy holds it
    parsed, original = _round_trip(activation.derivative(z))
    assert sp.simplify(parsed.subs(sp.Symbol("e"), sp.E) - original) == 0  # parse_latex reads e as a symbol
    # the printed explicit form (a vector argument): the Hadamard product of scalars is a product
    u = Signal("u", 4, t, "intermediate")
    tex = to_latex(Elementwise(activation.derivative, u), activation_derivative="explicit")
    tex = tex.replace(r"\circ", " ").replace("u^{(t)}", "z")
    parsed = parse_latex(tex).replace(sp.Function("sigma"), sp.Lambda(z, 1 / (1 + sp.exp(-z))))
    assert sp.simplify(parsed - activation.derivative(z)) == 0, tex


def test_printer_is_a_sympy_latex_printer():
    printer = LatexPrinter({"bold_vectors": True})
    assert printer.doprint(sp.pi) == r"\pi" and printer.doprint(sp.oo) == r"\infty"
    assert printer.doprint(sp.Symbol("alpha") / 2) == r"\frac{\alpha}{2}"
