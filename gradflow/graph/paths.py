r"""Path algebra on an unrolled graph.

By the chain rule, a derivative between two nodes of a computation graph is a
sum over the directed paths between them of the product of the local
Jacobians along each path,

.. math::

    \frac{\partial a}{\partial b} = \sum_{p \,:\, b \leadsto a}
    \prod_{(u \to v) \in p} \frac{\partial v}{\partial u},

so the number of paths and the length of the shortest one say how many
products the gradient sums and how few factors the least-damped one has.
:func:`enumerate_paths` lists paths (small graphs only: their number grows
exponentially); :func:`count_paths` counts them by dynamic programming over
the DAG in linear time; :func:`shortest_path_length` measures the shortest.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import networkx as nx

from gradflow.errors import GraphError
from gradflow.graph.unroll import UnrolledGraph

__all__ = ["count_paths", "enumerate_paths", "shortest_path_length"]


def _graph(g: UnrolledGraph | nx.DiGraph) -> nx.DiGraph:
    if isinstance(g, UnrolledGraph):
        return g.graph
    if isinstance(g, nx.DiGraph):
        return g
    raise GraphError(f"expected an UnrolledGraph or a networkx.DiGraph, got {type(g).__name__}")


def _check_nodes(graph: nx.DiGraph, *nodes: Any) -> None:
    for node in nodes:
        try:
            present = node in graph
        except TypeError:  # an unhashable query
            present = False
        if not present:
            raise GraphError(
                f"node {node!r} is not in the graph; nodes are (name, t) tuples, "
                "(name, None) for parameters and the total loss"
            )


def enumerate_paths(g: UnrolledGraph | nx.DiGraph, source: Any, target: Any) -> list[list[Any]]:
    r"""Every directed path from ``source`` to ``target``, as lists of nodes.

    Meant for small graphs: the number of paths can grow exponentially with
    ``T`` (use :func:`count_paths` to count them).

    Parameters
    ----------
    g : UnrolledGraph or networkx.DiGraph
    source, target : tuple
        Nodes, e.g. ``("h", 0)`` and ``("h", 3)``.

    Returns
    -------
    list of list of tuple
        The paths, each from ``source`` to ``target`` inclusive, shortest
        first (ties ordered by their nodes' names and times); ``[[source]]`` when the two
        coincide, ``[]`` when ``target`` is unreachable.

    Raises
    ------
    GraphError
        If ``source`` or ``target`` is not a node of the graph.

    Examples
    --------
    >>> from gradflow.cells.cell import Cell
    >>> from gradflow.graph.unroll import unroll
    >>> cell = Cell("skip", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_d": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_d @ h[t-2] + W_x @ x + b)"})
    >>> for path in enumerate_paths(unroll(cell, 3), ("h", 0), ("h", 3)):
    ...     print([t for _, t in path])
    [0, 1, 3]
    [0, 2, 3]
    [0, 1, 2, 3]
    """
    graph = _graph(g)
    _check_nodes(graph, source, target)
    if source == target:
        return [[source]]
    paths = [list(path) for path in nx.all_simple_paths(graph, source, target)]
    return sorted(paths, key=lambda path: (len(path), [_order_key(node) for node in path]))


def _order_key(node: Any) -> tuple[str, bool, Any]:
    """Sort key of a node: by name, then time (a parameter's None last)."""
    if isinstance(node, tuple) and len(node) == 2:
        name, time = node
        return (str(name), time is None, 0 if time is None else time)
    return (str(node), True, 0)


def count_paths(g: UnrolledGraph | nx.DiGraph, source: Any, target: Any) -> int:
    r"""The number of directed paths from ``source`` to ``target``, exactly.

    Dynamic programming over the nodes that lie between the two (descendants
    of ``source`` that are ancestors of ``target``), in topological order:
    :math:`N(v) = \sum_{u \to v} N(u)`, :math:`N(\text{source}) = 1`. The
    cost is linear in the size of that subgraph; the counts are exact
    Python ints, however many digits they have.

    Parameters
    ----------
    g : UnrolledGraph or networkx.DiGraph
        An acyclic graph (an unrolled graph always is).
    source, target : tuple
        Nodes of the graph.

    Returns
    -------
    int
        The number of paths; 1 when ``source == target``, 0 when ``target``
        is unreachable.

    Raises
    ------
    GraphError
        If ``source`` or ``target`` is not a node of the graph, or if the
        nodes between them form a cycle.

    Notes
    -----
    With a one-step recurrence and a skip connection of delay :math:`d`,
    the paths from :math:`h^{(j)}` to :math:`h^{(i)}` are the compositions of
    :math:`k = i - j` into parts 1 and :math:`d`:
    :math:`N(k) = \sum_{q=0}^{\lfloor k/d \rfloor} \binom{k - q(d-1)}{q}`.

    References
    ----------
    .. [1] I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, MIT
       Press, 2016, §10.9.1 (adding skip connections through time).

    Examples
    --------
    >>> from gradflow.cells.cell import Cell
    >>> from gradflow.graph.unroll import unroll
    >>> cell = Cell("skip", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_d": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_d @ h[t-2] + W_x @ x + b)"})
    >>> ug = unroll(cell, 30)
    >>> count_paths(ug, ("h", 0), ("h", 30))  # a Fibonacci number for d = 2
    1346269
    """
    graph = _graph(g)
    _check_nodes(graph, source, target)
    if source == target:
        return 1
    ahead = nx.descendants(graph, source)
    if target not in ahead:
        return 0
    between = (ahead & nx.ancestors(graph, target)) | {source, target}
    pending = {node: sum(1 for u in graph.pred[node] if u in between) for node in between}
    counts = dict.fromkeys(between, 0)
    counts[source] = 1
    ready = deque([source])
    done = 0
    while ready:
        node = ready.popleft()
        done += 1
        value = counts[node]
        for succ in graph.succ[node]:
            if succ in between:
                counts[succ] += value
                pending[succ] -= 1
                if pending[succ] == 0:
                    ready.append(succ)
    if done != len(between):
        raise GraphError(
            f"the nodes between {source!r} and {target!r} form a cycle; paths are counted "
            "on acyclic graphs (an unrolled graph always is)"
        )
    return counts[target]


def shortest_path_length(g: UnrolledGraph | nx.DiGraph, source: Any, target: Any) -> int:
    r"""The number of edges of a shortest directed path from ``source`` to ``target``.

    Parameters
    ----------
    g : UnrolledGraph or networkx.DiGraph
    source, target : tuple
        Nodes of the graph.

    Returns
    -------
    int
        The length in edges (0 when ``source == target``).

    Raises
    ------
    GraphError
        If either node is not in the graph, or ``target`` cannot be reached
        from ``source``.

    Notes
    -----
    With a skip connection of delay :math:`d`, the shortest path from
    :math:`h^{(j)}` to :math:`h^{(i)}` has :math:`\lfloor k/d \rfloor +
    (k \bmod d)` edges for :math:`k = i - j`: along it, the product of
    Jacobians that shrinks or grows exponentially has about :math:`k/d`
    factors instead of :math:`k` [1]_ [2]_.

    References
    ----------
    .. [1] T. Lin, B. G. Horne, P. Tino, C. L. Giles, "Learning long-term
       dependencies in NARX recurrent neural networks", IEEE Transactions on
       Neural Networks 7(6), 1996.
    .. [2] I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, MIT
       Press, 2016, §10.9.1.

    Examples
    --------
    >>> from gradflow.cells.cell import Cell
    >>> from gradflow.graph.unroll import unroll
    >>> cell = Cell("skip", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_d": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_d @ h[t-3] + W_x @ x + b)"})
    >>> shortest_path_length(unroll(cell, 20), ("h", 0), ("h", 20))  # 20 // 3 + 20 % 3
    8
    """
    graph = _graph(g)
    _check_nodes(graph, source, target)
    try:
        return int(nx.shortest_path_length(graph, source, target))
    except nx.NetworkXNoPath:
        raise GraphError(f"there is no path from {source!r} to {target!r}") from None
