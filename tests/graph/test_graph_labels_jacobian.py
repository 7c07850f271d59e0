"""LaTeX labels (golden strings) and the unevaluated LocalJacobian."""

from __future__ import annotations

import pytest
import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.errors import GraphError
from gradflow.graph import LocalJacobian, direction_of, latex_label, layer_of, unroll


@pytest.mark.parametrize(
    ("name", "t", "label"),
    [
        ("h", 3, "h^{(3)}"),
        ("h", 0, "h^{(0)}"),
        ("h", -2, "h^{(-2)}"),
        ("x", 1, "x^{(1)}"),
        ("c_tilde", 2, r"\tilde{c}^{(2)}"),
        ("h_tilde", 2, r"\tilde{h}^{(2)}"),
        ("W_h", None, "W_{h}"),
        ("b", None, "b"),
        ("b_Wh", None, "b_{Wh}"),
        ("alpha", None, r"\alpha"),
        ("tau", None, r"\tau"),
        ("dt", None, r"\Delta t"),
        ("Phi", None, r"\Phi"),
        ("net", 1, r"\mathrm{net}^{(1)}"),
        ("layer2.h", 3, "h^{[2](3)}"),
        ("layer2.W_h", None, "W_{h}^{[2]}"),
        ("fwd.h", 3, r"\overrightarrow{h}^{(3)}"),
        ("bwd.h", 3, r"\overleftarrow{h}^{(3)}"),
        ("fwd.W_h", None, r"\overrightarrow{W}_{h}"),
        ("layer1.bwd.c_tilde", 2, r"\overleftarrow{\tilde{c}}^{[1](2)}"),
        ("enc.h", 1, r"h^{[\mathrm{enc}](1)}"),
        ("E", 4, "E^{(4)}"),
        ("L", None, "L"),
    ],
)
def test_latex_labels(name: str, t: int | None, label: str) -> None:
    assert latex_label(name, t) == label


@pytest.mark.parametrize(
    ("name", "layer", "direction"),
    [
        ("h", None, None),
        ("layer3.h", 3, None),
        ("layer1.fwd.h", 1, "forward"),
        ("bwd.layer2.h", 2, "backward"),
        ("bwd.bwd.h", None, "forward"),
        ("layer12.W_x", 12, None),
        ("layerx.h", None, None),
    ],
)
def test_layer_and_direction(name: str, layer: int | None, direction: str | None) -> None:
    assert layer_of(name) == layer
    assert direction_of(name) == direction


def test_labels_parse_as_mathtext() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("agg")
    for name, t in [("layer1.bwd.c_tilde", 2), ("fwd.W_h", None), ("enc.h", 1), ("dt", None)]:
        parser.parse(f"${latex_label(name, t)}$")


def elman() -> Cell:
    return Cell(
        "elman",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
        updates={"h": "tanh(W_h @ h + W_x @ x + b)"},
    )


def test_local_jacobian_is_data() -> None:
    edge = unroll(elman(), 3).graph.edges[("h", 1), ("h", 2)]["jacobian"]
    assert repr(edge) == "LocalJacobian(dh[2]/dh[1])"
    assert edge.latex == r"\frac{\partial h^{(2)}}{\partial h^{(1)}}"
    assert not edge.is_abstract
    assert str(edge.expression) == "tanh(W_h*h[1] + W_x*x[2] + b)"
    assert str(edge.wrt) == "h[1]"
    with pytest.raises(AttributeError):
        edge.step = 4  # type: ignore[misc]


def test_doit_calls_the_symbolic_layer() -> None:
    from gradflow.symbolic import jacobian as symbolic

    ug = unroll(elman(), 3)
    for *_, data in ug.graph.edges(data=True):
        jacobian: LocalJacobian = data["jacobian"]
        assert jacobian.doit() == symbolic.local_jacobian(jacobian.expression, jacobian.wrt)
    edge = ug.graph.edges[("h", 1), ("h", 2)]["jacobian"].doit()
    assert edge.shape == (sp.Symbol("n", integer=True, positive=True),) * 2
    assert str(edge) == "diag(tanh'(W_h*h[1] + W_x*x[2] + b))*W_h"


def test_loss_edges_are_abstract() -> None:
    graph = unroll(elman(), 2, loss=True).graph
    for source, target in [(("h", 2), ("E", 2)), (("E", 1), ("L", None))]:
        edge = graph.edges[source, target]["jacobian"]
        assert edge.is_abstract and edge.expression is None
        with pytest.raises(GraphError, match="abstract loss"):
            edge.doit()
    assert str(graph.edges[("E", 1), ("L", None)]["jacobian"].wrt) == "E[1]"
