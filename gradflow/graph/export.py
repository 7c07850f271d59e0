r"""Export an unrolled graph: DOT, GraphML, node-link JSON, and a drawing.

Exports keep the node keys and the scalar node attributes (``kind``,
``shape`` -- written as text such as ``"(n, m)"`` --, ``latex``, ``name``,
``t``, ``layer``, ``direction``) and drop the edges' ``jacobian``, which is
derived from the cell. GraphML and node-link JSON read back into a
``networkx.DiGraph`` with the same ``(name, t)`` keys and attributes.
Files are written atomically (a temporary file in the same folder, then
``os.replace``) and are never overwritten unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import sympy as sp

from gradflow._io import atomic_write
from gradflow.cells.cell import size_symbol
from gradflow.errors import GraphError
from gradflow.graph.drawing import draw
from gradflow.graph.unroll import UnrolledGraph

__all__ = [
    "draw",
    "from_node_link",
    "read_graphml",
    "read_node_link",
    "to_dot",
    "to_node_link",
    "write_dot",
    "write_graphml",
    "write_node_link",
    "write_png",
]

#: The node attributes an export keeps; those that are None are left out.
_ATTRIBUTES = ("kind", "shape", "latex", "name", "t", "layer", "direction")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _node_id(node: tuple[str, int | None]) -> str:
    name, time = node
    return name if time is None else f"{name}[{time}]"


def _shape_text(shape: tuple[Any, ...]) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(size) for size in shape) + ")"


def _parse_size(text: str) -> int | sp.Expr:
    names = {name: size_symbol(name) for name in _IDENTIFIER.findall(text)}
    try:
        size = sp.sympify(text, locals=names)
    except (sp.SympifyError, SyntaxError, TypeError) as err:
        raise GraphError(f"cannot read the size {text!r} of a shape") from err
    return int(size) if size.is_Integer else size


def _parse_shape(text: str) -> tuple[Any, ...]:
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise GraphError(f"cannot read the shape {text!r}; expected text such as '(n, m)'")
    parts = [part.strip() for part in inner[1:-1].split(",")]
    return tuple(_parse_size(part) for part in parts if part)


def _flat_graph(ug: UnrolledGraph) -> nx.DiGraph:
    """A copy with string ids and export-safe attributes (None left out, no jacobian)."""
    flat = nx.DiGraph()
    flat.graph.update({k: v for k, v in ug.graph.graph.items() if v is not None})
    for node, data in ug.graph.nodes(data=True):
        attributes = {key: data[key] for key in _ATTRIBUTES if data.get(key) is not None}
        attributes["shape"] = _shape_text(data["shape"])
        flat.add_node(_node_id(node), **attributes)
    flat.add_edges_from((_node_id(u), _node_id(v)) for u, v in ug.graph.edges)
    return flat


def _restore(flat: nx.DiGraph, origin: str) -> nx.DiGraph:
    """Tuple keys and full attributes from a graph read back from an export."""
    graph = nx.DiGraph()
    graph.graph.update(flat.graph)
    keys: dict[Any, tuple[str, int | None]] = {}
    for node_id, data in flat.nodes(data=True):
        if "name" not in data or "kind" not in data or "shape" not in data:
            raise GraphError(
                f"{origin}: node {node_id!r} lacks the name, kind or shape attribute; "
                "this is not a graph exported by gradflow"
            )
        attributes = {key: data.get(key) for key in _ATTRIBUTES}
        for key in ("t", "layer"):
            if attributes[key] is not None:
                attributes[key] = int(attributes[key])
        attributes["shape"] = _parse_shape(str(data["shape"]))
        keys[node_id] = (str(data["name"]), attributes["t"])
        graph.add_node(keys[node_id], **attributes)
    graph.add_edges_from((keys[u], keys[v]) for u, v in flat.edges)
    return graph


def _quote(text: Any) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(ug: UnrolledGraph) -> str:
    r"""The graph as Graphviz DOT text, time running left to right.

    Nodes of the same step share a rank; each node carries its attributes
    (its shape as ``dims``, since ``shape`` is Graphviz's own) and its LaTeX
    label as ``texlbl`` (for dot2tex).

    Parameters
    ----------
    ug : UnrolledGraph

    Returns
    -------
    str
        DOT source of a ``digraph``.

    Examples
    --------
    >>> from gradflow.cells.cell import Cell
    >>> from gradflow.graph.unroll import unroll
    >>> cell = Cell("elman", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_x @ x + b)"})
    >>> text = to_dot(unroll(cell, 2))
    >>> text.splitlines()[0]
    'digraph "elman" {'
    >>> '"h[0]" -> "h[1]";' in text
    True
    """
    flat = _flat_graph(ug)
    lines = [f"digraph {_quote(ug.cell.name)} {{", "  rankdir=LR;"]
    styles = {"param": "box", "input": "plaintext", "loss": "diamond"}
    for node_id, data in flat.nodes(data=True):
        fields = {
            "label": node_id if "t" not in data else f"{data['name']}({data['t']})",
            "texlbl": f"${data['latex']}$",
            "shape": styles.get(data["kind"], "ellipse"),
            "dims": data["shape"],
            "signal": data["name"],  # not "name": pydot reserves it
            **{key: data[key] for key in ("kind", "t", "layer", "direction") if key in data},
        }
        body = ", ".join(f"{key}={_quote(value)}" for key, value in fields.items())
        lines.append(f"  {_quote(node_id)} [{body}];")
    by_time: dict[int, list[str]] = {}
    for node_id, data in flat.nodes(data=True):
        if "t" in data:
            by_time.setdefault(data["t"], []).append(_quote(node_id))
    for time in sorted(by_time):
        lines.append("  { rank=same; " + " ".join(by_time[time]) + "; }")
    for u, v in flat.edges:
        lines.append(f"  {_quote(u)} -> {_quote(v)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dot(ug: UnrolledGraph, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write :func:`to_dot` text to ``path`` atomically.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GraphError
        If ``path`` exists and ``overwrite`` is False, or its folder does not exist.
    """
    text = to_dot(ug)
    return atomic_write(
        path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"), overwrite, GraphError
    )


def write_graphml(ug: UnrolledGraph, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the graph as GraphML, atomically.

    Node ids are ``name[t]`` (``name`` for parameters); the node attributes
    are kept, those that are None left out; shapes are written as text.

    Parameters
    ----------
    ug : UnrolledGraph
    path : str or os.PathLike
    overwrite : bool, default False

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GraphError
        If ``path`` exists and ``overwrite`` is False, or its folder does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gradflow.cells.cell import Cell
    >>> from gradflow.graph.unroll import unroll
    >>> cell = Cell("elman", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_x @ x + b)"})
    >>> ug = unroll(cell, 2)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_graphml(ug, pathlib.Path(folder) / "elman.graphml")
    ...     graph = read_graphml(path)
    >>> sorted(graph.nodes, key=str) == sorted(ug.graph.nodes, key=str)
    True
    >>> graph.nodes["W_x", None]["shape"]
    (n, m)
    """
    flat = _flat_graph(ug)
    return atomic_write(path, lambda temporary: nx.write_graphml(flat, temporary), overwrite, GraphError)


def read_graphml(path: str | os.PathLike[str]) -> nx.DiGraph:
    """Read a graph written by :func:`write_graphml` back, with ``(name, t)`` keys.

    Returns
    -------
    networkx.DiGraph
        Nodes with the attributes ``kind``, ``shape`` (a tuple of ints and
        size symbols), ``latex``, ``name``, ``t``, ``layer``, ``direction``;
        edges without attributes.

    Raises
    ------
    GraphError
        If the file is not a GraphML graph exported by gradflow.
    """
    try:
        flat = nx.read_graphml(os.fspath(path), node_type=str)
    except (nx.NetworkXError, ValueError, KeyError) as err:  # malformed GraphML
        raise GraphError(f"{os.fspath(path)!r} is not a readable GraphML graph: {err}") from err
    if not flat.is_directed():
        raise GraphError(f"{os.fspath(path)!r} holds an undirected graph; gradflow writes directed ones")
    return _restore(flat, repr(os.fspath(path)))


def to_node_link(ug: UnrolledGraph) -> dict[str, Any]:
    """The graph as JSON-ready node-link data (networkx's format).

    Returns
    -------
    dict
        ``{"directed": True, "multigraph": False, "graph": {...}, "nodes":
        [{"id": "h[3]", "name": "h", "t": 3, ...}], "edges": [{"source":
        ..., "target": ...}]}``; attributes that are None are left out.

    Examples
    --------
    >>> import json
    >>> from gradflow.cells.cell import Cell
    >>> from gradflow.graph.unroll import unroll
    >>> cell = Cell("elman", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_x @ x + b)"})
    >>> ug = unroll(cell, 2)
    >>> graph = from_node_link(json.loads(json.dumps(to_node_link(ug))))
    >>> set(graph.edges) == set(ug.graph.edges)
    True
    """
    data: dict[str, Any] = nx.node_link_data(_flat_graph(ug), edges="edges")
    return data


def from_node_link(data: Mapping[str, Any]) -> nx.DiGraph:
    """Rebuild the graph from :func:`to_node_link` data, with ``(name, t)`` keys.

    Raises
    ------
    GraphError
        If ``data`` is not node-link data exported by gradflow.
    """
    try:
        flat = nx.node_link_graph(dict(data), directed=True, multigraph=False, edges="edges")
    except (nx.NetworkXError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise GraphError(f"not node-link graph data: {err!r}") from err
    if flat.is_multigraph() or not flat.is_directed():
        raise GraphError("node-link data of an undirected graph or a multigraph; gradflow writes DiGraphs")
    return _restore(flat, "node-link data")


def write_node_link(ug: UnrolledGraph, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write :func:`to_node_link` data as JSON to ``path``, atomically.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GraphError
        If ``path`` exists and ``overwrite`` is False, or its folder does not exist.
    """
    text = json.dumps(to_node_link(ug), indent=1)
    return atomic_write(
        path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"), overwrite, GraphError
    )


def read_node_link(path: str | os.PathLike[str]) -> nx.DiGraph:
    """Read a JSON file written by :func:`write_node_link`; see :func:`from_node_link`.

    Raises
    ------
    GraphError
        If the file is not JSON node-link data exported by gradflow.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise GraphError(f"{os.fspath(path)!r} is not JSON: {err}") from err
    return from_node_link(data)


def write_png(
    ug: UnrolledGraph, path: str | os.PathLike[str], *, overwrite: bool = False, dpi: int = 110
) -> Path:
    """Draw the graph (:func:`draw`) and save it as PNG, atomically.

    Raises
    ------
    GraphError
        If ``path`` exists and ``overwrite`` is False, or its folder does not exist.
    """
    import matplotlib.pyplot as plt

    ax = draw(ug)
    try:
        return atomic_write(
            path,
            lambda temporary: ax.figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight"),
            overwrite,
            GraphError,
        )
    finally:
        plt.close(ax.figure)
