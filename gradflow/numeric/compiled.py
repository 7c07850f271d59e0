r"""``compile(cell)``: a cell's equations and step Jacobians as batched array kernels.

Every kernel is printed from the cell's own sympy expressions
(:mod:`gradflow.numeric.lower`): the forward kernel of each node from
:meth:`Cell.expression`, its vector--Jacobian products from
:func:`gradflow.symbolic.vjp.pullback`, the step Jacobians from
:func:`gradflow.symbolic.jacobian.step_jacobian`. Nothing is restated by
hand. Kernels take the namespace ``xp`` as an argument, so one compiled
cell serves NumPy, CuPy and ``array_api_strict`` alike.

The evaluation *schedule* comes from the cell too: nodes that depend on each
other through time form sweeps, forward (reading ``t - d``) or backward
(reading ``t + d``), run one after the other -- a bidirectional layer's two
directions, then the layer stacked on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import networkx as nx
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal
from gradflow.errors import CellDefinitionError, NotDifferentiableError, ShapeError
from gradflow.numeric._fusion import Fused, fusable
from gradflow.numeric._pullbacks import VJP, ParamTerm, build_vjp, lowering_error
from gradflow.numeric.backend import dtype_of, namespace
from gradflow.numeric.lower import Emitter
from gradflow.symbolic.jacobian import step_jacobian

__all__ = ["CompiledCell", "ParamTerm", "Sweep", "compile", "infer_sizes", "schedule"]

Node = tuple[str, str]


@dataclass(frozen=True)
class Sweep:
    """Nodes evaluated together over time, in one direction.

    Attributes
    ----------
    direction : int
        ``+1`` for ``t = 1..T``, ``-1`` for ``t = T..1``.
    nodes : tuple of (kind, name)
        In evaluation order within a step.
    """

    direction: int
    nodes: tuple[Node, ...]


def _reads(cell: Cell, node: Node) -> set[tuple[str, int]]:
    expr = cell.expression(*node)
    return {(s.name, int(s.lag)) for s in expr.atoms(Signal) if s.role != "input"}


def schedule(cell: Cell) -> tuple[Sweep, ...]:
    """The sweeps that simulate ``cell``: strongly connected parts through time, merged by direction.

    Raises
    ------
    CellDefinitionError
        When nodes depend on each other both forwards and backwards in time.

    Examples
    --------
    >>> import gradflow as gf
    >>> [s.direction for s in schedule(gf.cells.bidirectional(gf.cells.elman()))]
    [1, -1]
    """
    order = list(cell.order)
    position = {name: k for k, (_, name) in enumerate(order)}
    graph = nx.DiGraph()
    graph.add_nodes_from(name for _, name in order)
    lagged: dict[str, set[tuple[str, int]]] = {}
    for node in order:
        reads = _reads(cell, node)
        lagged[node[1]] = {(s, lag) for s, lag in reads if lag != 0}
        for source, _ in reads:
            graph.add_edge(source, node[1])
    components = list(nx.strongly_connected_components(graph))
    index = {name: k for k, part in enumerate(components) for name in part}
    condensed = nx.condensation(graph, components)
    sequence = nx.lexicographical_topological_sort(
        condensed, key=lambda k: min(position[name] for name in components[k])
    )
    sweeps: list[tuple[int, list[str]]] = []
    for k in sequence:
        part = components[k]
        signs = {1 if lag < 0 else -1 for name in part for s, lag in lagged[name] if index[s] == k}
        if len(signs) > 1:
            names = ", ".join(sorted(part))
            raise CellDefinitionError(
                f"cell {cell.name!r}: {names} depend on each other both forwards and backwards in time; "
                "such a cell cannot be simulated step by step"
            )
        current = set(sweeps[-1][1]) if sweeps else set()
        needs = signs | {1 if lag < 0 else -1 for name in part for s, lag in lagged[name] if s in current}
        direction = sweeps[-1][0] if sweeps else 0
        if not sweeps or len(needs | ({direction} - {0})) > 1:
            sweeps.append((next(iter(needs), 0), list(part)))
        else:
            merged = next(iter(needs), direction)
            sweeps[-1] = (merged, sweeps[-1][1] + list(part))
    kinds = dict((name, kind) for kind, name in order)
    return tuple(
        Sweep(direction or 1, tuple((kinds[n], n) for n in sorted(names, key=position.__getitem__)))
        for direction, names in sweeps
    )


def infer_sizes(cell: Cell, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """Integer values of the cell's symbolic sizes from the shapes of arrays.

    Parameters
    ----------
    cell : Cell
    shapes : dict
        ``{parameter name: shape}`` and ``{input or state name: (size,)}``.

    Raises
    ------
    ShapeError
        When a shape has the wrong number of axes, or the shapes disagree.
    """
    key = tuple(sorted((name, tuple(int(d) for d in shape)) for name, shape in shapes.items()))
    return dict(_solve_sizes(cell, key))


@functools.lru_cache(maxsize=256)
def _solve_sizes(cell: Cell, key: tuple[tuple[str, tuple[int, ...]], ...]) -> tuple[tuple[str, int], ...]:
    """:func:`infer_sizes` for shapes given as a sorted tuple, remembered.

    Every numeric call asks it again with the same arrays, and the solving (sympy) costs
    milliseconds each time.
    """
    shapes = dict(key)
    equations: list[tuple[sp.Expr, int, str]] = []
    for name, expected in cell.params.items():
        if name in shapes:
            actual = tuple(shapes[name])
            if len(actual) != len(expected):
                raise ShapeError(
                    f"parameter {name!r} has shape {actual} but cell {cell.name!r} needs "
                    f"{len(expected)} axes, shape {tuple(expected)}"
                )
            equations += [(e, a, f"parameter {name!r}") for e, a in zip(expected, actual, strict=True)]
    for name, size in {**cell.inputs, **cell.states}.items():
        if name in shapes:
            equations.append((size, shapes[name][-1], f"{name!r}"))
    known: dict[sp.Symbol, sp.Integer] = {}
    for _ in range(len(equations) + 1):
        progress = False
        for expr, value, _what in equations:
            expr = sp.sympify(expr).xreplace(known)
            unknown = expr.free_symbols
            if len(unknown) == 1:
                (symbol,) = unknown
                solution = sp.solve(sp.Eq(expr, value), symbol)
                if len(solution) == 1 and solution[0].is_Integer and solution[0] > 0:
                    known[symbol] = sp.Integer(solution[0])
                    progress = True
        if not progress:
            break
    for expr, value, what in equations:
        resolved = sp.sympify(expr).xreplace(known)
        if resolved.is_Integer and int(resolved) != value:
            raise ShapeError(
                f"{what} has size {value} where cell {cell.name!r} needs {expr} = {resolved} "
                f"(sizes so far: {', '.join(f'{k}={v}' for k, v in sorted(known.items(), key=str))})"
            )
    missing = [s.name for s in cell.size_symbols if s not in known]
    if missing:
        raise ShapeError(
            f"cannot tell the size(s) {', '.join(missing)} of cell {cell.name!r} from the arrays given"
        )
    return tuple(sorted((s.name, int(v)) for s, v in known.items()))


@dataclass(frozen=True)
class Program:
    """The kernels of a concrete cell (backend-independent); see :func:`compile`."""

    cell: Cell
    sweeps: tuple[Sweep, ...]
    forward: dict[str, Forward]
    #: per sweep, the products of several matrices with one read formed once per step (see ``_fusion``)
    fused: tuple[tuple[Fused, ...], ...] = ()
    _vjps: dict[tuple[str, bool], VJP] = field(default_factory=dict)
    _jacobians: dict[tuple[str, str, int], tuple[Any, str, frozenset[tuple[str, int]]] | None] = field(
        default_factory=dict
    )

    def vjp(self, name: str, budget: bool) -> VJP:
        """The VJP kernel of node ``name`` (``budget``: cotangents carry a truncation axis)."""
        key = (name, budget)
        if key not in self._vjps:
            self._vjps[key] = build_vjp(self.cell, name, budget, self.forward[name].saved)
        return self._vjps[key]

    def jacobian(self, state: str, wrt: str, lag: int) -> tuple[Any, str, frozenset[tuple[str, int]]] | None:
        r"""``op(xp, P, R, M, dtype) = M @ J`` for :math:`J = \\partial s^{(t)}/\\partial s'^{(t-lag)}`; None if zero."""
        key = (state, wrt, lag)
        if key not in self._jacobians:
            self._jacobians[key] = _build_jacobian(self.cell, state, wrt, lag)
        return self._jacobians[key]


@dataclass(frozen=True)
class Forward:
    """A node's forward kernel.

    ``function(xp, P, R, H, dtype)`` returns ``(value, saved)``: the node's
    value and the values of the subtrees in ``saved`` (kept for the VJP
    kernel, so the backward pass recomputes nothing). ``H`` holds the values
    at this step of the ``hoisted`` subtrees -- those that read only inputs
    at time t and parameters (:math:`W_x x^{(t)}`) -- which ``static(xp, P, R, dtype)``
    computes for every step at once before the time loop (``R`` then maps
    each input read to its whole (T, B, m) sequence), followed by the values
    of the ``given`` subtrees: ``(group, position)`` of the sweep's fused
    products (:class:`~gradflow.numeric._fusion.Fused`), formed once per step
    for every node that needs one.
    """

    reads: frozenset[tuple[str, int]]
    function: Callable[..., Any]
    source: str
    saved: tuple[sp.Basic, ...]
    hoisted: tuple[sp.Basic, ...]
    static: Callable[..., Any] | None
    static_reads: frozenset[tuple[str, int]]
    given: tuple[tuple[int, int], ...] = ()


def _is_static(node: sp.Basic) -> bool:
    signals = node.atoms(Signal)
    return bool(signals) and all(s.role == "input" and s.lag == 0 for s in signals)


def _static_subtrees(expr: sp.Basic) -> list[sp.Basic]:
    """Maximal subtrees reading only inputs at time t (and parameters) that hold a matrix product."""
    found: list[sp.Basic] = []

    def walk(node: sp.Basic) -> None:
        if not isinstance(node, MatrixExpr) or isinstance(node, Signal):
            return
        if node.shape[1] == 1 and _is_static(node) and node.has(sp.MatMul):
            if node not in found:
                found.append(node)
            return
        for arg in node.args:
            walk(arg)

    walk(expr)
    return found


def _build_forward(cell: Cell, node: Node, given: list[tuple[sp.Basic, int, int]] | None = None) -> Forward:
    expr = cell.expression(*node)
    hoisted = tuple(_static_subtrees(expr))
    given = given or []
    try:
        static, static_reads = None, frozenset[tuple[str, int]]()
        if hoisted:
            before = Emitter(set(cell.params))
            codes = [before.vector(h) for h in hoisted]
            _, static = before.function("static", "xp, P, R, dtype", f"({', '.join(codes)},)")
            static_reads = frozenset(before.reads)
        emitter = Emitter(set(cell.params))
        for k, subtree in enumerate([*hoisted, *(g[0] for g in given)]):
            emitter.memo[("vector", subtree)] = f"H[{k}]"
        result = emitter.vector(expr)
        saved = tuple(key[1] for key in emitter.memo if key[0] == "vector")
        kept = ", ".join(emitter.memo[("vector", s)] for s in saved)
        source, function = emitter.function(
            "forward", "xp, P, R, H, dtype", f"{result}, ({kept}{',' if saved else ''})"
        )
    except NotDifferentiableError as err:
        raise lowering_error(cell, f"the {node[0]} {node[1]}", err) from err
    return Forward(
        frozenset(emitter.reads),
        function,
        source,
        saved,
        hoisted,
        static,
        static_reads,
        tuple((group, position) for _, group, position in given),
    )


def _build_jacobian(
    cell: Cell, state: str, wrt: str, lag: int
) -> tuple[Any, str, frozenset[tuple[str, int]]] | None:
    jacobian = step_jacobian(cell, state, wrt, lag)
    if isinstance(jacobian, sp.ZeroMatrix):
        return None
    # sigma'(u) from u, not from the forward pass's sigma(u): 1 - tanh(u)^2 and s (1 - s) are
    # exactly 0 in saturation (|u| > 19, u > 37) where the true factor is tiny but representable,
    # and a chain through an exact 0 reads log 0 = -inf (stable forms: scalar.stabilize). The
    # preactivation costs a matrix-vector product a step, next to the chain's matrix product.
    emitter = Emitter(set(cell.params), value_forms=False)
    try:
        result = emitter.right("M", jacobian)
        source, function = emitter.function("jacobian", "xp, P, R, M, dtype", result or "None")
    except NotDifferentiableError as err:
        raise lowering_error(cell, f"the step Jacobian d{state}/d{wrt} at lag {lag}", err) from err
    return function, source, frozenset(emitter.reads)


@functools.lru_cache(maxsize=64)
def _program(cell: Cell) -> Program:
    sweeps = schedule(cell)
    fused, given = fusable(cell, sweeps)
    forward = {name: _build_forward(cell, (kind, name), given.get(name)) for kind, name in cell.order}
    return Program(cell, sweeps, forward, fused)


@functools.lru_cache(maxsize=64)
def _concrete(cell: Cell, sizes: tuple[tuple[str, int], ...]) -> Cell:
    """``cell.with_sizes(**sizes)``, remembered (it parses the equations again: milliseconds a call)."""
    return cell.with_sizes(**dict(sizes))


@dataclass(frozen=True)
class CompiledCell:
    """A concrete cell's kernels bound to an array namespace and a dtype.

    Attributes
    ----------
    cell : Cell
        The cell with integer sizes.
    xp : module
        The array namespace.
    dtype : dtype of xp
    program : Program
        The kernels (shared by every backend).
    """

    cell: Cell
    xp: ModuleType
    dtype: Any
    program: Program

    @property
    def sweeps(self) -> tuple[Sweep, ...]:
        """The evaluation schedule (see :func:`schedule`)."""
        return self.program.sweeps

    @property
    def source(self) -> str:
        """The Python source of every forward kernel, in evaluation order."""
        return "\n".join(
            f"# {kind} {name}\n{self.program.forward[name].source}" for kind, name in self.cell.order
        )


def compile(cell: Cell, backend: Any = None, dtype: Any = None, **sizes: int) -> CompiledCell:
    r"""Lower ``cell`` to batched array kernels on ``backend``.

    Parameters
    ----------
    cell : Cell
    backend : None, str or namespace
        See :func:`gradflow.numeric.backend.namespace` (NumPy by default).
    dtype : None, "float32" or "float64"
        float64 by default.
    **sizes : int
        Values of the cell's symbolic sizes (``n=4, m=3``); required unless
        the cell is already concrete.

    Returns
    -------
    CompiledCell

    Raises
    ------
    CellDefinitionError
        For a missing size, or a cell that cannot be simulated.
    NotDifferentiableError
        For an expression with no numeric meaning (a generic activation).

    Examples
    --------
    >>> import gradflow as gf
    >>> compiled = compile(gf.cells.elman(), n=3, m=2)
    >>> print(compiled.source.splitlines()[2])
        v0 = xp.matmul(R[('h', -1)], P['W_h'].T)
    """
    concrete = _concrete(cell, tuple(sorted(sizes.items()))) if sizes else cell
    if not concrete.is_concrete:
        missing = ", ".join(s.name for s in concrete.size_symbols)
        raise CellDefinitionError(
            f"cell {cell.name!r} has symbolic sizes {missing}; give them, e.g. compile(cell, n=4, m=3)"
        )
    xp = namespace(backend)
    return CompiledCell(concrete, xp, dtype_of(xp, dtype), _program(concrete))
