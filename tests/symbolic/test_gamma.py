"""gamma(activation) = sup |σ'|: exact values, and certified brackets against an mpmath referee.

The referee maximises |σ'| on its own: σ is lambdified to mpmath, σ' is taken by
mpmath's numerical differentiation (not from gradflow), the maximum is located on
a grid over [-50, 50] and refined by golden-section search at 50 digits.
"""

from __future__ import annotations

import dataclasses
import importlib
import math

import mpmath
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from gradflow.cells import activations as acts
from gradflow.errors import CellDefinitionError, GradflowError
from gradflow.symbolic.gamma import Gamma, gamma, gamma_symbol

z = acts.z
x = sp.Symbol("x")

GELU_GAMMA = sp.Rational(1, 2) + sp.erf(1) / 2 + sp.exp(-1) / sp.sqrt(sp.pi)  # at z = sqrt(2)

EXACT = {
    "identity": (acts.identity, 1, 0, True),
    "tanh": (acts.tanh, 1, 0, True),
    "sigmoid": (acts.sigmoid, sp.Rational(1, 4), 0, True),
    "relu": (acts.relu, 1, 0, True),
    "leaky_relu": (acts.leaky_relu(), 1, 0, True),
    "leaky_relu(1/5)": (acts.leaky_relu("0.2"), 1, 0, True),
    "softsign": (acts.softsign, 1, 0, True),
    "hard_tanh": (acts.hard_tanh, 1, 0, True),
    "elu": (acts.elu(), 1, 0, True),
    "elu(2)": (acts.elu(2), 2, 0, False),  # 2 e^z < 2 on z < 0: approached at 0-, not attained
    "elu(1/2)": (acts.elu(sp.Rational(1, 2)), 1, 0, True),
    "gelu": (acts.gelu, GELU_GAMMA, sp.sqrt(2), True),
    "sin": (sp.Lambda(x, sp.sin(x)), 1, 0, True),
    "3 tanh(z/2)": (sp.Lambda(x, 3 * sp.tanh(x / 2)), sp.Rational(3, 2), 0, True),
    "softplus": (sp.Lambda(x, sp.log(1 + sp.exp(x))), 1, sp.oo, False),
    "sin^2": (sp.Lambda(x, sp.sin(x) ** 2), 1, sp.pi / 4, True),
    "z atan z": (sp.Lambda(x, x * sp.atan(x)), sp.pi / 2, -sp.oo, False),
}

NUMERIC = {
    "swish": acts.swish(),
    "silu": acts.silu,
    "swish(3)": acts.swish(3),
    "swish(1/2)": acts.swish(sp.Rational(1, 2)),
    "z tanh z": acts.as_activation(sp.Lambda(x, x * sp.tanh(x)), name="ztanh"),
}

CATALOGUE = [
    acts.identity,
    acts.tanh,
    acts.sigmoid,
    acts.relu,
    acts.leaky_relu(),
    acts.softsign,
    acts.hard_tanh,
    acts.elu(),
    acts.elu(2),
    acts.swish(),
    acts.silu,
    acts.gelu,
]


def referee(activation: acts.Activation) -> tuple[sp.Float, sp.Float]:
    """(max |σ'|, argmax) over [-50, 50], by a grid and golden-section search at 50 digits.

    σ' is sympy's derivative of the activation's expression, checked against mpmath's
    numerical derivative at the maximiser.
    """
    with mpmath.workdps(50):
        sigma = sp.lambdify(z, activation.expression, modules="mpmath")
        derivative = sp.lambdify(z, sp.diff(activation.expression, z), modules="mpmath")

        def slope(t):
            return abs(derivative(t))

        step = mpmath.mpf(1) / 8
        best = max((step * k for k in range(-400, 401)), key=slope)
        a, b = best - step, best + step
        ratio = (mpmath.sqrt(5) - 1) / 2
        for _ in range(240):
            c, d = b - ratio * (b - a), a + ratio * (b - a)
            if slope(c) >= slope(d):
                b = d
            else:
                a = c
        where = (a + b) / 2
        assert abs(abs(mpmath.diff(sigma, where)) - slope(where)) < mpmath.mpf(10) ** -40
        return sp.Float(slope(where), 50), sp.Float(where, 50)


@pytest.mark.parametrize("key", EXACT)
def test_exact_values(key):
    spec, value, argmax, attained = EXACT[key]
    result = gamma(spec)
    assert isinstance(result, Gamma)
    assert result.exact is True
    assert result.value == value
    assert result.argmax == argmax
    assert result.attained is attained
    lo, hi = result.bracket
    assert isinstance(lo, sp.Rational) and isinstance(hi, sp.Rational)
    assert lo <= result.value <= hi
    assert float(result) == pytest.approx(float(value), rel=1e-15)


def test_the_textbook_values():
    """CS224n and Pascanu et al.: gamma = 1 for tanh, 1/4 for the sigmoid."""
    assert gamma("tanh").value == sp.Integer(1)
    assert gamma("sigmoid").value == sp.Rational(1, 4)
    assert float(gamma("sigmoid")) == 0.25


def test_gelu_closed_form_agrees_with_the_referee():
    reference, where = referee(acts.gelu)
    result = gamma("gelu")
    assert abs(sp.N(result.value, 50) - reference) < 1e-40
    assert abs(where - sp.sqrt(2)) < 1e-20


@pytest.mark.parametrize("key", NUMERIC)
def test_certified_brackets_hold_the_referee(key):
    activation = NUMERIC[key]
    result = gamma(activation)
    reference, where = referee(activation)
    lo, hi = result.bracket
    assert result.exact is False
    assert result.method == "critical points + interval arithmetic"
    assert lo <= reference <= hi
    assert hi - lo <= 1e-12 * reference
    assert abs(float(result) - float(reference)) <= 1e-12
    assert abs(result.value - reference) <= 1e-18
    assert abs(abs(result.argmax) - abs(where)) < 1e-15
    assert result.attained is True


def test_silu_value():
    """γ(SiLU) = s(u)(1 + u(1 - s(u))) where u tanh(u/2) = 2 (σ'' = 0), s the logistic."""
    with mpmath.workdps(50):
        u = mpmath.findroot(lambda t: t * mpmath.tanh(t / 2) - 2, 2.4)
        s = 1 / (1 + mpmath.exp(-u))
        expected = sp.Float(s * (1 + u * (1 - s)), 50)
    result = gamma("silu")
    assert result.bracket[0] <= expected <= result.bracket[1]
    assert abs(result.argmax - sp.Float(u, 50)) < 1e-18


@pytest.mark.parametrize("beta", [sp.Rational(1, 2), 2, 3])
def test_swish_gamma_does_not_depend_on_beta(beta):
    """σ'(z) = s(βz) + βz s(βz)(1 - s(βz)) is a function of βz alone: same sup, argmax scaled by 1/β."""
    silu = gamma("silu")
    result = gamma(acts.swish(beta))
    assert result.bracket[0] <= silu.bracket[1] and silu.bracket[0] <= result.bracket[1]
    assert abs(result.argmax * beta - silu.argmax) < 1e-15


def test_generic_sigma_gives_the_symbol():
    result = gamma("sigma")
    assert result == Gamma(gamma_symbol, True, None, "generic", None)
    assert gamma(acts.generic("phi")).value is gamma_symbol
    assert gamma_symbol.is_positive
    with pytest.raises(GradflowError, match="generic"):
        float(result)


def test_unbounded_derivative():
    result = gamma(sp.Lambda(x, x**3))
    assert result.value is sp.oo and result.exact is True and result.bracket is None
    assert "unbounded" in result.method
    assert result.argmax in (sp.oo, -sp.oo)
    assert math.isinf(float(result))
    assert gamma(sp.Lambda(x, 1 / x)).value is sp.oo  # a pole at 0


def test_results_are_cached_and_frozen():
    assert gamma("tanh") is gamma(acts.tanh)
    with pytest.raises(dataclasses.FrozenInstanceError):
        gamma("tanh").value = sp.Integer(2)  # type: ignore[misc]


def test_mish_is_certified_with_its_coverage_stated():
    """z tanh(softplus z): interval arithmetic loses exp(z)/(exp(z)+1) far out, the method says where."""
    result = gamma(sp.Lambda(x, x * sp.tanh(sp.log(1 + sp.exp(x)))))
    lo, hi = result.bracket
    assert lo <= sp.Float("1.0884981612517278612282936273921") <= hi
    assert "beyond, by the limits at infinity" in result.method


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("nope", CellDefinitionError, "unknown activation 'nope'"),
        (object(), GradflowError, "must be a sympy Lambda"),
        (3, GradflowError, "must be a sympy Lambda"),
        (None, GradflowError, "must be a sympy Lambda"),
        (sp.Lambda((x, z), x + z), CellDefinitionError, "takes 2 arguments"),
        (sp.Lambda(x, 2 * sp.Function("g")(x)), GradflowError, "undefined function"),
        (sp.Lambda(x, sp.besselj(0, x)), GradflowError, "cannot be certified"),
    ],
)
def test_malformed(spec, error, match):
    with pytest.raises(error, match=match):
        gamma(spec)


KINKS = [-1.0, 0.0, 1.0, 2.399357280515467, -2.399357280515467, 1.4142135623730951]


@settings(max_examples=300, deadline=None)
@given(
    activation=st.sampled_from(CATALOGUE),
    point=st.one_of(st.floats(-50, 50, allow_nan=False), st.sampled_from(KINKS)),
)
def test_no_point_beats_the_bound(activation, point):
    result = gamma(activation)
    slope = activation.derivative.expression.xreplace({z: sp.Rational(point)})
    assert abs(sp.N(slope, 40)) <= result.bracket[1]


def test_exact_answers_are_checked_by_interval_arithmetic():
    assert gamma("tanh").method == "sympy critical points and limits, checked by interval arithmetic"
    assert gamma("sigmoid").method == "sympy critical points and limits, checked by interval arithmetic"


def test_a_wrong_sympy_answer_is_caught(monkeypatch):
    """If sympy's supremum were too small, the interval check refutes it and the numeric path answers."""
    module = importlib.import_module("gradflow.symbolic.gamma")  # the package exports the function gamma

    def too_small(name, f, where):
        return module._exact_result(sp.Rational(9, 10), sp.S.Zero, True, "wrong")

    monkeypatch.setattr(module, "_exact_sup", too_small)
    result = gamma(sp.Lambda(x, 2 * sp.tanh(x) + 1))  # used by no other test: not cached yet
    assert result.exact is False
    assert result.method == "critical points + interval arithmetic"
    assert result.bracket[0] <= 2 <= result.bracket[1]
    assert abs(result.argmax) < 1e-20
