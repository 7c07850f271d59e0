"""unroll: node and edge counts against closed formulas, node schema, edges, bad input.

Each formula below is derived by reading the cell's equations: nodes =
parameters + T x (inputs + nodes of one step) + initial history (the
longest delay of each state); edges = T x (direct dependencies of one step:
distinct signals read + parameters used, summed over the step's equations).
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import pytest
import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal, t
from gradflow.errors import GraphError
from gradflow.graph import KINDS, LocalJacobian, UnrolledGraph, unroll

cells = pytest.importorskip("gradflow.cells.builtin")
combinators = pytest.importorskip("gradflow.cells.combinators")

Formula = Callable[[int], int]

# name -> (constructor, nodes(T), edges(T))
FORMULAS: dict[str, tuple[Callable[[], Cell], Formula, Formula]] = {
    # h <- h[t-1], x, W_h, W_x, b
    "elman": (lambda: cells.elman(), lambda T: 3 + T + (T + 1), lambda T: 5 * T),
    # h (intermediate) <- y[t-1], x, W_h, W_x, b ; y <- h, W_y, b_y
    "jordan": (lambda: cells.jordan(), lambda T: 5 + 3 * T + 1, lambda T: (5 + 3) * T),
    # f, i, o, c_tilde <- h[t-1], x, W_g, U_g, b_g (5 each); c <- f, c[t-1], i, c_tilde; h <- o, c[t]
    "lstm": (lambda: cells.lstm(), lambda T: 12 + 7 * T + 2, lambda T: (4 * 5 + 4 + 2) * T),
    # no forget gate: c <- c[t-1], i, c_tilde
    "lstm1997": (
        lambda: cells.lstm(forget_gate=False),
        lambda T: 9 + 6 * T + 2,
        lambda T: (3 * 5 + 3 + 2) * T,
    ),
    # peepholes: f, i also read p_g and c[t-1]; o reads p_o and c[t]
    "lstm_peephole": (
        lambda: cells.lstm(peephole=True),
        lambda T: 15 + 7 * T + 2,
        lambda T: (3 * 7 + 5 + 4 + 2) * T,
    ),
    # z, r: 5 each; h_tilde <- h[t-1], r, x, W_h, U_h, b_h; h <- z, h[t-1], h_tilde
    "gru": (lambda: cells.gru(), lambda T: 9 + 5 * T + 1, lambda T: (5 + 5 + 6 + 3) * T),
    # reset after: h_tilde also reads b_Wh
    "gru_reset_after": (
        lambda: cells.gru(reset_after=True),
        lambda T: 10 + 5 * T + 1,
        lambda T: (5 + 5 + 7 + 3) * T,
    ),
    # h <- h[t-1], x, W_h, W_x, b, alpha
    "leaky": (lambda: cells.leaky(), lambda T: 4 + T + (T + 1), lambda T: 6 * T),
    # a constant leak is no parameter
    "leaky_constant": (lambda: cells.leaky(0.5), lambda T: 3 + T + (T + 1), lambda T: 5 * T),
    # h <- h[t-1], x, W_h, W_x, b, tau, dt
    "ctrnn": (lambda: cells.ctrnn(), lambda T: 5 + T + (T + 1), lambda T: 7 * T),
    "ctrnn_constant": (lambda: cells.ctrnn(2, 0.1), lambda T: 3 + T + (T + 1), lambda T: 5 * T),
    # h <- h[t-1], x, u, W_x, b
    "indrnn": (lambda: cells.indrnn(), lambda T: 3 + T + (T + 1), lambda T: 5 * T),
    # z <- x, W_x; u <- h[t-1], z, U_h, U_z, b; h <- u, h[t-1], z
    "minimal": (lambda: cells.minimal(), lambda T: 4 + 4 * T + 1, lambda T: (2 + 5 + 3) * T),
    # two Elman layers; layer2.h reads layer1.h[t] in place of x
    "stack2_elman": (
        lambda: combinators.stack([cells.elman(), cells.elman()]),
        lambda T: 6 + 3 * T + 2,
        lambda T: (5 + 5) * T,
    ),
    # LSTM below a GRU: each layer keeps its own count of dependencies
    "stack_lstm_gru": (
        lambda: combinators.stack([cells.lstm(), cells.gru()]),
        lambda T: (12 + 9) + (1 + 6 + 4) * T + 3,
        lambda T: (26 + 19) * T,
    ),
    # fwd.h, bwd.h: 5 each; h <- fwd.h, bwd.h; history fwd.h[0] and bwd.h[T+1]
    "bidirectional_elman": (
        lambda: combinators.bidirectional(cells.elman()),
        lambda T: 6 + 4 * T + 2,
        lambda T: (5 + 5 + 2) * T,
    ),
    "bidirectional_lstm": (
        lambda: combinators.bidirectional(cells.lstm()),
        lambda T: 24 + (1 + 2 * 6 + 1) * T + 4,
        lambda T: (2 * 26 + 2) * T,
    ),
    "stack_bidirectional": (
        lambda: combinators.stack([combinators.bidirectional(cells.elman()), cells.elman()]),
        lambda T: 9 + 5 * T + 3,
        lambda T: (5 + 5 + 2 + 5) * T,
    ),
}

# skip(d): h <- h[t-1], h[t-d], x, W_h, W_d, W_x, b; history t = 1-d..0
SKIP_FORMULAS: dict[
    str, tuple[Callable[[int], Cell], Callable[[int, int], int], Callable[[int, int], int]]
] = {
    "skip": (lambda d: cells.skip(d), lambda T, d: 4 + T + (T + d), lambda T, d: 7 * T),
    # no unit connection: h <- h[t-d], x, W_d, W_x, b
    "skip_only": (
        lambda d: cells.skip(d, unit_connection=False),
        lambda T, d: 3 + T + (T + d),
        lambda T, d: 5 * T,
    ),
}


def elman_by_hand() -> Cell:
    return Cell(
        "elman",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
        updates={"h": "tanh(W_h @ h + W_x @ x + b)"},
    )


def skip_by_hand(d: int) -> Cell:
    return Cell(
        "skip",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W_h": ("n", "n"), "W_d": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
        updates={"h": f"tanh(W_h @ h + W_d @ h[t-{d}] + W_x @ x + b)"},
    )


@pytest.mark.parametrize("T", range(1, 7))
@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_counts_match_closed_formulas(name: str, T: int) -> None:
    make, nodes, edges = FORMULAS[name]
    cell = make()
    ug = unroll(cell, T)
    assert ug.graph.number_of_nodes() == nodes(T)
    assert ug.graph.number_of_edges() == edges(T)
    with_loss = unroll(cell, T, loss=True)
    assert with_loss.graph.number_of_nodes() == nodes(T) + T + 1
    # each E^(t) reads the one signal the cell emits, and feeds L
    assert with_loss.graph.number_of_edges() == edges(T) + 2 * T


@pytest.mark.parametrize("T", range(1, 7))
@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("name", sorted(SKIP_FORMULAS))
def test_skip_counts_match_closed_formulas(name: str, d: int, T: int) -> None:
    make, nodes, edges = SKIP_FORMULAS[name]
    if d >= T:
        with pytest.raises(GraphError, match=f"delay d={d} of state 'h'"):
            unroll(make(d), T)
        return
    ug = unroll(make(d), T)
    assert ug.graph.number_of_nodes() == nodes(T, d)
    assert ug.graph.number_of_edges() == edges(T, d)


@pytest.mark.parametrize("T", range(1, 7))
def test_hand_built_elman_counts(T: int) -> None:
    ug = unroll(elman_by_hand(), T)
    assert ug.graph.number_of_nodes() == 3 + T + (T + 1)
    assert ug.graph.number_of_edges() == 5 * T


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_every_node_has_the_schema_and_the_graph_is_a_dag(name: str) -> None:
    ug = unroll(FORMULAS[name][0](), 3, loss=True)
    assert nx.is_directed_acyclic_graph(ug.graph)
    for node, data in ug.graph.nodes(data=True):
        assert set(data) == {"kind", "shape", "latex", "name", "t", "layer", "direction"}
        assert data["kind"] in KINDS
        assert node == (data["name"], data["t"])
        assert isinstance(data["shape"], tuple)
        assert (data["t"] is None) == (data["kind"] == "param" or node == ("L", None))
    for u, v, data in ug.graph.edges(data=True):
        jacobian = data["jacobian"]
        assert isinstance(jacobian, LocalJacobian)
        assert (jacobian.target, jacobian.source) == (v, u)


def test_elman_nodes_edges_and_attributes() -> None:
    ug = unroll(cells.elman(), 3)
    assert isinstance(ug, UnrolledGraph) and ug.T == 3 and not ug.loss
    assert sorted(ug.nodes("state"), key=lambda n: n[1]) == [("h", 0), ("h", 1), ("h", 2), ("h", 3)]
    assert sorted(ug.nodes("input"), key=lambda n: n[1]) == [("x", 1), ("x", 2), ("x", 3)]
    assert set(ug.nodes("param")) == {("W_h", None), ("W_x", None), ("b", None)}
    assert ug.nodes("loss") == []
    n, m = sp.Symbol("n", integer=True, positive=True), sp.Symbol("m", integer=True, positive=True)
    assert ug.graph.nodes["h", 2]["shape"] == (n,)
    assert ug.graph.nodes["W_x", None]["shape"] == (n, m)
    assert ug.graph.nodes["h", 2]["latex"] == "h^{(2)}"
    assert ug.graph.nodes["W_h", None]["latex"] == "W_{h}"
    assert set(ug.graph.predecessors(("h", 2))) == {
        ("h", 1),
        ("x", 2),
        ("W_h", None),
        ("W_x", None),
        ("b", None),
    }
    assert ug.graph.out_degree(("W_h", None)) == 3  # one edge per step: the BPTT sum
    assert ug.state("h", 0) == ("h", 0)
    assert ug.parameter("b") == ("b", None)


def test_concrete_sizes_are_python_ints() -> None:
    ug = unroll(cells.elman(n=4, m=2), 2)
    assert ug.graph.nodes["h", 1]["shape"] == (4,)
    assert ug.graph.nodes["W_x", None]["shape"] == (4, 2)
    assert all(type(size) is int for size in ug.graph.nodes["W_x", None]["shape"])


def test_lstm_in_step_edges() -> None:
    ug = unroll(cells.lstm(), 2)
    graph = ug.graph
    assert graph.has_edge(("c", 1), ("c", 2))  # c^(t-1) -> c^(t)
    assert graph.has_edge(("c", 2), ("h", 2))  # c[t] read within the step
    assert graph.has_edge(("f", 2), ("c", 2))
    assert graph.has_edge(("c_tilde", 2), ("c", 2))
    assert not graph.has_edge(("h", 2), ("c", 2))
    assert graph.nodes["c_tilde", 2]["latex"] == r"\tilde{c}^{(2)}"
    assert graph.nodes["c_tilde", 2]["kind"] == "intermediate"


def test_skip_history_nodes() -> None:
    ug = unroll(skip_by_hand(3), 5)
    assert sorted(t for _, t in ug.nodes("state")) == [-2, -1, 0, 1, 2, 3, 4, 5]
    assert set(ug.graph.predecessors(("h", 1))) >= {("h", 0), ("h", -2)}
    assert ug.graph.has_edge(("h", 2), ("h", 5))


def test_bidirectional_history_and_direction() -> None:
    cell = combinators.bidirectional(cells.elman())
    ug = unroll(cell, 4)
    graph = ug.graph
    assert ("bwd.h", 5) in graph and ("bwd.h", 0) not in graph
    assert ("fwd.h", 0) in graph and ("fwd.h", 5) not in graph
    assert graph.has_edge(("bwd.h", 3), ("bwd.h", 2))
    assert graph.has_edge(("fwd.h", 2), ("h", 2)) and graph.has_edge(("bwd.h", 2), ("h", 2))
    assert graph.nodes["bwd.h", 2]["direction"] == "backward"
    assert graph.nodes["fwd.W_h", None]["direction"] == "forward"
    assert graph.nodes["x", 2]["direction"] is None
    assert graph.nodes["bwd.h", 2]["latex"] == r"\overleftarrow{h}^{(2)}"
    assert graph.nodes["fwd.h", 2]["latex"] == r"\overrightarrow{h}^{(2)}"
    assert graph.nodes["h", 2]["kind"] == "output"
    assert graph.nodes["h", 2]["shape"] == (2 * sp.Symbol("n", integer=True, positive=True),)


def test_stack_layers() -> None:
    cell = combinators.stack([combinators.bidirectional(cells.elman()), cells.elman()])
    graph = unroll(cell, 3).graph
    assert graph.nodes["layer2.h", 1]["layer"] == 2
    assert graph.nodes["layer1.bwd.h", 1]["layer"] == 1
    assert graph.nodes["layer1.bwd.h", 1]["direction"] == "backward"
    assert graph.nodes["layer2.W_h", None]["latex"] == "W_{h}^{[2]}"
    assert graph.nodes["layer2.h", 3]["latex"] == "h^{[2](3)}"
    assert graph.has_edge(("layer1.h", 2), ("layer2.h", 2))


def test_loss_nodes() -> None:
    ug = unroll(cells.lstm(), 3, loss=True)
    graph = ug.graph
    assert ug.loss
    assert set(ug.nodes("loss")) == {("E", 1), ("E", 2), ("E", 3), ("L", None)}
    assert set(graph.predecessors(("E", 2))) == {("h", 2)}  # what an LSTM emits: h, not c
    assert set(graph.predecessors(("L", None))) == {("E", 1), ("E", 2), ("E", 3)}
    assert graph.nodes["L", None]["shape"] == () and graph.nodes["E", 1]["latex"] == "E^{(1)}"
    outputs = unroll(combinators.bidirectional(cells.elman()), 2, loss=True).graph
    assert set(outputs.predecessors(("E", 2))) == {("h", 2)}
    stacked = unroll(
        combinators.stack([combinators.bidirectional(cells.elman()), cells.elman()]), 2, loss=True
    )
    assert set(stacked.graph.predecessors(("E", 1))) == {("layer2.h", 1)}  # the top layer


def test_loss_name_clash() -> None:
    cell = Cell(
        "clash",
        states={"E": "n"},
        inputs={"x": "m"},
        params={"W_x": ("n", "m")},
        updates={"E": "tanh(E + W_x @ x)"},
    )
    assert unroll(cell, 2).graph.number_of_nodes() == 1 + 2 + 3
    with pytest.raises(GraphError, match=r"'E'.*clashes"):
        unroll(cell, 2, loss=True)


def test_local_jacobian_fields() -> None:
    cell = skip_by_hand(3)
    ug = unroll(cell, 6)
    jacobian = ug.graph.edges[("h", 2), ("h", 5)]["jacobian"]
    n = cell.states["h"]
    assert jacobian.target == ("h", 5) and jacobian.source == ("h", 2)
    assert jacobian.expression == cell.expression("state", "h").xreplace({t: 5})
    assert jacobian.wrt == Signal("h", n, 2, "state")
    on_param = ug.graph.edges[("W_d", None), ("h", 5)]["jacobian"]
    assert on_param.wrt == cell.parameter("W_d")
    assert on_param.expression == jacobian.expression


@pytest.mark.parametrize("T", [0, -1, 2.5, True, False, "3", None])
def test_bad_T(T: object) -> None:
    with pytest.raises(GraphError, match=r"T must be an int >= 1") as info:
        unroll(cells.elman(), T)  # type: ignore[arg-type]
    assert repr(T) in str(info.value) or str(T) in str(info.value)


@pytest.mark.parametrize(("d", "T"), [(2, 2), (3, 2), (5, 5), (7, 3)])
def test_delay_not_shorter_than_T(d: int, T: int) -> None:
    with pytest.raises(
        GraphError, match=rf"delay d={d} of state 'h' in cell 'skip' is not shorter than T={T}"
    ):
        unroll(skip_by_hand(d), T)


def test_lookup_errors() -> None:
    ug = unroll(cells.elman(), 2)
    with pytest.raises(GraphError, match=r"no state node \('h', 7\).*t = 0..2"):
        ug.state("h", 7)
    with pytest.raises(GraphError, match="no param node"):
        ug.parameter("W_q")
    with pytest.raises(GraphError, match="no state node"):
        ug.state("x", 1)  # an input, not a state
    with pytest.raises(GraphError, match="unknown node kind"):
        ug.nodes("gate")
