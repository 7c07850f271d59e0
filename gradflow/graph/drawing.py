"""A matplotlib drawing of an unrolled graph, time on the x axis.

matplotlib is imported inside :func:`draw` only, so that the graph layer
works without it.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from gradflow.graph.labels import latex_label
from gradflow.graph.unroll import UnrolledGraph

__all__ = ["draw"]

_COLOURS = {
    "state": "#4c72b0",
    "input": "#dddddd",
    "param": "#e5ae38",
    "intermediate": "#8fbcd9",
    "output": "#55a868",
    "loss": "#c44e52",
}
_MARKERS = {"param": "s", "loss": "D"}


def _rows(ug: UnrolledGraph, params: bool = True) -> list[str]:
    """Row names bottom-up: parameters, inputs, the step's nodes in evaluation order, loss."""
    rows = list(ug.cell.params) if params else []
    rows += list(ug.cell.inputs)
    rows += [name for _, name in ug.cell.order]
    if ug.loss:
        rows += ["E", "L"]
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row, None)
    return list(seen)


def _positions(ug: UnrolledGraph, rows: list[str], params: bool) -> dict[Any, tuple[float, float]]:
    height = {name: float(i) for i, name in enumerate(rows)}
    times = [t for _, t in ug.graph.nodes if t is not None]
    first, last = min(times), max(times)
    positions: dict[Any, tuple[float, float]] = {}
    for node, data in ug.graph.nodes(data=True):
        name, t = node
        if t is not None:
            positions[node] = (float(t), height[name])
        elif data["kind"] == "param":
            if params:
                positions[node] = (first - 1.5, height[name])
        else:  # the total loss, right of the last step
            positions[node] = (last + 1.5, height[name])
    return positions


def draw(
    ug: UnrolledGraph,
    ax: Any = None,
    *,
    params: bool = True,
    latex: bool = True,
    node_size: float = 500.0,
    font_size: float = 8.0,
) -> Any:
    r"""Draw the unrolled graph with matplotlib: time on the x axis, one row per name.

    Parameters are drawn as squares in a column left of the first step,
    their edges thin and grey; edges that skip steps (delays) are curved.

    Parameters
    ----------
    ug : UnrolledGraph
        The graph to draw.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made with ``matplotlib.pyplot`` if
        None.
    params : bool, default True
        Draw the parameter nodes and their edges.
    latex : bool, default True
        Label nodes with their LaTeX labels (rendered by mathtext); plain
        ``name[t]`` text otherwise.
    node_size, font_size : float
        Marker area and label size.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    gradflow.errors.BackendUnavailableError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from matplotlib.figure import Figure
    >>> from gradflow.cells.cell import Cell
    >>> from gradflow.graph.unroll import unroll
    >>> cell = Cell("elman", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_x @ x + b)"})
    >>> ax = draw(unroll(cell, 3), Figure().add_subplot())
    >>> ax.get_xlabel()
    '$t$'
    """
    try:
        import matplotlib  # noqa: F401  (checks that it is there)
    except ImportError as err:  # pragma: no cover - matplotlib is a test dependency
        from gradflow.errors import BackendUnavailableError

        raise BackendUnavailableError("draw needs matplotlib: pip install matplotlib") from err
    if ax is None:
        import matplotlib.pyplot as plt

        width = max(4.0, 1.0 + 0.9 * (ug.T + 3))
        _, ax = plt.subplots(figsize=(width, 1.0 + 0.7 * len(_rows(ug, params))))
    graph = ug.graph
    rows = _rows(ug, params)
    positions = _positions(ug, rows, params)
    shown = [node for node in graph.nodes if node in positions]
    for kind, colour in _COLOURS.items():
        nodes = [node for node in shown if graph.nodes[node]["kind"] == kind]
        if nodes:
            nx.draw_networkx_nodes(
                graph,
                positions,
                nodelist=nodes,
                node_color=colour,
                node_shape=_MARKERS.get(kind, "o"),
                node_size=node_size,
                edgecolors="#333333",
                linewidths=0.6,
                ax=ax,
            )
    parameter_edges, step_edges, skip_edges = [], [], []
    for u, v in graph.edges:
        if u not in positions or v not in positions:
            continue
        if graph.nodes[u]["kind"] == "param":
            parameter_edges.append((u, v))
        elif u[1] is not None and v[1] is not None and abs(v[1] - u[1]) > 1:
            skip_edges.append((u, v))
        else:  # within a step, to the next step, or E(t) into the total loss L
            step_edges.append((u, v))
    common = {"ax": ax, "arrows": True, "arrowsize": 8, "node_size": node_size}
    if params and parameter_edges:
        nx.draw_networkx_edges(
            graph, positions, edgelist=parameter_edges, edge_color="#bbbbbb", width=0.4, alpha=0.6, **common
        )
    if step_edges:
        nx.draw_networkx_edges(graph, positions, edgelist=step_edges, width=0.9, **common)
    if skip_edges:
        nx.draw_networkx_edges(
            graph,
            positions,
            edgelist=skip_edges,
            width=0.9,
            edge_color="#c44e52",
            connectionstyle="arc3,rad=0.25",
            **common,
        )
    if latex:
        labels = {node: f"${graph.nodes[node]['latex']}$" for node in shown}
    else:
        labels = {node: node[0] if node[1] is None else f"{node[0]}[{node[1]}]" for node in shown}
    nx.draw_networkx_labels(graph, positions, labels=labels, font_size=font_size, ax=ax)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"${latex_label(name)}$" if latex else name for name in rows])
    times = sorted({t for _, t in shown if t is not None})
    ax.set_xticks(times)
    ax.set_xlabel("$t$")
    ax.set_title(f"{ug.cell.name} unrolled over T = {ug.T}")
    ax.tick_params(left=True, bottom=True, labelleft=True, labelbottom=True)
    ax.set_frame_on(False)
    return ax
