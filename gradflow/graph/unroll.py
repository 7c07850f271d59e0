r"""Unroll a cell over ``T`` steps into a computation graph.

The unrolled graph is a ``networkx.DiGraph`` whose nodes are ``(name, t)``
tuples: every state, input, intermediate and output at every step, the
initial history the states start from, and one node ``(name, None)`` per
parameter, shared by all steps -- so that :math:`\partial L/\partial W` is a
sum over the time edges leaving ``W``, the BPTT sum as a sum over graph
paths. Each edge is one direct dependency and carries its
:class:`~gradflow.graph.jacobian.LocalJacobian`, unevaluated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx
import sympy as sp

from gradflow._checks import is_int
from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal, parameters_of, t
from gradflow.errors import GraphError
from gradflow.graph.jacobian import LocalJacobian, Node
from gradflow.graph.labels import direction_of, latex_label, layer_of

__all__ = ["KINDS", "UnrolledGraph", "unroll"]

#: The kinds of node of an unrolled graph.
KINDS = ("state", "input", "param", "intermediate", "output", "loss")

#: Names of the loss nodes added by ``unroll(..., loss=True)``.
_LOSS_STEP, _LOSS_TOTAL = "E", "L"


@dataclass(frozen=True, eq=False)
class UnrolledGraph:
    r"""A cell unrolled over ``T`` steps.

    Parameters
    ----------
    cell : Cell
        The cell that was unrolled.
    T : int
        The number of steps.
    graph : networkx.DiGraph
        Nodes ``(name, t)`` with attributes ``kind``, ``shape``, ``latex``,
        ``name``, ``t``, ``layer`` and ``direction``; each edge has a
        ``jacobian`` attribute, a :class:`~gradflow.graph.jacobian.LocalJacobian`.
    loss : bool
        Whether the loss nodes :math:`E^{(t)}` and :math:`L` are present.

    Examples
    --------
    >>> from gradflow.cells.cell import Cell
    >>> cell = Cell("elman", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_x @ x + b)"})
    >>> ug = unroll(cell, 3)
    >>> ug.state("h", 0), ug.parameter("W_h")
    (('h', 0), ('W_h', None))
    >>> len(ug.nodes("state")), ug.graph.number_of_edges()
    (4, 15)
    """

    cell: Cell
    T: int
    graph: nx.DiGraph
    loss: bool = False

    def nodes(self, kind: str | None = None) -> list[Node]:
        """The node keys, all of them or those of one ``kind``, in insertion order.

        Raises
        ------
        GraphError
            If ``kind`` is not one of :data:`KINDS`.
        """
        if kind is None:
            return list(self.graph.nodes)
        if kind not in KINDS:
            raise GraphError(f"unknown node kind {kind!r}; the kinds are {', '.join(KINDS)}")
        return [node for node, data in self.graph.nodes(data=True) if data["kind"] == kind]

    def _lookup(self, node: Node, kind: str) -> Node:
        data = self.graph.nodes.get(node)
        if data is not None and data["kind"] == kind:
            return node
        times = sorted(time for name, time in self.graph.nodes if name == node[0] and time is not None)
        span = f" it exists for t = {times[0]}..{times[-1]}" if times else ""
        raise GraphError(
            f"the graph of cell {self.cell.name!r} (T={self.T}) has no {kind} node {node!r};"
            + (span or f" its {kind}s are " + ", ".join(sorted({n for n, _ in self.nodes(kind)})))
        )

    def state(self, name: str, t: int) -> Node:
        """The node of state ``name`` at time ``t`` (history included).

        Raises
        ------
        GraphError
            If the cell has no such state, or the graph no such time.
        """
        return self._lookup((name, t), "state")

    def parameter(self, name: str) -> Node:
        """The (time-shared) node of parameter ``name``.

        Raises
        ------
        GraphError
            If the cell has no such parameter.
        """
        return self._lookup((name, None), "param")

    def __repr__(self) -> str:
        return (
            f"<UnrolledGraph of cell {self.cell.name!r}, T={self.T}: "
            f"{self.graph.number_of_nodes()} nodes, {self.graph.number_of_edges()} edges>"
        )


def _check_T(T: Any) -> int:
    if not is_int(T):
        raise GraphError(f"T must be an int >= 1 (the number of steps), got {T!r}")
    if T < 1:
        raise GraphError(f"T must be an int >= 1 (the number of steps), got T={T}")
    return int(T)


def _history(cell: Cell, T: int) -> dict[str, range]:
    """The times of each state's initial history nodes; checks delays against T."""
    history: dict[str, range] = {}
    for state in cell.states:
        delays = cell.delays(state)
        for delay in delays:
            if delay > 1 and delay >= T:
                raise GraphError(
                    f"delay d={delay} of state {state!r} in cell {cell.name!r} is not shorter "
                    f"than T={T}: every such read would only reach the initial history; "
                    f"unroll with T > {delay}"
                )
        depth = max(delays, default=1)
        if state in cell.backward:
            history[state] = range(T + 1, T + depth + 1)
        else:
            history[state] = range(1 - depth, 1)
    return history


def _shape(size: Any) -> tuple[Any, ...]:
    """A shape tuple with Python ints where the sizes are concrete."""
    sizes = size if isinstance(size, tuple) else (size,)
    return tuple(int(s) if isinstance(s, sp.Integer) else s for s in sizes)


def _add_node(graph: nx.DiGraph, name: str, t: int | None, kind: str, shape: tuple[Any, ...]) -> None:
    graph.add_node(
        (name, t),
        kind=kind,
        shape=shape,
        latex=latex_label(name, t),
        name=name,
        t=t,
        layer=layer_of(name),
        direction=direction_of(name),
    )


def _dependencies(cell: Cell) -> Iterator[tuple[str, str, sp.Basic, list[tuple[str, int | None, sp.Basic]]]]:
    """For each node of one step: (kind, name, expression, [(source, lag, variable)])."""
    for kind, name in cell.order:
        expression = cell.expression(kind, name)
        sources: dict[tuple[str, int | None], sp.Basic] = {}
        for signal in sorted(expression.atoms(Signal), key=sp.default_sort_key):
            lag = signal.lag
            if not isinstance(lag, int):
                raise GraphError(
                    f"cell {cell.name!r}: {kind} {name!r} reads {signal} at a non-integer "
                    "time offset; an unrolled graph needs t + k with an integer k"
                )
            sources.setdefault((signal.name, lag), signal)
        for parameter in sorted(parameters_of(expression), key=sp.default_sort_key):
            sources.setdefault((parameter.name, None), parameter)
        yield kind, name, expression, [(src, lag, var) for (src, lag), var in sources.items()]


def _check_loss_names(cell: Cell) -> None:
    names = {*cell.states, *cell.inputs, *cell.params}
    names |= {name for _, name in cell.order}
    for clash in sorted(names & {_LOSS_STEP, _LOSS_TOTAL}):
        raise GraphError(
            f"cell {cell.name!r} has a signal or parameter named {clash!r}, which clashes with "
            f"the loss nodes E^(t) and L of unroll(..., loss=True); rename it or unroll "
            "without the loss"
        )


def unroll(cell: Cell, T: int, *, loss: bool = False) -> UnrolledGraph:
    r"""Unroll ``cell`` over ``T`` steps into its computation graph.

    Parameters
    ----------
    cell : Cell
        The recurrent cell.
    T : int
        Number of steps, at least 1.
    loss : bool, default False
        Add the per-step losses :math:`E^{(t)}`, each reading what the cell
        emits at step ``t`` (:attr:`~gradflow.cells.Cell.emits`: :math:`h`
        for Elman, LSTM, GRU; the top layer of a stack), and the total
        :math:`L = \sum_t E^{(t)}` (Datawhale notes, seed 004).

    Returns
    -------
    UnrolledGraph
        Inputs, intermediates and outputs exist at ``t = 1..T``. A forward
        state exists at ``t = 1..T`` and, as initial history, at
        ``t = 1-D..0`` where ``D`` is its longest delay (1 for a plain
        recurrence, so :math:`h^{(0)}` is always there); a backward state's
        history sits at ``t = T+1..T+D``. Parameters are single nodes
        ``(name, None)``. Each edge carries its unevaluated local Jacobian.

    Raises
    ------
    GraphError
        If ``T`` is not an int >= 1 (bools are refused); if a state is read
        with a delay ``d > 1`` that is not shorter than ``T`` (such a skip
        connection would only ever reach the initial history); if
        ``loss=True`` and the cell has a name ``E`` or ``L``.

    Notes
    -----
    With a skip connection of delay :math:`d` next to the one-step
    recurrence, the paths from :math:`h^{(j)}` to :math:`h^{(i)}` are the
    compositions of :math:`k = i - j` into parts 1 and :math:`d`, the
    shortest having :math:`\lfloor k/d \rfloor + (k \bmod d)` edges: the
    gradient's decay exponent scales with :math:`k/d` instead of :math:`k`
    (see :mod:`gradflow.graph.paths`).

    References
    ----------
    .. [1] T. Lin, B. G. Horne, P. Tino, C. L. Giles, "Learning long-term
       dependencies in NARX recurrent neural networks", IEEE Transactions on
       Neural Networks 7(6), 1996.
    .. [2] I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, MIT
       Press, 2016, §10.2 (unfolding computational graphs) and §10.9.1.

    Examples
    --------
    >>> from gradflow.cells.cell import Cell
    >>> cell = Cell("skip", states={"h": "n"}, inputs={"x": "m"},
    ...             params={"W_h": ("n", "n"), "W_d": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...             updates={"h": "tanh(W_h @ h + W_d @ h[t-3] + W_x @ x + b)"})
    >>> ug = unroll(cell, 5, loss=True)
    >>> sorted(t for name, t in ug.nodes("state"))
    [-2, -1, 0, 1, 2, 3, 4, 5]
    >>> sorted(ug.graph.predecessors(("h", 4)), key=str)
    [('W_d', None), ('W_h', None), ('W_x', None), ('b', None), ('h', 1), ('h', 3), ('x', 4)]
    >>> ug.graph.nodes["h", 4]["latex"], ug.graph.edges[("h", 3), ("h", 4)]["jacobian"]
    ('h^{(4)}', LocalJacobian(dh[4]/dh[3]))
    """
    T = _check_T(T)
    history = _history(cell, T)
    if loss:
        _check_loss_names(cell)
    graph = nx.DiGraph(cell=cell.name, T=T, loss=bool(loss))
    for name, shape in cell.params.items():
        _add_node(graph, name, None, "param", _shape(shape))
    for state, times in history.items():
        if state not in cell.backward:
            for time in times:
                _add_node(graph, state, time, "state", _shape(cell.states[state]))
    steps = list(_dependencies(cell))
    sizes = {name: _shape(cell.signal(name).size) for _, name, _, _ in steps}
    sizes.update({name: _shape(size) for name, size in cell.inputs.items()})
    for tau in range(1, T + 1):
        for name in cell.inputs:
            _add_node(graph, name, tau, "input", sizes[name])
        for kind, name, _, _ in steps:
            _add_node(graph, name, tau, kind, sizes[name])
    for state, times in history.items():
        if state in cell.backward:
            for time in times:
                _add_node(graph, state, time, "state", _shape(cell.states[state]))
    for tau in range(1, T + 1):
        for _, name, expression, sources in steps:
            target = (name, tau)
            for source_name, lag, variable in sources:
                source = (source_name, None if lag is None else tau + lag)
                if source not in graph:  # pragma: no cover - the cell layer guarantees it
                    raise GraphError(f"cell {cell.name!r}: {target} reads {source}, which is not unrolled")
                graph.add_edge(
                    source, target, jacobian=LocalJacobian(target, source, expression, variable, tau)
                )
    if loss:
        _add_loss(graph, cell, T)
    return UnrolledGraph(cell=cell, T=T, graph=graph, loss=bool(loss))


def _add_loss(graph: nx.DiGraph, cell: Cell, T: int) -> None:
    """Add E^(t) reading what the cell emits at t (``cell.emits``), and L = sum_t E^(t)."""
    read = [cell.signal(cell.emits)]
    step_loss = sp.IndexedBase(_LOSS_STEP)[t]
    for tau in range(1, T + 1):
        _add_node(graph, _LOSS_STEP, tau, "loss", ())
    _add_node(graph, _LOSS_TOTAL, None, "loss", ())
    total = (_LOSS_TOTAL, None)
    for tau in range(1, T + 1):
        target = (_LOSS_STEP, tau)
        for signal in read:
            source = (signal.name, tau)
            graph.add_edge(source, target, jacobian=LocalJacobian(target, source, None, signal, tau))
        graph.add_edge(target, total, jacobian=LocalJacobian(total, target, None, step_loss, tau))
