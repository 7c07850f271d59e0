r"""Parse equations of the cell language into validated sympy trees.

The language is a small subset of Python expression syntax:

========================  ==================================================
``W_h @ h``               matrix product
``a + b``, ``a - b``      sum, difference (a scalar broadcasts: ``1 - z``)
``f * c``                 Hadamard product of two vectors; scaling if one
                          side is a scalar (``alpha * h``)
``h / tau``               division by a scalar
``tanh(v)``               an activation, applied elementwise
``[h, x]``, ``concat()``  the stacked vector :math:`[h; x]`
``h``                     a state: its previous value :math:`h^{(t-1)}` in
                          intermediates and updates (:math:`h^{(t+1)}` for
                          a state running backwards), its new value
                          :math:`h^{(t)}` in outputs
``h[t-3]``, ``c[t]``      a state at an explicit time (a delay; the value
                          already updated this step)
``layer1.h``              a name of a combined cell (dotted)
========================  ==================================================

Every error is a :class:`~gradflow.errors.CellDefinitionError` naming the
equation, the operands and their shapes.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.activations import CATALOGUE, Activation, as_activation
from gradflow.cells.expr import Concat, Elementwise, Signal, t
from gradflow.errors import CellDefinitionError, CellShapeError, NotDifferentiableError

__all__ = ["Context", "Equation", "dotted_name", "parse_equation", "read_at_current_time"]

_RESERVED = {"t", "concat"}


@dataclass(frozen=True)
class Equation:
    """One equation of a cell: ``target = text`` in a section."""

    section: str  # "intermediate", "update" or "output"
    target: str
    text: str

    def __str__(self) -> str:
        return f"{self.section} '{self.target} = {self.text}'"


@dataclass
class Context:
    """What the names of a cell mean while its equations are parsed."""

    cell: str
    states: Mapping[str, sp.Expr]
    inputs: Mapping[str, sp.Expr]
    params: Mapping[str, tuple[sp.Expr, ...]]
    intermediates: frozenset[str]
    outputs: frozenset[str]
    backward: frozenset[str]
    activations: Mapping[str, Activation]
    sizes: dict[str, sp.Expr] = field(default_factory=dict)  # of parsed intermediates/outputs

    def role(self, name: str) -> str | None:
        """What ``name`` is in the cell: state, input, param, intermediate, output, or None."""
        for role, names in (
            ("state", self.states),
            ("input", self.inputs),
            ("param", self.params),
            ("intermediate", self.intermediates),
            ("output", self.outputs),
        ):
            if name in names:
                return role
        return None

    def all_names(self) -> list[str]:
        """Every declared name."""
        return [*self.states, *self.inputs, *self.params, *self.intermediates, *self.outputs]


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def parse_text(equation: Equation) -> ast.expr:
    """Parse the text of ``equation`` into a Python expression tree."""
    if not isinstance(equation.text, str):
        raise CellDefinitionError(
            f"{equation.section} for {equation.target!r} must be a string of the cell "
            f"language (e.g. 'tanh(W_h @ h + W_x @ x + b)'), got {type(equation.text).__name__}"
        )
    try:
        tree = ast.parse(equation.text.strip(), mode="eval")
    except SyntaxError as err:
        raise CellDefinitionError(
            f"{equation} is not a valid expression: {err.msg} (column {err.offset})"
        ) from err
    except (RecursionError, MemoryError) as err:
        raise CellDefinitionError(f"{equation} is nested too deeply to parse") from err
    return tree.body


def _time_offset(node: ast.expr, equation: Equation, what: str) -> int:
    """The k of ``t``, ``t - k``, ``t + k`` in a subscript; else raise."""
    if isinstance(node, ast.Name) and node.id == "t":
        return 0
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add | ast.Sub)
        and isinstance(node.left, ast.Name)
        and node.left.id == "t"
        and isinstance(node.right, ast.Constant)
        and isinstance(node.right.value, int)
        and not isinstance(node.right.value, bool)
    ):
        k = node.right.value
        return k if isinstance(node.op, ast.Add) else -k
    raise CellDefinitionError(
        f"{equation}: the time index of {what}[{ast.unparse(node)}] must be t, t - k or "
        "t + k with an integer k (e.g. h[t-2])"
    )


def read_at_current_time(tree: ast.expr, context: Context, equation: Equation) -> set[str]:
    """Names the equation reads at the current time t (its in-step dependencies)."""
    found: set[str] = set()
    bare_state_is_current = equation.section == "output"

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Subscript):
            name = dotted_name(node.value)
            if name is not None and context.role(name) in ("state", "intermediate", "output"):
                if _time_offset(node.slice, equation, name) == 0:
                    found.add(name)
                return
        name = dotted_name(node) if isinstance(node, ast.Attribute | ast.Name) else None
        if name is not None:
            role = context.role(name)
            if role in ("intermediate", "output") or (role == "state" and bare_state_is_current):
                found.add(name)
            return
        if isinstance(node, ast.Call):
            for arg in node.args:
                visit(arg)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _shape_text(shape: tuple[sp.Expr, ...] | None) -> str:
    if shape is None:
        return "scalar"
    return "(" + ", ".join(str(s) for s in shape) + ")"


class _Builder:
    """Turns one Python expression tree into a sympy tree, checking shapes."""

    def __init__(self, context: Context, equation: Equation) -> None:
        self.context = context
        self.equation = equation

    # -- helpers -----------------------------------------------------------
    def fail(self, message: str) -> CellDefinitionError:
        return CellDefinitionError(f"{self.equation} in cell {self.context.cell!r}: {message}")

    def shape_fail(self, message: str) -> CellShapeError:
        return CellShapeError(f"{self.equation} in cell {self.context.cell!r}: {message}")

    @staticmethod
    def shape(value: sp.Basic) -> tuple[sp.Expr, sp.Expr] | None:
        return value.shape if isinstance(value, MatrixExpr) else None  # type: ignore[no-any-return]

    # -- the walk ----------------------------------------------------------
    def build(self, node: ast.expr) -> sp.Basic:
        method = getattr(self, "build_" + type(node).__name__, None)
        if method is None:
            raise self.fail(
                f"'{ast.unparse(node)}' is not part of the cell language (use @, +, -, *, /, "
                "activations, [a, b] concatenation, names and numbers)"
            )
        return method(node)  # type: ignore[no-any-return]

    def build_Constant(self, node: ast.Constant) -> sp.Basic:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"constant {value!r} is not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(f"constant {ast.unparse(node)} is not a finite number")
        return sp.Rational(str(value)) if isinstance(value, float) else sp.Integer(value)

    def build_Name(self, node: ast.expr) -> sp.Basic:
        name = dotted_name(node)
        if name is None:  # an attribute of an expression, e.g. (h + x).T
            raise self.fail(
                f"'{ast.unparse(node)}' is not part of the cell language: dots only join the "
                "parts of a combined cell's names (layer1.h); there are no attributes such as .T"
            )
        return self.reference(name, None, node)

    build_Attribute = build_Name  # noqa: N815 - dispatched by AST class name

    def build_Subscript(self, node: ast.Subscript) -> sp.Basic:
        name = dotted_name(node.value)
        if name is None:
            raise self.fail(f"'{ast.unparse(node)}': only a name can carry a time index")
        return self.reference(name, _time_offset(node.slice, self.equation, name), node)

    def reference(self, name: str, offset: int | None, node: ast.expr) -> sp.Basic:
        context = self.context
        role = context.role(name)
        if role is None:
            hint = difflib.get_close_matches(name, context.all_names(), n=1)
            known = ", ".join(context.all_names())
            raise self.fail(
                f"'{name}' is not a state, input, parameter, intermediate or output of the "
                f"cell (known: {known})"
                + (f"; did you mean '{hint[0]}'?" if hint else "")
                + " -- declare it in params= if it is a missing parameter"
            )
        if role == "param":
            if offset is not None:
                raise self.fail(f"parameter '{name}' is shared across time and takes no [t] index")
            shape = context.params[name]
            if len(shape) == 0:
                return sp.Symbol(name, real=True)
            cols = shape[1] if len(shape) == 2 else sp.S.One
            return sp.MatrixSymbol(name, shape[0], cols)
        if role == "input":
            if offset not in (None, 0):
                raise self.fail(f"input '{name}' can only be read at time t, not {ast.unparse(node)}")
            return Signal(name, context.inputs[name], t, "input")
        if role in ("intermediate", "output"):
            if offset not in (None, 0):
                raise self.fail(
                    f"{role} '{name}' exists only within a step; read it at time t, "
                    f"not {ast.unparse(node)} (make it a state to remember it)"
                )
            if name not in context.sizes:
                raise self.fail(f"{role} '{name}' is read before it is defined")
            return Signal(name, context.sizes[name], t, role)
        # a state
        backward = name in context.backward
        if offset is None:  # bare name: the new value in outputs, else the previous one
            offset = 0 if self.equation.section == "output" else 1 if backward else -1
        if (offset > 0 and not backward) or (offset < 0 and backward):
            direction = "backwards" if backward else "forwards"
            raise self.fail(
                f"state '{name}' runs {direction} in time, so {ast.unparse(node)} reads a "
                f"value that is not computed yet; use {name}[t{'+' if backward else '-'}k]"
            )
        return Signal(name, context.states[name], t + offset, "state")

    def build_List(self, node: ast.List) -> sp.Basic:
        return self.concat(node.elts, node)

    def concat(self, elements: list[ast.expr], node: ast.expr) -> sp.Basic:
        if len(elements) < 2:
            raise self.fail(f"'{ast.unparse(node)}': a concatenation needs at least two vectors")
        parts = [self.build(e) for e in elements]
        for element, part in zip(elements, parts, strict=True):
            shape = self.shape(part)
            if shape is None or shape[1] != 1:
                raise self.shape_fail(
                    f"'{ast.unparse(node)}' concatenates '{ast.unparse(element)}' of shape "
                    f"{_shape_text(shape)}; only column vectors can be stacked"
                )
        return Concat(*parts)

    def build_Call(self, node: ast.Call) -> sp.Basic:
        name = dotted_name(node.func)
        if node.keywords:
            raise self.fail(f"'{ast.unparse(node)}': keyword arguments are not supported")
        if name == "concat":
            return self.concat(node.args, node)
        activation = self.activation(name, node)
        if len(node.args) != 1:
            raise self.fail(
                f"activation '{name}' is applied elementwise to one vector, but "
                f"'{ast.unparse(node)}' passes {len(node.args)} arguments"
            )
        arg = self.build(node.args[0])
        if self.shape(arg) is None:
            raise self.shape_fail(
                f"activation '{name}' is applied to the scalar '{ast.unparse(node.args[0])}'; "
                "activations act on vectors"
            )
        return Elementwise(activation, arg)

    def activation(self, name: str | None, node: ast.Call) -> Activation:
        if name is not None and name in self.context.activations:
            return self.context.activations[name]
        if name is not None and name in CATALOGUE:
            try:
                return as_activation(name)
            except NotDifferentiableError as err:  # pragma: no cover - catalogue differentiates
                raise self.fail(str(err)) from err
        known = sorted({*CATALOGUE, *self.context.activations})
        raise self.fail(
            f"'{ast.unparse(node.func)}' is not an activation: the catalogue has "
            f"{', '.join(known)}; pass others as activations={{'name': Lambda(z, ...)}}. "
            "Functions that mix components (softmax) are not elementwise activations"
        )

    def build_UnaryOp(self, node: ast.UnaryOp) -> sp.Basic:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.USub):
            if self.shape(operand) is None:
                return -operand
            return sp.MatMul(sp.S.NegativeOne, operand)
        raise self.fail(f"operator in '{ast.unparse(node)}' is not part of the cell language")

    def build_BinOp(self, node: ast.BinOp) -> sp.Basic:
        left, right = self.build(node.left), self.build(node.right)
        ls, rs = self.shape(left), self.shape(right)
        text = ast.unparse(node)
        lt, rt = ast.unparse(node.left), ast.unparse(node.right)
        op = node.op
        if isinstance(op, ast.MatMult):
            if ls is None or rs is None:
                raise self.shape_fail(
                    f"'{text}' uses @ with the scalar '{lt if ls is None else rt}'; scale with * instead"
                )
            if ls[1] != rs[0]:
                raise self.shape_fail(
                    f"'{text}' multiplies '{lt}' of shape {_shape_text(ls)} by '{rt}' of shape "
                    f"{_shape_text(rs)}: the inner sizes {ls[1]} and {rs[0]} differ"
                )
            return sp.MatMul(*_flat(left, sp.MatMul), *_flat(right, sp.MatMul))
        if isinstance(op, ast.Add | ast.Sub):
            if isinstance(op, ast.Sub):
                right = -right if rs is None else sp.MatMul(sp.S.NegativeOne, right)
            if ls is None and rs is None:
                return left + right
            if ls is None or rs is None:  # a scalar broadcast over a vector: 1 - z
                vector_shape = ls if rs is None else rs
                assert vector_shape is not None
                if vector_shape[1] != 1:
                    raise self.shape_fail(
                        f"'{text}' adds a scalar to the matrix '{lt if rs is None else rt}' "
                        f"of shape {_shape_text(vector_shape)}; only vectors broadcast a scalar"
                    )
                ones = sp.OneMatrix(vector_shape[0], 1)
                if ls is None:
                    left = ones if left == 1 else sp.MatMul(left, ones)
                else:
                    right = ones if right == 1 else sp.MatMul(right, ones)
            elif ls != rs:
                raise self.shape_fail(
                    f"'{text}' adds '{lt}' of shape {_shape_text(ls)} and '{rt}' of shape {_shape_text(rs)}"
                )
            return sp.MatAdd(*_flat(left, sp.MatAdd), *_flat(right, sp.MatAdd))
        if isinstance(op, ast.Mult):
            if ls is None and rs is None:
                return left * right
            if ls is None or rs is None:
                scalar, matrix = (left, right) if ls is None else (right, left)
                return sp.MatMul(scalar, *_flat(matrix, sp.MatMul))
            if ls != rs:
                raise self.shape_fail(
                    f"'{text}' is a Hadamard product of '{lt}' of shape {_shape_text(ls)} and "
                    f"'{rt}' of shape {_shape_text(rs)}; the shapes must agree (use @ for "
                    "a matrix product)"
                )
            return sp.HadamardProduct(*_flat(left, sp.HadamardProduct), *_flat(right, sp.HadamardProduct))
        if isinstance(op, ast.Div):
            if rs is not None:
                raise self.shape_fail(f"'{text}' divides by the non-scalar '{rt}'")
            if right.is_zero:
                raise self.fail(f"'{text}' divides by zero")
            if ls is None:
                return left / right
            return sp.MatMul(1 / right, *_flat(left, sp.MatMul))
        if isinstance(op, ast.Pow):
            if ls is not None or rs is not None:
                raise self.shape_fail(
                    f"'{text}' raises a vector to a power; write the Hadamard product (h * h)"
                )
            if left.is_number and right.is_number and abs(right) > 64:
                raise self.fail(f"'{text}' has the exponent {right}; keep exponents of numbers within 64")
            return left**right
        raise self.fail(f"operator in '{text}' is not part of the cell language")


def _flat(expr: sp.Basic, cls: type) -> tuple[sp.Basic, ...]:
    """The arguments of a nested ``cls`` node, so that a + b + c is one MatAdd."""
    nested = type(expr) is cls
    return tuple(expr.args) if nested else (expr,)


def parse_equation(equation: Equation, context: Context) -> sp.Basic:
    """Build the sympy tree of ``equation``, checking names, times and shapes."""
    tree = parse_text(equation)
    try:
        result = _Builder(context, equation).build(tree)
    except RecursionError as err:
        raise CellDefinitionError(f"{equation} is nested too deeply") from err
    if result.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise CellDefinitionError(f"{equation} evaluates to an infinite or undefined constant: {result}")
    return result


def check_name(name: Any, what: str, cell: str) -> str:
    """Validate a declared name (identifiers, dotted for combined cells)."""
    if not isinstance(name, str) or not name:
        raise CellDefinitionError(f"cell {cell!r}: {what} name {name!r} must be a non-empty string")
    if not all(part.isidentifier() for part in name.split(".")):
        raise CellDefinitionError(
            f"cell {cell!r}: {what} name {name!r} is not an identifier (letters, digits, "
            "underscores; dots only between the parts of a combined cell's names)"
        )
    if name in _RESERVED or name in CATALOGUE:
        raise CellDefinitionError(
            f"cell {cell!r}: {what} name {name!r} is reserved (time 't', 'concat' and the activation names)"
        )
    return name
