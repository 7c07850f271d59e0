r"""The graph layer: unroll a cell over time into a computation graph.

:func:`unroll` turns a :class:`~gradflow.cells.cell.Cell` into an
:class:`UnrolledGraph` (a ``networkx.DiGraph`` of ``(name, t)`` nodes whose
edges carry unevaluated :class:`LocalJacobian` objects); the path algebra
counts and measures the paths a gradient flows along; the exports write DOT,
GraphML, node-link JSON and a matplotlib drawing.
"""

from gradflow.graph.export import (
    draw,
    from_node_link,
    read_graphml,
    read_node_link,
    to_dot,
    to_node_link,
    write_dot,
    write_graphml,
    write_node_link,
    write_png,
)
from gradflow.graph.jacobian import LocalJacobian, Node
from gradflow.graph.labels import direction_of, latex_label, layer_of
from gradflow.graph.paths import count_paths, enumerate_paths, shortest_path_length
from gradflow.graph.unroll import KINDS, UnrolledGraph, unroll

__all__ = [
    "KINDS",
    "LocalJacobian",
    "Node",
    "UnrolledGraph",
    "count_paths",
    "direction_of",
    "draw",
    "enumerate_paths",
    "from_node_link",
    "latex_label",
    "layer_of",
    "read_graphml",
    "read_node_link",
    "shortest_path_length",
    "to_dot",
    "to_node_link",
    "unroll",
    "write_dot",
    "write_graphml",
    "write_node_link",
    "write_png",
]
