"""UnsupportedCellError: analyses that do not apply to a cell say so, and name the cell and the way out."""

from __future__ import annotations

import importlib

import pytest

import gradflow as gf
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic import bounds, hochreiter
from gradflow.symbolic.bounds import chain_bound
from gradflow.symbolic.bptt import adjoint, chain, parameter_gradient
from gradflow.symbolic.strategies import Truncated

C = gf.cells
gamma = importlib.import_module("gradflow.symbolic.gamma")  # the package exports the function gamma

BACKWARD_SKIP = gf.Cell(
    "backward skip",
    states={"h": "n"},
    inputs={"x": "m"},
    params={"W_h": ("n", "n"), "W_d": ("n", "n"), "W_x": ("n", "m")},
    updates={"h": "tanh(W_h @ h + W_d @ h[t+2] + W_x @ x)"},
    backward=["h"],
)

CASES = {
    "hochreiter units of a gated cell": (lambda: hochreiter.error_recursion(C.lstm(n=2, m=1)), "'lstm'"),
    "chain of a backward cell with delays": (lambda: chain(BACKWARD_SKIP, "t", 1), "'backward skip'"),
    "one adjoint of a bidirectional cell": (lambda: adjoint(C.bidirectional(C.elman())), "states="),
    "a truncated gradient of a cell whose directions read each other": (
        lambda: parameter_gradient(
            C.stack([C.elman(), C.bidirectional(C.elman()), C.elman()]), "layer1.W_h", Truncated(2)
        ),
        "read each other",
    ),
    "Pascanu's bound of a bidirectional cell": (
        lambda: chain_bound(C.bidirectional(C.elman())),
        "bound each direction's separately",
    ),
    "Pascanu's bound of a skip cell": (lambda: chain_bound(C.skip(2)), "PathSum"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unsupported_cells_are_named(case):
    call, words = CASES[case]
    with pytest.raises(UnsupportedCellError) as caught:
        call()
    assert words in str(caught.value)
    assert isinstance(caught.value, GradflowError)
    assert isinstance(caught.value, ValueError)


def test_one_gamma_symbol():
    assert bounds.gamma_of is gamma.gamma_of
    assert gamma.gamma_of(gf.as_activation("tanh")) == gamma.gamma_symbol
    assert str(gamma.gamma_of(gf.as_activation("relu"))) == "gamma_relu"


def test_split_modules_keep_their_public_names():
    for name in hochreiter.__all__:
        assert getattr(hochreiter, name).__name__ == name
    for name in gamma.__all__:
        assert hasattr(gamma, name)
