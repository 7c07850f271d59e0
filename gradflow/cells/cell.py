r"""The :class:`Cell`: a recurrent cell as named sympy update equations.

A cell is written once, as text in the cell language (see
:mod:`gradflow.cells.parse`), and parsed into sympy matrix expressions that
every other layer of gradflow derives from: the unrolled graph, the symbolic
Jacobians, the LaTeX and the numeric kernels.
"""

from __future__ import annotations

import ast
import contextlib
import operator
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

import sympy as sp

from gradflow.cells.activations import Activation, as_activation
from gradflow.cells.expr import Signal, parameters_of, t
from gradflow.cells.parse import (
    Context,
    Equation,
    check_name,
    parse_equation,
    parse_text,
    read_at_current_time,
)
from gradflow.errors import CellDefinitionError, CellShapeError, GradflowError

__all__ = ["Cell", "size_symbol"]

Size: TypeAlias = int | sp.Expr
Shape: TypeAlias = tuple[sp.Expr, ...]


def size_symbol(name: str) -> sp.Symbol:
    """The canonical sympy symbol of a size (a positive integer), e.g. ``n``."""
    return sp.Symbol(name, integer=True, positive=True)


def _size(value: Any, what: str, cell: str) -> sp.Expr:
    """Canonicalise a declared size: a positive int, or an expression of size symbols."""
    original = value
    if isinstance(value, bool):
        raise CellDefinitionError(
            f"cell {cell!r}: {what} has size {original!r}; sizes are positive ints or symbols"
        )
    if not isinstance(value, int | str | sp.Basic):
        with contextlib.suppress(TypeError):
            value = operator.index(value)  # numpy integers
    if isinstance(value, int):
        if value <= 0:
            raise CellDefinitionError(f"cell {cell!r}: {what} has size {value}; sizes must be positive")
        return sp.Integer(value)
    try:
        if isinstance(value, str):
            names = {s: size_symbol(s) for s in _identifiers(value)}
            expr = sp.sympify(value, locals=names)
        elif isinstance(value, sp.Basic):
            expr = value.xreplace({s: size_symbol(s.name) for s in value.free_symbols})
        else:
            raise TypeError(type(value).__name__)
    except (sp.SympifyError, TypeError, SyntaxError) as err:
        raise CellDefinitionError(
            f"cell {cell!r}: {what} has size {value!r}; a size is a positive int or a symbol "
            "such as 'n' (or an expression of symbols, '2*n')"
        ) from err
    if not isinstance(expr, sp.Expr) or isinstance(expr, sp.MatrixExpr):
        raise CellDefinitionError(
            f"cell {cell!r}: {what} has size {value!r}, which is not a number or symbol"
        )
    if expr.is_number:
        if not (expr.is_Integer and expr > 0):
            raise CellDefinitionError(
                f"cell {cell!r}: {what} has size {value!r}; sizes must be positive integers"
            )
        return expr
    if any(s.name == "t" for s in expr.free_symbols):
        raise CellDefinitionError(f"cell {cell!r}: {what} has size {value!r}; 't' is the time index")
    if expr.is_positive is not True:
        raise CellDefinitionError(
            f"cell {cell!r}: {what} has size {value!r}, which is not always positive "
            "(size symbols are positive integers: use n, 2*n, n + m)"
        )
    return expr


def _identifiers(text: str) -> set[str]:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise sp.SympifyError(text) from err
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _shape(value: Any, name: str, cell: str) -> Shape:
    """A parameter shape: () scalar, (n,) vector, (n, m) matrix."""
    what = f"parameter {name!r}"
    if value is None or (isinstance(value, tuple | list) and len(value) == 0):
        return ()
    if isinstance(value, tuple | list):
        if len(value) > 2:
            raise CellDefinitionError(
                f"cell {cell!r}: {what} has shape {tuple(value)}; parameters are scalars (), "
                "vectors (n,) or matrices (n, m)"
            )
        return tuple(_size(v, what, cell) for v in value)
    return (_size(value, what, cell),)


def _shape_text(shape: Iterable[Any]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


class Cell:
    r"""A recurrent cell: states, inputs, parameters and update equations.

    Parameters
    ----------
    name : str
        The cell's name (``"elman"``).
    states : mapping of str to size
        Recurrent states and their lengths, e.g. ``{"h": "n"}``.
    inputs : mapping of str to size
        Inputs read at each step, e.g. ``{"x": "m"}``.
    params : mapping of str to shape
        ``()`` for a scalar (:math:`\alpha`), ``"n"`` or ``("n",)`` for a
        vector, ``("n", "m")`` for a matrix.
    updates : mapping of str to str
        One equation per state: its new value :math:`s^{(t)}`.
    intermediates : mapping of str to str, optional
        Named vectors computed within a step (gates), in any order: they
        are evaluated in dependency order.
    outputs : mapping of str to str, optional
        Named vectors computed from the new states (a bare state name means
        :math:`s^{(t)}` here).
    activations : mapping of str to activation, optional
        Extra activations usable by name in equations (a sympy ``Lambda``
        of one variable, a sympy function, or an :class:`Activation`).
    backward : iterable of str, optional
        States that run backwards in time (read at ``t + 1``).
    emits : str, optional
        The state or output passed to the next layer when the cell is
        stacked (default: the first output, else the first state).
    description, references : str, tuple of str, optional
        Prose and citations carried into derivations.

    Raises
    ------
    CellDefinitionError
        On a malformed definition: an unknown name, a missing or unused
        parameter, a state without an update, a cycle among intermediates,
        a bad size, a non-elementwise activation, a read of a future value.
        :class:`~gradflow.errors.CellShapeError` (a subclass) on a shape
        mismatch. Every message names the equation and the operands.

    Examples
    --------
    >>> cell = Cell(
    ...     "elman",
    ...     states={"h": "n"},
    ...     inputs={"x": "m"},
    ...     params={"W_h": ("n", "n"), "W_x": ("n", "m"), "b": "n"},
    ...     updates={"h": "tanh(W_h @ h + W_x @ x + b)"},
    ... )
    >>> print(cell.updates["h"])
    tanh(W_h*h[t - 1] + W_x*x[t] + b)
    >>> cell.with_sizes(n=3, m=2).params["W_x"]
    (3, 2)
    """

    __slots__ = (
        "_activations",
        "_backward",
        "_description",
        "_emits",
        "_equations",
        "_exprs",
        "_inputs",
        "_name",
        "_order",
        "_params",
        "_references",
        "_states",
    )
    _activations: dict[str, Activation]
    _backward: frozenset[str]
    _description: str
    _emits: str
    _equations: tuple[Equation, ...]
    _exprs: dict[tuple[str, str], sp.Basic]
    _inputs: dict[str, sp.Expr]
    _name: str
    _order: tuple[tuple[str, str], ...]
    _params: dict[str, Shape]
    _references: tuple[str, ...]
    _states: dict[str, sp.Expr]

    def __init__(
        self,
        name: str,
        *,
        states: Mapping[str, Any],
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        updates: Mapping[str, str],
        intermediates: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        activations: Mapping[str, Any] | None = None,
        backward: Iterable[str] = (),
        emits: str | None = None,
        description: str = "",
        references: Iterable[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise CellDefinitionError(f"a cell's name must be a non-empty string, got {name!r}")
        put = object.__setattr__
        put(self, "_name", name)
        for section, mapping in (
            ("states", states),
            ("inputs", inputs),
            ("params", params),
            ("updates", updates),
        ):
            if not isinstance(mapping, Mapping):
                raise CellDefinitionError(
                    f"cell {name!r}: {section} must be a mapping (a dict), got {type(mapping).__name__}"
                )
        seen: dict[str, str] = {}
        for role, names in (
            ("state", states),
            ("input", inputs),
            ("parameter", params),
            ("intermediate", intermediates or {}),
            ("output", outputs or {}),
        ):
            for key in names:
                check_name(key, role, name)
                if key in seen:
                    raise CellDefinitionError(
                        f"cell {name!r}: {key!r} is declared both as {seen[key]} and as {role}"
                    )
                seen[key] = role
        if not states:
            raise CellDefinitionError(f"cell {name!r} has no state; a recurrent cell needs at least one")
        put(self, "_states", {k: _size(v, f"state {k!r}", name) for k, v in states.items()})
        put(self, "_inputs", {k: _size(v, f"input {k!r}", name) for k, v in inputs.items()})
        put(self, "_params", {k: _shape(v, k, name) for k, v in params.items()})
        backward = frozenset(backward)
        for state in sorted(backward - set(states)):
            raise CellDefinitionError(f"cell {name!r}: backward state {state!r} is not a state")
        put(self, "_backward", backward)
        activations = dict(activations or {})
        for key, spec in activations.items():
            check_name(key, "activation", name)
            try:
                activations[key] = as_activation(spec, name=key)
            except GradflowError as err:
                raise type(err)(f"cell {name!r}: {err}") from err
        put(self, "_activations", activations)
        for state in states:
            if state not in updates:
                raise CellDefinitionError(
                    f"cell {name!r}: state {state!r} has no update equation; add updates={{{state!r}: ...}}"
                )
        for target in updates:
            if target not in states:
                raise CellDefinitionError(
                    f"cell {name!r}: there is an update for {target!r}, which is not a state "
                    f"(states: {', '.join(states)})"
                )
        equations = [Equation("intermediate", k, v) for k, v in (intermediates or {}).items()]
        equations += [Equation("update", k, v) for k, v in updates.items()]
        equations += [Equation("output", k, v) for k, v in (outputs or {}).items()]
        put(self, "_equations", tuple(equations))
        self._build()
        if emits is None:
            emits = next(iter(outputs or {}), None) or next(iter(states))
        if emits not in states and emits not in (outputs or {}):
            raise CellDefinitionError(
                f"cell {name!r}: emits={emits!r} must name a state or an output of the cell"
            )
        put(self, "_emits", emits)
        put(self, "_description", str(description))
        put(self, "_references", tuple(references))

    # -- construction ---------------------------------------------------------
    def _context(self) -> Context:
        return Context(
            cell=self._name,
            states=self._states,
            inputs=self._inputs,
            params=self._params,
            intermediates=frozenset(e.target for e in self._equations if e.section == "intermediate"),
            outputs=frozenset(e.target for e in self._equations if e.section == "output"),
            backward=self._backward,
            activations=self._activations,
        )

    def _build(self) -> None:
        context = self._context()
        key = {"intermediate": "intermediate", "update": "state", "output": "output"}
        nodes = {(key[e.section], e.target): e for e in self._equations}
        deps: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for node, equation in nodes.items():
            names = read_at_current_time(parse_text(equation), context, equation)
            deps[node] = {(context.role(n) or "", n) for n in names}
        order = _stable_topological_order(list(nodes), deps, self._name)
        exprs: dict[tuple[str, str], sp.Basic] = {}
        for node in order:
            equation = nodes[node]
            expr = parse_equation(equation, context)
            shape = expr.shape if isinstance(expr, sp.MatrixExpr) else None
            if node[0] == "state":
                want = (self._states[node[1]], sp.S.One)
                if shape != want:
                    raise CellShapeError(
                        f"{equation} in cell {self._name!r}: the right-hand side has shape "
                        f"{_shape_text(shape) if shape else 'scalar'} but state {node[1]!r} "
                        f"has shape {_shape_text(want)}"
                    )
            elif shape is None or shape[1] != 1:
                raise CellShapeError(
                    f"{equation} in cell {self._name!r}: {node[0]} {node[1]!r} must be a column "
                    f"vector, but the right-hand side has shape "
                    f"{_shape_text(shape) if shape else 'scalar'}"
                )
            else:
                context.sizes[node[1]] = shape[0]
            exprs[node] = expr
        used: set[str] = set()
        for expr in exprs.values():
            used |= {p.name for p in parameters_of(expr)}
            used |= {s.name for s in expr.atoms(Signal) if s.role == "input"}
        declared: tuple[tuple[str, Mapping[str, Any]], ...] = (
            ("parameter", self._params),
            ("input", self._inputs),
        )
        for role, declared_names in declared:
            unused = [n for n in declared_names if n not in used]
            if unused:
                raise CellDefinitionError(
                    f"cell {self._name!r}: {role} {', '.join(map(repr, unused))} is declared but "
                    "no equation uses it; remove it or use it"
                )
        object.__setattr__(self, "_order", tuple(order))
        object.__setattr__(self, "_exprs", exprs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"Cell is immutable; build a new one (or use with_sizes) instead of setting {name!r}"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Cell is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._name, self._spec()))

    def __copy__(self) -> Cell:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Cell:
        return self

    # -- what the cell holds ----------------------------------------------------
    @property
    def name(self) -> str:
        """The cell's name."""
        return self._name

    @property
    def states(self) -> Mapping[str, sp.Expr]:
        """State name -> length (sympy)."""
        return MappingProxyType(self._states)

    @property
    def inputs(self) -> Mapping[str, sp.Expr]:
        """Input name -> length (sympy)."""
        return MappingProxyType(self._inputs)

    @property
    def params(self) -> Mapping[str, Shape]:
        """Parameter name -> shape: () scalar, (n,) vector, (n, m) matrix."""
        return MappingProxyType(self._params)

    def _section(self, kind: str) -> Mapping[str, sp.Basic]:
        return MappingProxyType({n: e for (k, n), e in self._exprs.items() if k == kind})

    @property
    def intermediates(self) -> Mapping[str, sp.Basic]:
        """Intermediate name -> sympy expression, in evaluation order."""
        return self._section("intermediate")

    @property
    def updates(self) -> Mapping[str, sp.Basic]:
        r"""State name -> sympy expression of its new value :math:`s^{(t)}`."""
        return MappingProxyType({n: self._exprs[("state", n)] for n in self._states})

    @property
    def outputs(self) -> Mapping[str, sp.Basic]:
        """Output name -> sympy expression."""
        return self._section("output")

    @property
    def order(self) -> tuple[tuple[str, str], ...]:
        """Evaluation order of one step: ``(kind, name)`` with kind in intermediate/state/output."""
        return self._order

    def expression(self, kind: str, name: str) -> sp.Basic:
        """The sympy expression of ``(kind, name)`` as found in :attr:`order`."""
        try:
            return self._exprs[(kind, name)]
        except KeyError:
            raise CellDefinitionError(
                f"cell {self._name!r} has no {kind} {name!r}; it has "
                + ", ".join(f"{k} {n!r}" for k, n in self._order)
            ) from None

    @property
    def equations(self) -> tuple[Equation, ...]:
        """The equations as written (section, target, text)."""
        return self._equations

    @property
    def backward(self) -> frozenset[str]:
        """States that run backwards in time."""
        return self._backward

    @property
    def emits(self) -> str:
        """The state or output a stacked layer passes to the layer above."""
        return self._emits

    @property
    def activations(self) -> Mapping[str, Activation]:
        """Extra activations declared with the cell."""
        return MappingProxyType(self._activations)

    @property
    def description(self) -> str:
        """Prose describing the cell."""
        return self._description

    @property
    def references(self) -> tuple[str, ...]:
        """Citations of the papers behind the cell."""
        return self._references

    @property
    def size_symbols(self) -> tuple[sp.Symbol, ...]:
        """The symbolic sizes the cell still has (sorted by name); empty when concrete."""
        found: set[sp.Symbol] = set()
        for size in [*self._states.values(), *self._inputs.values()]:
            found |= size.free_symbols
        for shape in self._params.values():
            for size in shape:
                found |= size.free_symbols
        return tuple(sorted(found, key=lambda s: s.name))

    @property
    def is_concrete(self) -> bool:
        """True when every size is an integer."""
        return not self.size_symbols

    def delays(self, state: str) -> tuple[int, ...]:
        """The distinct step distances at which ``state`` is read (1 for h^(t-1)), sorted."""
        if state not in self._states:
            raise CellDefinitionError(f"cell {self._name!r} has no state {state!r}")
        lags = {
            abs(int(s.lag))
            for expr in self._exprs.values()
            for s in expr.atoms(Signal)
            if s.role == "state" and s.name == state and s.lag != 0
        }
        return tuple(sorted(lags))

    def signal(self, name: str, time: Any = None) -> Signal:
        """The sympy :class:`Signal` of a state/input/intermediate/output at ``time`` (default t)."""
        time = t if time is None else sp.sympify(time, locals={"t": t})
        if name in self._states:
            return Signal(name, self._states[name], time, "state")
        if name in self._inputs:
            return Signal(name, self._inputs[name], time, "input")
        for (kind, other), expr in self._exprs.items():
            if other == name and kind in ("intermediate", "output"):
                return Signal(name, expr.shape[0], time, kind)
        raise CellDefinitionError(f"cell {self._name!r} has no signal {name!r}")

    def parameter(self, name: str) -> sp.Basic:
        """The sympy object of a parameter (MatrixSymbol, or Symbol for a scalar)."""
        if name not in self._params:
            raise CellDefinitionError(
                f"cell {self._name!r} has no parameter {name!r}; it has {', '.join(self._params)}"
            )
        shape = self._params[name]
        if not shape:
            return sp.Symbol(name, real=True)
        return sp.MatrixSymbol(name, shape[0], shape[1] if len(shape) == 2 else 1)

    # -- new cells from this one ----------------------------------------------
    def _spec(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this cell."""
        sections: dict[str, dict[str, str]] = {"intermediate": {}, "update": {}, "output": {}}
        for equation in self._equations:
            sections[equation.section][equation.target] = equation.text
        return {
            "states": dict(self._states),
            "inputs": dict(self._inputs),
            "params": dict(self._params),
            "updates": sections["update"],
            "intermediates": sections["intermediate"],
            "outputs": sections["output"],
            "activations": dict(self._activations),
            "backward": self._backward,
            "emits": self._emits,
            "description": self._description,
            "references": self._references,
        }

    def with_sizes(self, **sizes: int) -> Cell:
        """A copy with some symbolic sizes fixed to integers, e.g. ``with_sizes(n=3, m=2)``.

        Raises
        ------
        CellDefinitionError
            For a size the cell does not have, or a value that is not a positive int.
        """
        known = {s.name: s for s in self.size_symbols}
        mapping: dict[sp.Symbol, sp.Integer] = {}
        for key, value in sizes.items():
            if key not in known:
                raise CellDefinitionError(
                    f"cell {self._name!r} has no symbolic size {key!r}; its sizes are "
                    f"{', '.join(known) or 'already all concrete'}"
                )
            try:
                value = operator.index(value)
            except TypeError:
                value = -1
            if isinstance(sizes[key], bool) or value <= 0:
                raise CellDefinitionError(
                    f"cell {self._name!r}: size {key}={sizes[key]!r} must be a positive int"
                )
            mapping[known[key]] = sp.Integer(value)
        spec = self._spec()
        spec["states"] = {k: v.xreplace(mapping) for k, v in spec["states"].items()}
        spec["inputs"] = {k: v.xreplace(mapping) for k, v in spec["inputs"].items()}
        spec["params"] = {k: tuple(s.xreplace(mapping) for s in shape) for k, shape in spec["params"].items()}
        return Cell(self._name, **spec)

    # -- value semantics --------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (
            self._name,
            tuple(self._states.items()),
            tuple(self._inputs.items()),
            tuple(self._params.items()),
            tuple(self._exprs.items()),
            self._backward,
            self._emits,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cell):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        def fmt(mapping: Mapping[str, Any]) -> str:
            return ", ".join(
                f"{k}{_shape_text(v) if isinstance(v, tuple) else f'({v})'}" for k, v in mapping.items()
            )

        params = ", ".join(f"{k}{_shape_text(v)}" for k, v in self._params.items())
        return (
            f"<Cell {self._name!r}: states {fmt(self._states)}; inputs {fmt(self._inputs)}; params {params}>"
        )

    def __str__(self) -> str:
        """The summary line, then each equation in the cell language, in evaluation order."""
        sections = {"intermediate": "intermediate", "state": "update", "output": "output"}
        texts = {(e.section, e.target): e.text for e in self._equations}
        lines = [repr(self)]
        for kind, name in self._order:
            target = f"{name}[t]" if kind == "state" else name
            lines.append(f"  {target} = {texts[(sections[kind], name)]}")
        return "\n".join(lines)


def _rebuild(name: str, spec: dict[str, Any]) -> Cell:
    """Unpickle a cell by building it again from its definition."""
    return Cell(name, **spec)


def _stable_topological_order(
    nodes: list[tuple[str, str]],
    deps: Mapping[tuple[str, str], set[tuple[str, str]]],
    cell: str,
) -> list[tuple[str, str]]:
    """Kahn's algorithm, always taking the earliest-declared ready node."""
    index = {node: i for i, node in enumerate(nodes)}
    remaining = {node: set(deps[node]) for node in nodes}
    order: list[tuple[str, str]] = []
    while remaining:
        ready = [n for n, d in remaining.items() if not d]
        if not ready:
            raise CellDefinitionError(
                f"cell {cell!r}: the equations form a cycle within one step: "
                + _find_cycle(remaining)
                + "; break it by reading a state's previous value (h instead of h[t])"
            )
        node = min(ready, key=index.__getitem__)
        order.append(node)
        del remaining[node]
        for other in remaining.values():
            other.discard(node)
    return order


def _find_cycle(remaining: Mapping[tuple[str, str], set[tuple[str, str]]]) -> str:
    start = next(iter(remaining))
    path: list[tuple[str, str]] = []
    node = start
    while node not in path:
        path.append(node)
        node = min(remaining[node])
    cycle = [*path[path.index(node) :], node]
    return " -> ".join(f"{kind} {name!r}" for kind, name in cycle)
