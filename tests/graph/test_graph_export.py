"""Exports: GraphML and node-link round trips, DOT text, drawing, atomic writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import pytest

from gradflow.cells.cell import Cell
from gradflow.errors import GraphError
from gradflow.graph import (
    UnrolledGraph,
    draw,
    from_node_link,
    read_graphml,
    read_node_link,
    to_dot,
    to_node_link,
    unroll,
    write_dot,
    write_graphml,
    write_node_link,
)

SCALARS = ("kind", "shape", "latex", "name", "t", "layer", "direction")


def lstm_like() -> Cell:
    return Cell(
        "gated",
        states={"h": "n", "c": "n"},
        inputs={"x": "m"},
        params={"W_f": ("n", "n"), "U_f": ("n", "m"), "b_f": "n", "W_c": ("n", "n"), "alpha": ()},
        intermediates={"f": "sigmoid(W_f @ h + U_f @ x + b_f)", "c_tilde": "tanh(W_c @ h)"},
        updates={"c": "f * c + alpha * c_tilde", "h": "tanh(c[t])"},
        outputs={"y": "h"},
    )


def graphs() -> list[UnrolledGraph]:
    built = [unroll(lstm_like(), 3, loss=True), unroll(lstm_like().with_sizes(n=3, m=2), 2)]
    combinators = pytest.importorskip("gradflow.cells.combinators")
    builtin = pytest.importorskip("gradflow.cells.builtin")
    built.append(unroll(combinators.stack([combinators.bidirectional(builtin.elman()), builtin.skip(2)]), 4))
    return built


def assert_same(graph: nx.DiGraph, ug: UnrolledGraph) -> None:
    assert set(graph.nodes) == set(ug.graph.nodes)
    assert set(graph.edges) == set(ug.graph.edges)
    for node, data in ug.graph.nodes(data=True):
        assert {key: graph.nodes[node][key] for key in SCALARS} == {key: data[key] for key in SCALARS}
    assert all("jacobian" not in data for _, _, data in graph.edges(data=True))


@pytest.mark.parametrize("index", range(3))
def test_graphml_round_trip(tmp_path: Path, index: int) -> None:
    ug = graphs()[index]
    path = write_graphml(ug, tmp_path / "g.graphml")
    assert path == tmp_path / "g.graphml"
    graph = read_graphml(path)
    assert_same(graph, ug)
    assert graph.graph["cell"] == ug.cell.name and graph.graph["T"] == ug.T


@pytest.mark.parametrize("index", range(3))
def test_node_link_round_trip(tmp_path: Path, index: int) -> None:
    ug = graphs()[index]
    data = json.loads(json.dumps(to_node_link(ug)))
    assert_same(from_node_link(data), ug)
    assert_same(read_node_link(write_node_link(ug, tmp_path / "g.json")), ug)


def test_dot_contains_every_node_and_edge(tmp_path: Path) -> None:
    for ug in graphs():
        text = to_dot(ug)
        assert text.startswith("digraph ") and text.rstrip().endswith("}")
        assert text.count("{") == text.count("}")
        declared = set(re.findall(r'^  "([^"]+)" \[', text, flags=re.MULTILINE))
        expected = {name if t is None else f"{name}[{t}]" for name, t in ug.graph.nodes}
        assert declared == expected
        arrows = re.findall(r'^  "([^"]+)" -> "([^"]+)";$', text, flags=re.MULTILINE)
        assert len(arrows) == ug.graph.number_of_edges()
    path = write_dot(graphs()[0], tmp_path / "g.dot")
    assert path.read_text(encoding="utf-8") == to_dot(graphs()[0])


@pytest.mark.filterwarnings("ignore:.*deprecated - use:DeprecationWarning")  # pyparsing, inside pydot
def test_dot_parses_with_pydot() -> None:
    import pydot

    ug = graphs()[0]
    (parsed,) = pydot.graph_from_dot_data(to_dot(ug))
    assert len(parsed.get_edges()) == ug.graph.number_of_edges()


@pytest.mark.parametrize("writer", [write_graphml, write_dot, write_node_link], ids=lambda f: f.__name__)
def test_overwrite_refused_then_allowed(tmp_path: Path, writer: object) -> None:
    ug = graphs()[0]
    path = tmp_path / "out"
    path.write_text("keep me", encoding="utf-8")
    with pytest.raises(GraphError, match=r"already exists.*overwrite=True"):
        writer(ug, path)  # type: ignore[operator]
    assert path.read_text(encoding="utf-8") == "keep me"
    writer(ug, path, overwrite=True)  # type: ignore[operator]
    assert path.read_text(encoding="utf-8") != "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind


def test_write_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="does not exist"):
        write_graphml(graphs()[0], tmp_path / "nowhere" / "g.graphml")


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(nx, "write_graphml", broken)
    with pytest.raises(RuntimeError):
        write_graphml(graphs()[0], tmp_path / "g.graphml")
    assert list(tmp_path.iterdir()) == []


def test_reading_foreign_files(tmp_path: Path) -> None:
    foreign = nx.DiGraph([("a", "b")])
    nx.write_graphml(foreign, tmp_path / "foreign.graphml")
    with pytest.raises(GraphError, match="not a graph exported by gradflow"):
        read_graphml(tmp_path / "foreign.graphml")
    (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(GraphError, match="not JSON"):
        read_node_link(tmp_path / "bad.json")
    with pytest.raises(GraphError, match="not node-link"):
        from_node_link({"nodes": "x"})


@pytest.mark.parametrize("index", range(3))
@pytest.mark.parametrize("latex", [True, False])
def test_draw_renders_a_png(tmp_path: Path, index: int, latex: bool) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    ax = draw(graphs()[index], figure.add_subplot(), latex=latex)
    assert ax.figure is figure
    path = tmp_path / "graph.png"
    figure.savefig(path)
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")


def test_draw_makes_its_own_axes(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = draw(graphs()[0], params=False)
    try:
        ax.figure.savefig(tmp_path / "own.png")
        assert (tmp_path / "own.png").read_bytes().startswith(b"\x89PNG")
        labels = [tick.get_text() for tick in ax.get_yticklabels()]
        assert not any("W_" in label for label in labels)  # parameters hidden
    finally:
        plt.close(ax.figure)


@pytest.mark.parametrize("params", [True, False])
def test_draw_draws_every_edge_of_the_shown_nodes(params: bool) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    ug = graphs()[0]  # with a loss: E(t) -> L has no time at its head
    ax = draw(ug, Figure().add_subplot(), params=params)
    arrows = [patch for patch in ax.patches if isinstance(patch, FancyArrowPatch)]
    kinds = ug.graph.nodes
    expected = [(u, v) for u, v in ug.graph.edges if params or kinds[u]["kind"] != "param"]
    into_loss = [(u, v) for u, v in expected if v == ("L", None)]
    assert len(into_loss) == 3 and len(arrows) == len(expected)


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.write_text("", encoding="utf-8")
    written = write_graphml(graphs()[0], tmp_path / "g.graphml")
    assert written.stat().st_mode == reference.stat().st_mode
