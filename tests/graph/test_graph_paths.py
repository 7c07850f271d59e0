"""Path algebra: counts of paths through skip connections, shortest paths, bad nodes."""

from __future__ import annotations

from functools import cache
from itertools import pairwise
from math import comb

import networkx as nx
import pytest

from gradflow.cells.cell import Cell
from gradflow.errors import GraphError
from gradflow.graph import UnrolledGraph, count_paths, enumerate_paths, shortest_path_length, unroll


def skip_cell(d: int, unit_connection: bool = True) -> Cell:
    recurrent = "W_h @ h + " if unit_connection else ""
    params = {"W_h": ("n", "n")} if unit_connection else {}
    return Cell(
        "skip",
        states={"h": "n"},
        inputs={"x": "m"},
        params={**params, "W_d": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
        updates={"h": f"tanh({recurrent}W_d @ h[t-{d}] + W_x @ x + b)"},
    )


@cache
def unrolled_skip(d: int, T: int, unit_connection: bool = True) -> UnrolledGraph:
    return unroll(skip_cell(d, unit_connection), T)


def compositions(k: int, d: int) -> int:
    """Compositions of k into parts 1 and d: choose q parts equal to d among k - q(d-1) parts."""
    return sum(comb(k - q * (d - 1), q) for q in range(k // d + 1))


@cache
def composition_table(d: int, size: int) -> tuple[int, ...]:
    """The same numbers by the recurrence N(k) = N(k-1) + N(k-d), N(0) = 1 (cheap for large k)."""
    table = [1]
    for k in range(1, size + 1):
        table.append(table[k - 1] + (table[k - d] if k >= d else 0))
    return tuple(table)


@pytest.mark.parametrize("d", [2, 3, 5, 7])
def test_compositions_referees_agree(d: int) -> None:
    assert [compositions(k, d) for k in range(300)] == list(composition_table(d, 299))
    if d == 2:  # Fibonacci numbers
        fib = [1, 1]
        for _ in range(30):
            fib.append(fib[-1] + fib[-2])
        assert list(composition_table(2, 29)) == fib[:30]


@pytest.mark.parametrize("d", [2, 3, 5, 7])
@pytest.mark.parametrize(("j", "i"), [(0, 1), (0, 8), (3, 20), (5, 40), (1, 59), (0, 60)])
def test_skip_path_counts_and_shortest(d: int, j: int, i: int) -> None:
    ug = unrolled_skip(d, 60)
    k = i - j
    assert count_paths(ug, ("h", j), ("h", i)) == compositions(k, d)
    assert shortest_path_length(ug, ("h", j), ("h", i)) == k // d + k % d


@pytest.mark.parametrize("d", [2, 3, 5, 7])
def test_skip_path_counts_at_T_10_000(d: int) -> None:
    T = 10_000
    ug = unrolled_skip(d, T)
    table = composition_table(d, T)
    for j, i in [(0, T), (1234, T), (0, T // 2 + 1)]:
        k = i - j
        assert count_paths(ug, ("h", j), ("h", i)) == table[k]
        assert shortest_path_length(ug, ("h", j), ("h", i)) == k // d + k % d


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("k", range(0, 9))
def test_enumeration_agrees_with_counting(d: int, k: int) -> None:
    ug = unrolled_skip(d, 10)
    paths = enumerate_paths(ug, ("h", 1), ("h", 1 + k))
    assert len(paths) == count_paths(ug, ("h", 1), ("h", 1 + k)) == compositions(k, d)
    assert len({tuple(p) for p in paths}) == len(paths)
    for path in paths:
        assert path[0] == ("h", 1) and path[-1] == ("h", 1 + k)
        steps = {b[1] - a[1] for a, b in pairwise(path)}
        assert steps <= {1, d}
    if paths:
        assert len(paths[0]) - 1 == shortest_path_length(ug, ("h", 1), ("h", 1 + k))


@pytest.mark.parametrize("d", [2, 3, 5])
@pytest.mark.parametrize("k", [0, 4, 6, 15, 30])
def test_skip_without_unit_connection(d: int, k: int) -> None:
    ug = unrolled_skip(d, 31, unit_connection=False)
    source, target = ("h", 1), ("h", 1 + k)
    if k % d:
        assert count_paths(ug, source, target) == 0
        assert enumerate_paths(ug, source, target) == []
        with pytest.raises(GraphError, match="no path"):
            shortest_path_length(ug, source, target)
    else:
        assert count_paths(ug, source, target) == 1
        assert shortest_path_length(ug, source, target) == k // d


def test_parameter_paths_are_the_bptt_sum() -> None:
    # dh^(T)/dW_h sums over the T edges leaving W_h, each followed by the chain to h^(T)
    ug = unroll(skip_cell(2, unit_connection=True), 6)
    direct = [count_paths(ug, ("h", tau), ("h", 6)) for tau in range(1, 7)]
    assert count_paths(ug, ("W_h", None), ("h", 6)) == sum(direct)


def test_works_on_a_plain_digraph_and_counts_exactly() -> None:
    graph = nx.DiGraph()
    # a ladder of diamonds: 2**40 paths, beyond float precision
    for level in range(40):
        graph.add_edges_from([(level, ("a", level)), (level, ("b", level))])
        graph.add_edges_from([(("a", level), level + 1), (("b", level), level + 1)])
    assert count_paths(graph, 0, 40) == 2**40
    assert shortest_path_length(graph, 0, 40) == 80
    assert count_paths(graph, 40, 0) == 0
    assert count_paths(graph, 5, 5) == 1
    assert enumerate_paths(graph, 5, 5) == [[5]]


def test_cycle_is_refused() -> None:
    graph = nx.DiGraph([(0, 1), (1, 2), (2, 1), (2, 3)])
    with pytest.raises(GraphError, match="cycle"):
        count_paths(graph, 0, 3)


@pytest.mark.parametrize(
    "function", [count_paths, enumerate_paths, shortest_path_length], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("missing", [("h", 99), ("q", 1), ("W_q", None), "h", ["h", 1]])
def test_unknown_nodes(function: object, missing: object) -> None:
    ug = unrolled_skip(2, 6)
    with pytest.raises(GraphError, match="is not in the graph") as info:
        function(ug, missing, ("h", 3))  # type: ignore[operator]
    assert repr(missing) in str(info.value)
    with pytest.raises(GraphError, match="is not in the graph"):
        function(ug, ("h", 0), missing)  # type: ignore[operator]


def test_not_a_graph() -> None:
    with pytest.raises(GraphError, match=r"UnrolledGraph or a networkx\.DiGraph"):
        count_paths({"h": 1}, ("h", 0), ("h", 1))  # type: ignore[arg-type]
