"""Activations: the catalogue, derivatives against sympy and a numeric referee, validation."""

from __future__ import annotations

import pickle

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import gradflow as gf
from gradflow.cells import activations as acts
from gradflow.cells.activations import CATALOGUE, Activation, as_activation
from gradflow.errors import CellDefinitionError, GradflowError, NotDifferentiableError

z = acts.z
NAMES = sorted(CATALOGUE)
DEFINED = [name for name in NAMES if name != "sigma"]
#: Points away from every kink of the catalogue (0 for relu/elu/softsign, ±1 for hard_tanh).
POINTS = [sp.Rational("-2.3"), sp.Rational("-0.7"), sp.Rational("0.4"), sp.Rational("1.9")]
SMOOTH = ["identity", "tanh", "sigmoid", "swish", "silu", "gelu"]

LATEX = {
    "identity": r"\operatorname{id}",
    "tanh": r"\tanh",
    "sigmoid": r"\sigma",
    "relu": r"\operatorname{ReLU}",
    "leaky_relu": r"\operatorname{LeakyReLU}",
    "softsign": r"\operatorname{softsign}",
    "hard_tanh": r"\operatorname{hardtanh}",
    "elu": r"\operatorname{ELU}",
    "swish": r"\operatorname{swish}",
    "silu": r"\operatorname{SiLU}",
    "gelu": r"\operatorname{GELU}",
    "sigma": r"\sigma",
}

#: Independent definitions of the catalogue (numbers in, numbers out), written from the papers.
REFERENCE = {
    "identity": lambda v: v,
    "tanh": lambda v: (sp.exp(v) - sp.exp(-v)) / (sp.exp(v) + sp.exp(-v)),
    "sigmoid": lambda v: 1 / (1 + sp.exp(-v)),
    "relu": lambda v: sp.Max(0, v),
    "leaky_relu": lambda v: sp.Max(v / 100, v),
    "softsign": lambda v: v / (1 + abs(v)),
    "hard_tanh": lambda v: sp.Max(-1, sp.Min(1, v)),
    "elu": lambda v: v if v >= 0 else sp.exp(v) - 1,
    "swish": lambda v: v / (1 + sp.exp(-v)),
    "silu": lambda v: v / (1 + sp.exp(-v)),
    "gelu": lambda v: v * (1 + sp.erf(v / sp.sqrt(2))) / 2,
}


def close(a: sp.Expr, b: sp.Expr, tol: str = "1e-25") -> bool:
    return bool(abs(sp.N(a - b, 40)) < sp.Float(tol))


# --- the catalogue -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_activation_builds(name: str) -> None:
    activation = CATALOGUE[name]()
    assert isinstance(activation, Activation)
    assert as_activation(name) == activation
    assert activation.function(z) == activation.expression
    assert activation.expression.free_symbols <= {z}
    assert activation.is_generic == (name == "sigma")


@pytest.mark.parametrize("name", NAMES)
def test_latex_name(name: str) -> None:
    activation = as_activation(name)
    assert activation.latex == LATEX[name]
    assert activation.derivative.latex == LATEX[name] + "'"
    assert activation.derivative.name == activation.name + "'"


@pytest.mark.parametrize("name", DEFINED)
@pytest.mark.parametrize("point", POINTS, ids=str)
def test_function_matches_independent_definition(name: str, point: sp.Rational) -> None:
    assert close(as_activation(name)(point), REFERENCE[name](point))


@pytest.mark.parametrize("name", DEFINED)
@pytest.mark.parametrize("point", POINTS, ids=str)
def test_derivative_is_sympy_diff(name: str, point: sp.Rational) -> None:
    activation = as_activation(name)
    expected = sp.diff(activation.expression, z).subs(z, point)
    assert close(activation.derivative.function(point), expected)


def test_generic_derivative_at_a_symbol() -> None:
    a = sp.Symbol("a", real=True)
    sigma = sp.Function("sigma", real=True)
    assert acts.generic().derivative(a) == sp.Derivative(sigma(a), a)


@pytest.mark.parametrize("point", [sp.Rational(2, 5), sp.Symbol("a") + 1], ids=["number", "expression"])
def test_generic_derivative_applies_to_any_argument(point: sp.Expr) -> None:
    sigma = sp.Function("sigma", real=True)
    assert acts.generic().derivative(point) == sp.diff(sigma(z), z).subs(z, point)


@pytest.mark.parametrize("name", DEFINED)
@pytest.mark.parametrize("point", POINTS, ids=str)
def test_derivative_matches_central_differences(name: str, point: sp.Rational) -> None:
    """An independent referee: central differences of the independent definition, in 60 digits."""
    step = sp.Float("1e-15", 60)
    here = sp.Float(point, 60)
    numeric = (REFERENCE[name](here + step) - REFERENCE[name](here - step)) / (2 * step)
    assert abs(sp.N(numeric - as_activation(name).derivative.function(point), 50)) < sp.Float("1e-20")


@pytest.mark.parametrize("name", DEFINED)
@pytest.mark.parametrize("point", POINTS, ids=str)
def test_second_derivative_is_sympy_diff(name: str, point: sp.Rational) -> None:
    activation = as_activation(name)
    second = activation.derivative.derivative
    assert second.name == name + "''"
    expected = sp.diff(activation.expression, z, 2).subs(z, point)
    assert close(second.function(point), expected.replace(sp.DiracDelta, lambda *a: 0))


@pytest.mark.parametrize("name", SMOOTH)
def test_smooth_second_derivative_is_closed_form(name: str) -> None:
    second = as_activation(name).derivative.derivative.expression
    assert not second.has(sp.Derivative, sp.Subs, sp.Piecewise, sp.DiracDelta)
    assert sp.simplify(second - sp.diff(as_activation(name).expression, z, 2)) == 0


def test_identity_derivative_is_one() -> None:
    assert acts.identity.derivative.expression == 1
    assert acts.identity.derivative.function(sp.Symbol("q")) == 1
    assert acts.identity.derivative.derivative.expression == 0


@pytest.mark.parametrize(
    ("name", "point", "value"),
    [
        ("tanh", 0, 1),
        ("sigmoid", 0, sp.Rational(1, 4)),
        ("relu", -1, 0),
        ("relu", 1, 1),
        ("leaky_relu", -1, sp.Rational(1, 100)),
        ("hard_tanh", sp.Rational(1, 2), 1),
        ("hard_tanh", 2, 0),
        ("elu", 1, 1),
        ("softsign", 1, sp.Rational(1, 4)),
        ("swish", 0, sp.Rational(1, 2)),
        ("gelu", 0, sp.Rational(1, 2)),
    ],
)
def test_known_derivative_values(name: str, point: int, value: sp.Expr) -> None:
    assert sp.simplify(as_activation(name).derivative.function(point) - value) == 0


def test_derivative_is_computed_once() -> None:
    assert acts.tanh.derivative is acts.tanh.derivative


def test_kinks_get_a_derivative_not_a_dirac_delta() -> None:
    for activation in (acts.relu, acts.hard_tanh, acts.leaky_relu(), acts.elu(), acts.softsign):
        assert not activation.derivative.expression.has(sp.DiracDelta)
        assert not activation.derivative.derivative.expression.has(sp.DiracDelta)


# --- identity of activations -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_equality_and_hash_are_stable_across_constructions(name: str) -> None:
    first, second = CATALOGUE[name](), as_activation(name)
    rebuilt = Activation(first.name, first.function, first.latex)
    assert first == second == rebuilt
    assert hash(first) == hash(second) == hash(rebuilt)
    assert pickle.loads(pickle.dumps(first)) == first
    assert len({first, second, rebuilt}) == 1


def test_different_activations_are_unequal() -> None:
    catalogue = [CATALOGUE[name]() for name in NAMES]
    assert len(set(catalogue)) == len(catalogue)
    assert acts.swish() != acts.silu  # the same function under two names
    assert acts.leaky_relu() != acts.leaky_relu(0.2)


@pytest.mark.parametrize(
    ("factory", "value", "name"),
    [
        (acts.leaky_relu, 0.01, "leaky_relu"),
        (acts.leaky_relu, sp.Rational(1, 100), "leaky_relu"),
        (acts.leaky_relu, 0.2, "leaky_relu(1/5)"),
        (acts.leaky_relu, 0, "leaky_relu(0)"),
        (acts.elu, 1, "elu"),
        (acts.elu, 1.0, "elu"),
        (acts.elu, 2, "elu(2)"),
        (acts.swish, 1, "swish"),
        (acts.swish, 0.5, "swish(1/2)"),
    ],
)
def test_parametrised_activations_are_named_by_their_parameter(factory, value, name) -> None:
    activation = factory(value)
    assert activation.name == name
    assert activation == factory(value)


def test_parametrised_activations_use_their_parameter() -> None:
    assert acts.leaky_relu(0.2)(-5) == -1
    assert acts.leaky_relu(0.2).derivative.function(-5) == sp.Rational(1, 5)
    assert acts.elu(2)(-1) == 2 * (sp.exp(-1) - 1)
    assert close(acts.swish(2)(1), 1 / (1 + sp.exp(-2)))


@pytest.mark.parametrize(
    ("factory", "value"),
    [
        (acts.leaky_relu, -0.1),
        (acts.leaky_relu, 1),
        (acts.leaky_relu, 1.5),
        (acts.leaky_relu, "a"),
        (acts.leaky_relu, sp.I),
        (acts.leaky_relu, float("nan")),
        (acts.leaky_relu, float("inf")),
        (acts.elu, 0),
        (acts.elu, -1),
        (acts.elu, "x"),
        (acts.elu, float("nan")),
        (acts.swish, 0),
        (acts.swish, -2),
        (acts.swish, sp.Symbol("beta")),
    ],
)
def test_parametrised_activations_validate_their_parameter(factory, value) -> None:
    with pytest.raises(CellDefinitionError, match=factory.__name__):
        factory(value)


@pytest.mark.parametrize("value", [None, [1]])
def test_parametrised_activation_rejects_non_numbers_cleanly(value) -> None:
    with pytest.raises(CellDefinitionError, match="leaky_relu slope"):
        acts.leaky_relu(value)


# --- user activations ------------------------------------------------------------


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    name=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True),
    real=st.booleans(),
)
def test_user_lambda_in_any_variable_is_canonicalised(name: str, real: bool) -> None:
    variable = sp.Symbol(name, real=True) if real else sp.Symbol(name)
    activation = as_activation(sp.Lambda(variable, variable**3 / 3 + 2 * variable), name="cubic")
    assert activation.expression == z**3 / 3 + 2 * z
    assert activation.function(z) == activation.expression
    assert activation.derivative.expression == z**2 + 2
    assert activation == as_activation(
        sp.Lambda(sp.Symbol("w"), sp.Symbol("w") ** 3 / 3 + 2 * sp.Symbol("w")), name="cubic"
    )


def test_user_lambda_gets_a_latex_name() -> None:
    activation = as_activation(sp.Lambda(sp.Symbol("q"), sp.Symbol("q") ** 3), name="cube_3")
    assert activation.name == "cube_3"
    assert activation.latex == r"\operatorname{cube\_3}"


def test_python_callable_is_accepted() -> None:
    activation = as_activation(lambda v: v / (1 + v**2), name="rational")
    assert activation.expression == z / (1 + z**2)
    assert activation.derivative.function(0) == 1


@pytest.mark.parametrize(
    "spec", [sp.tanh, sp.Lambda(sp.Symbol("y"), sp.tanh(sp.Symbol("y"))), lambda v: sp.tanh(v)]
)
def test_sympy_tanh_maps_to_the_catalogue_tanh(spec) -> None:
    activation = as_activation(spec)
    assert activation is acts.tanh
    assert activation.latex == r"\tanh"


def test_sympy_lambda_of_a_catalogue_body_maps_to_the_catalogue() -> None:
    y = sp.Symbol("y")
    assert as_activation(sp.Lambda(y, 1 / (1 + sp.exp(-y)))) == acts.sigmoid
    assert as_activation(sp.Lambda(y, y)) == acts.identity


def test_other_sympy_function_class_becomes_a_named_activation() -> None:
    activation = as_activation(sp.sin)
    assert activation.name == "sin"
    assert activation.expression == sp.sin(z)
    assert activation.derivative.expression == sp.cos(z)


def test_activation_is_passed_through_unchanged() -> None:
    assert as_activation(acts.gelu) is acts.gelu


def test_unknown_catalogue_name() -> None:
    with pytest.raises(CellDefinitionError, match=r"unknown activation 'softmax'; the catalogue has .*tanh"):
        as_activation("softmax")


x, y = sp.symbols("x y")
W = sp.MatrixSymbol("W", 2, 2)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (sp.Lambda((x, y), x + y), r"takes 2 arguments"),
        (sp.Lambda(x, x + y), r"free symbols y besides its variable"),
        (sp.Lambda(x, sp.Matrix([x, 2 * x])), r"is not elementwise"),
        (sp.Lambda(x, x * W[0, 1]), r"activation 'bad'"),
        (lambda v: [v, v], r"activation 'bad'"),
        (lambda v: __import__("math").tanh(v), r"calling the function on a scalar sympy symbol failed"),
        (sp.polygamma, r"cannot be applied to one scalar argument"),
        (3, r"must be a sympy Lambda of one variable"),
    ],
    ids=[
        "two-arguments",
        "extra-symbol",
        "matrix-body",
        "matrix-entry",
        "list",
        "math-tanh",
        "polygamma",
        "int",
    ],
)
def test_non_elementwise_functions_are_rejected(spec, match: str) -> None:
    with pytest.raises(CellDefinitionError, match=match) as excinfo:
        as_activation(spec, name="bad")
    assert "bad" in str(excinfo.value)
    assert isinstance(excinfo.value, GradflowError | ValueError)


def test_non_elementwise_function_is_rejected_by_a_cell() -> None:
    with pytest.raises(CellDefinitionError, match=r"cell 'elman2': activation 'mix' takes 2 arguments"):
        gf.Cell(
            "elman2",
            states={"h": "n"},
            inputs={"x": "m"},
            params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
            updates={"h": "mix(W_h @ h + W_x @ x + b)"},
            activations={"mix": sp.Lambda((x, y), x * y)},
        )


def test_body_symbol_named_z_is_not_captured() -> None:
    other = sp.Symbol("z", real=True)
    with pytest.raises(CellDefinitionError, match="free symbols"):
        as_activation(sp.Lambda(y, y * other), name="scaled")


# --- generic and non-differentiable --------------------------------------------


def test_generic_sigma_has_an_unevaluated_derivative() -> None:
    sigma = acts.generic()
    assert sigma.is_generic
    assert sigma.expression == sp.Function("sigma", real=True)(z)
    derivative = sigma.derivative.expression
    assert isinstance(derivative, sp.Derivative)
    assert derivative == sp.Derivative(sp.Function("sigma", real=True)(z), z)
    assert derivative.doit() == derivative  # nothing to evaluate
    assert sigma.derivative.is_generic
    assert isinstance(sigma.derivative.derivative.expression, sp.Derivative)


def test_generic_activation_can_be_renamed() -> None:
    phi = acts.generic("phi", r"\phi")
    assert phi.latex == r"\phi"
    assert phi != acts.generic()


@pytest.mark.parametrize(
    "function",
    [sp.floor, sp.ceiling, sp.frac, sp.zeta, lambda v: sp.Mod(v, 1), lambda v: sp.floor(v) + sp.tanh(v)],
    ids=["floor", "ceiling", "frac", "zeta", "mod", "floor-plus-tanh"],
)
def test_function_sympy_cannot_differentiate(function) -> None:
    """sympy leaves d/dz floor(z), zeta(z), ... unevaluated: a real NotDifferentiableError."""
    with pytest.raises(
        NotDifferentiableError, match=r"sympy cannot differentiate activation 'step'.*unevaluated"
    ):
        as_activation(function, name="step")


def test_not_differentiable_is_reported_by_cells_and_builtins() -> None:
    with pytest.raises(NotDifferentiableError, match=r"activation 'floor_'"):
        gf.Cell(
            "stepper",
            states={"h": 2},
            inputs={},
            params={"W": (2, 2)},
            updates={"h": "floor_(W @ h)"},
            activations={"floor_": sp.floor},
        )
    with pytest.raises(NotDifferentiableError):
        gf.cells.elman(sp.Lambda(x, sp.floor(x)))
    assert issubclass(NotDifferentiableError, GradflowError)
    assert issubclass(NotDifferentiableError, ValueError)
