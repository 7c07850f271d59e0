r"""Lowering a cell's sympy matrix expressions to batched array code.

The numeric backend never restates a cell: it prints Python source from the
same expression trees the symbolic layer differentiates, and runs it with
``exec`` over an array-API namespace ``xp``. One :class:`Emitter` writes one
kernel; identical subtrees (sympy nodes are hash-consed, so equal trees are
equal keys) are computed once -- that is the common-subexpression
elimination.

Layout: a column vector of the cell language (shape :math:`(n, 1)`) is an
array ``(..., n)`` whose leading axes are the batch (and, for truncated
BPTT, the truncation budget); a matrix parameter :math:`W` (:math:`p \times q`)
is an array ``(p, q)``, so :math:`W v` is ``v @ W.T``. Three kinds of code are
emitted:

* :meth:`Emitter.vector` -- a column-vector expression (a forward node, a
  pullback :math:`J^\top g`);
* :meth:`Emitter.right` -- a matrix expression :math:`J` as the operator
  :math:`M \mapsto M J` on a batch of matrices ``(..., q, r)``: ``diag(v)``
  is a broadcast ``M * v[..., None, :]``, never an :math:`n \times n` matrix;
* :meth:`Emitter.inner` -- a :math:`1 \times 1` expression :math:`g^\top u`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.activations import Activation, z
from gradflow.cells.expr import Concat, Elementwise, Signal
from gradflow.errors import NotDifferentiableError
from gradflow.numeric._runtime import RUNTIME
from gradflow.numeric.scalar import ScalarPrinter, stabilize
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Rows

__all__ = ["Emitter", "compile_activation", "derivative_of_value"]

_ACTIVATIONS: dict[Activation, tuple[str, Callable[..., Any]]] = {}
_VALUE_FORMS: dict[Activation, sp.Expr | None] = {}
#: The value :math:`y = \sigma(u)` in :func:`derivative_of_value`.
y = sp.Symbol("y", real=True)


def derivative_of_value(activation: Activation) -> sp.Expr | None:
    r""":math:`\sigma'` as a rational function of the value :math:`y = \sigma(u)`, if sympy finds one.

    :math:`\tanh' = 1 - y^2` and :math:`\sigma' = y(1-y)`: a pullback
    through :math:`\sigma(u)` whose forward pass kept :math:`\sigma(u)` then
    costs a few multiplications instead of a second transcendental function.
    Found by substituting :math:`y` for :math:`\sigma(z)` in the derivative
    (directly, or through the logistic rewrite :math:`e^{-z} = (1-y)/y` of
    :func:`~gradflow.numeric.scalar.stabilize`), kept only when free of
    :math:`z` and of every function, and checked at sample points.

    Examples
    --------
    >>> from gradflow.cells.activations import sigmoid, tanh, relu
    >>> derivative_of_value(tanh), derivative_of_value(sigmoid), derivative_of_value(relu)
    (1 - y**2, y*(1 - y), None)
    """
    if activation not in _VALUE_FORMS:
        _VALUE_FORMS[activation] = _value_form(activation)
    return _VALUE_FORMS[activation]


def _value_form(activation: Activation) -> sp.Expr | None:
    if activation.is_generic:
        return None
    body, derivative = activation.expression, activation.derivative.expression
    candidates = [derivative.xreplace({body: y})]
    value, logistic = stabilize(body)
    if isinstance(value, sp.Symbol) and logistic.get(value) == z:  # sigma(z) is the logistic of z itself
        rewritten, found = stabilize(derivative)
        if all(u == z for u in found.values()):
            candidates.append(rewritten.xreplace({s: y for s in found}))
    for form in candidates:
        if form.has(z) or form.atoms(sp.Function, sp.Piecewise) or form.free_symbols != {y}:
            continue
        if _agrees_at_samples(form, body, derivative):
            form = sp.expand(form)
            return sp.horner(form, y) if form.is_polynomial(y) else form  # y(1 - y): two operations
    return None


def _agrees_at_samples(form: sp.Expr, body: sp.Expr, derivative: sp.Expr) -> bool:
    """Whether ``form`` at ``y = body(z)`` equals ``derivative(z)`` at a few real points ``z``.

    A point where either side is not a finite real number (a square root of a negative number, a
    pole) counts as a disagreement: the form is then not used.
    """
    for p in (-3.5, -0.75, 0.0, 0.4, 2.25):
        difference = form.xreplace({y: body.xreplace({z: sp.Float(p)})}) - derivative.xreplace(
            {z: sp.Float(p)}
        )
        try:
            value = complex(sp.N(difference))
        except (TypeError, ValueError):
            return False
        if not abs(value) < 1e-12:  # also False for nan
            return False
    return True


def compile_activation(activation: Activation) -> tuple[str, Callable[..., Any]]:
    r"""Source and function ``f(xp, z)`` of an activation, lowered from its sympy expression.

    Raises
    ------
    NotDifferentiableError
        For an activation with no numeric meaning (a generic :math:`\sigma`).

    Examples
    --------
    >>> import numpy as np
    >>> from gradflow.cells.activations import sigmoid
    >>> source, f = compile_activation(sigmoid.derivative)
    >>> float(f(np, np.asarray(0.0)))
    0.25
    """
    if activation in _ACTIVATIONS:
        return _ACTIVATIONS[activation]
    if activation.is_generic:
        raise NotDifferentiableError(
            f"activation {activation.name!r} is an undefined function: it has no numeric "
            "values (use a concrete activation such as tanh to compute)"
        )
    expression, logistic = stabilize(activation.expression, complements=True)
    names: dict[sp.Basic, str] = {z: "z"}
    lines = []
    for s, u in logistic.items():
        code = ScalarPrinter(names, like="z").print(u)
        lines.append(f"    {s.name} = _sigmoid(xp, {code})")
        names[s] = s.name
    replacements, (reduced,) = sp.cse(expression, symbols=sp.numbered_symbols("c"))
    for symbol, value in replacements:
        lines.append(f"    {symbol.name} = {ScalarPrinter(names, like='z').print(value)}")
        names[symbol] = symbol.name
    body = ScalarPrinter(names, like="z").print(reduced)
    if not reduced.has(z, *logistic, *(r for r, _ in replacements)):  # a constant
        body = f"xp.full_like(z, {body})"
    source = "def activation(xp, z):\n" + "\n".join(lines) + ("\n" if lines else "") + f"    return {body}\n"
    function = _exec(source, "activation", f"<gradflow activation {activation.name}>")
    _ACTIVATIONS[activation] = (source, function)
    return source, function


def _exec(source: str, name: str, filename: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = dict(RUNTIME)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


class Emitter:
    r"""Writes one kernel: lines of ``name = code``, each subtree computed once.

    Parameters
    ----------
    params : set of str
        The cell's parameter names (their leaves read ``P[name]``).
    cotangents : dict of sympy MatrixSymbol to str
        Cotangent leaves and the source that reads them (``"G"``).
    value_forms : bool, default True
        :math:`\sigma'(u)` from :math:`\sigma(u)` where this kernel computed :math:`\sigma(u)`
        (pullbacks). The chain kernels pass False: the value forms are exactly 0 in saturation.
    """

    def __init__(
        self,
        params: set[str],
        cotangents: dict[sp.Basic, str] | None = None,
        value_forms: bool = True,
    ) -> None:
        self.params = params
        self.cotangents = cotangents or {}
        #: sigma'(u) from sigma(u) where this kernel has sigma(u) (see derivative_of_value)
        self.value_forms = value_forms
        self.lines: list[str] = []
        self.memo: dict[Any, str] = {}
        self.reads: set[tuple[str, int]] = set()
        self.globals: dict[str, Any] = dict(RUNTIME)
        self._count = 0
        self._activations: dict[Activation, str] = {}

    # --- bookkeeping -------------------------------------------------------------

    def assign(self, code: str) -> str:
        """Emit ``v<k> = code`` and return ``v<k>``."""
        name = f"v{self._count}"
        self._count += 1
        self.lines.append(f"    {name} = {code}")
        return name

    def function(self, name: str, arguments: str, returned: str) -> tuple[str, Callable[..., Any]]:
        """The source and the function of the kernel written so far."""
        body = "\n".join(self.lines) or "    pass"
        source = f"def {name}({arguments}):\n{body}\n    return {returned}\n"
        namespace = dict(self.globals)
        exec(compile(source, f"<gradflow kernel {name}>", "exec"), namespace)
        return source, namespace[name]

    def _memo(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def _leaf(self, node: sp.Basic) -> str | None:
        if isinstance(node, Signal):
            key = (node.name, node.lag)
            if not isinstance(key[1], int):
                raise NotDifferentiableError(f"signal {node} is not at a fixed offset from t")
            self.reads.add(key)  # type: ignore[arg-type]
            return f"R[{key!r}]"
        if node in self.cotangents:
            return self.cotangents[node]
        if isinstance(node, sp.MatrixSymbol | sp.Symbol) and node.name in self.params:
            return f"P[{node.name!r}]"
        return None

    def scalar(self, expr: sp.Basic) -> str:
        """A scalar coefficient (numbers and scalar parameters)."""
        names = {s: f"P[{s.name!r}]" for s in expr.free_symbols if s.name in self.params}
        return ScalarPrinter(names).print(expr)

    @staticmethod
    def _split(node: sp.MatMul) -> tuple[sp.Expr, list[MatrixExpr]]:
        scalars = [a for a in node.args if not isinstance(a, MatrixExpr)]
        return sp.Mul(*scalars), [a for a in node.args if isinstance(a, MatrixExpr)]

    # --- column vectors ----------------------------------------------------------

    def vector(self, node: sp.Basic) -> str:
        """Source of a column-vector expression, laid out (..., n)."""
        leaf = self._leaf(node)
        if leaf is not None:
            return leaf
        return self._memo(("vector", node), lambda: self._vector(node))

    def _vector(self, node: sp.Basic) -> str:
        if isinstance(node, sp.OneMatrix):
            return self.assign(f"_ones(xp, {int(node.shape[0])}, dtype)")
        if isinstance(node, sp.ZeroMatrix):
            return self.assign(f"_zeros(xp, {int(node.shape[0])}, dtype)")
        if isinstance(node, sp.MatAdd):
            return self.assign(" + ".join(self.vector(a) for a in node.args))
        if isinstance(node, sp.HadamardProduct):
            return self.assign(" * ".join(self.vector(a) for a in node.args))
        if isinstance(node, Elementwise):
            shortcut = self._from_value(node)
            if shortcut is not None:
                return shortcut
            _, function = compile_activation(node.activation)
            name = self._activations.setdefault(node.activation, f"act{len(self._activations)}")
            self.globals[name] = function
            return self.assign(f"{name}(xp, {self.vector(node.arg)})")
        if isinstance(node, Concat):
            return self.assign(f"_concat(xp, [{', '.join(self.vector(p) for p in node.parts)}])")
        if isinstance(node, Rows):
            start, size = int(node.args[1]), int(node.args[2])
            return self.assign(f"{self.vector(node.args[0])}[..., {start}:{start + size}]")
        if isinstance(node, sp.MatMul):
            coefficient, matrices = self._split(node)
            value = self.vector(matrices[-1])
            for factor in reversed(matrices[:-1]):
                value = self.apply(factor, value)
            if coefficient != 1:
                value = self.assign(f"{self.scalar(coefficient)} * {value}")
            return value
        raise NotDifferentiableError(f"cannot lower {node} ({type(node).__name__}) to a vector kernel")

    def _from_value(self, node: Elementwise) -> str | None:
        r""":math:`\sigma'(u)` from :math:`\sigma(u)` when this kernel already has it (see :func:`derivative_of_value`)."""
        primitive = node.activation.primitive
        if primitive is None or not self.value_forms:
            return None
        activated = Elementwise(primitive, node.arg)
        value = self.memo.get(("vector", activated))
        if value is None:
            return None
        form = derivative_of_value(primitive)
        if form is None:
            return None
        return self.assign(ScalarPrinter({y: value}, like=value).print(form))

    def apply(self, matrix: sp.Basic, value: str) -> str:
        """Source of ``matrix @ v`` for a batch of column vectors ``v`` (..., q)."""
        return self._memo(("apply", matrix, value), lambda: self._apply(matrix, value))

    def _apply(self, matrix: sp.Basic, value: str) -> str:
        if isinstance(matrix, sp.Identity):
            return value
        if isinstance(matrix, Diag):
            return self.assign(f"{self.vector(matrix.vector)} * {value}")
        if isinstance(matrix, sp.Transpose):
            inner = matrix.arg
            if isinstance(inner, sp.MatrixSymbol):
                return self.assign(f"xp.matmul({value}, {self._matrix(inner)})")
            if isinstance(inner, Diag | sp.Identity):
                return self._apply(inner, value)
            if isinstance(inner, sp.MatMul):
                coefficient, factors = self._split(inner)
                transposed = [sp.Transpose(f) for f in reversed(factors)]
                return self._apply(
                    sp.MatMul(coefficient, *transposed) if coefficient != 1 else sp.MatMul(*transposed), value
                )
            if isinstance(inner, sp.MatAdd):
                return self._apply(sp.MatAdd(*(sp.Transpose(a) for a in inner.args)), value)
            if isinstance(inner, sp.Transpose):
                return self._apply(inner.arg, value)
        if isinstance(matrix, sp.MatrixSymbol):
            return self.assign(f"xp.matmul({value}, {self._matrix(matrix)}.T)")
        if isinstance(matrix, sp.MatMul):
            coefficient, factors = self._split(matrix)
            for factor in reversed(factors):
                value = self.apply(factor, value)
            return value if coefficient == 1 else self.assign(f"{self.scalar(coefficient)} * {value}")
        if isinstance(matrix, sp.MatAdd):
            return self.assign(" + ".join(self.apply(a, value) for a in matrix.args))
        raise NotDifferentiableError(f"cannot lower the matrix {matrix} ({type(matrix).__name__})")

    def _matrix(self, symbol: sp.MatrixSymbol) -> str:
        leaf = self._leaf(symbol)
        if leaf is None:
            raise NotDifferentiableError(f"{symbol} is not a parameter of the cell")
        return leaf

    # --- 1x1 and outer products (pullbacks to parameters) ------------------------------

    def inner(self, node: sp.Basic) -> str:
        r"""Source of a :math:`1 \times 1` expression :math:`c\, u^\top (M \ldots v)`, laid out (...,)."""
        if isinstance(node, sp.MatAdd):
            return self.assign(" + ".join(self.inner(a) for a in node.args))
        if isinstance(node, sp.MatMul):
            coefficient, matrices = self._split(node)
            if isinstance(matrices[0], sp.Transpose):
                left = self.vector(matrices[0].arg)
                rest = matrices[1:]
                right = self.vector(rest[0] if len(rest) == 1 else sp.MatMul(*rest))
                value = self.assign(f"xp.sum({left} * {right}, axis=-1)")
                return value if coefficient == 1 else self.assign(f"{self.scalar(coefficient)} * {value}")
        raise NotDifferentiableError(f"cannot lower the scalar {node} ({type(node).__name__})")

    # --- Jacobians as right-multiplication operators -------------------------------------

    def right(self, value: str, matrix: sp.Basic) -> str | None:
        """Source of ``M @ matrix`` for a batch of matrices ``M`` (..., q, r); None for a zero matrix."""
        return self._memo(("right", matrix, value), lambda: self._right(value, matrix))

    def _right(self, value: str, matrix: sp.Basic) -> str | None:
        if isinstance(matrix, sp.ZeroMatrix):
            return None
        if isinstance(matrix, sp.Identity):
            return value
        if isinstance(matrix, Diag):
            return self.assign(f"{value} * xp.expand_dims({self.vector(matrix.vector)}, axis=-2)")
        if isinstance(matrix, sp.MatrixSymbol):
            return self.assign(f"xp.matmul({value}, {self._matrix(matrix)})")
        if isinstance(matrix, sp.Transpose) and isinstance(matrix.arg, sp.MatrixSymbol):
            return self.assign(f"xp.matmul({value}, {self._matrix(matrix.arg)}.T)")
        if isinstance(matrix, sp.MatMul):
            coefficient, factors = self._split(matrix)
            current: str | None = value
            for factor in _merge_diagonals(factors):
                current = self.right(current, factor) if current is not None else None
            if current is None or coefficient == 1:
                return current
            return self.assign(f"{self.scalar(coefficient)} * {current}")
        if isinstance(matrix, sp.MatAdd):
            diagonal = _as_diagonal(matrix)  # a sum of diagonals: one pass over M, not one a term
            if diagonal is not None:
                return self.right(value, diagonal)
            terms = [c for c in (self.right(value, a) for a in matrix.args) if c is not None]
            return self.assign(" + ".join(terms)) if terms else None
        if isinstance(matrix, sp.BlockMatrix):
            return self._right_blocks(value, matrix)
        raise NotDifferentiableError(f"cannot lower the Jacobian factor {matrix} ({type(matrix).__name__})")

    def _right_blocks(self, value: str, matrix: sp.BlockMatrix) -> str | None:
        blocks = matrix.blocks
        rows = [int(blocks[i, 0].shape[0]) for i in range(blocks.shape[0])]
        columns = []
        for j in range(blocks.shape[1]):
            offset, terms = 0, []
            for i, size in enumerate(rows):
                part = self.assign(f"{value}[..., {offset}:{offset + size}]")
                term = self.right(part, blocks[i, j])
                if term is not None:
                    terms.append(term)
                offset += size
            width = int(blocks[0, j].shape[1])
            if terms:
                columns.append(self.assign(" + ".join(terms)))
            else:
                columns.append(self.assign(f"xp.zeros((*{value}.shape[:-1], {width}), dtype=dtype)"))
        if len(columns) == 1:
            return columns[0]
        return self.assign(f"xp.concat([{', '.join(columns)}], axis=-1)")


def _merge_diagonals(factors: list[MatrixExpr]) -> list[MatrixExpr]:
    r"""``factors`` with each run of diagonal factors made one: :math:`\operatorname{diag}(a \odot b \odot \ldots)`.

    Applied to a batch of matrices ``M`` one by one, :math:`M \operatorname{diag}(a) \operatorname{diag}(b)`
    is a pass over ``M`` a factor; merged, the vectors are multiplied first (``n`` numbers) and
    ``M`` is passed over once. An LSTM's :math:`\partial h^{(t)}/\partial h^{(t-1)}` has runs of
    four: :math:`\operatorname{diag}(o) \operatorname{diag}(\tanh'(c)) \operatorname{diag}(i)
    \operatorname{diag}(1 - \tilde c^2) W_c`. A sum of diagonals counts as the diagonal of the sum
    (a GRU's :math:`\operatorname{diag}(h^{(t-1)}) - \operatorname{diag}(\tilde h)`: one pass, not
    four), and a diagonal before a closing sum is carried into its terms, where it merges with their
    own leading diagonals (the same product in every term is formed once: the emitter remembers it).
    """
    merged: list[MatrixExpr] = []
    for factor in factors:
        factor = _as_diagonal(factor) or factor
        if isinstance(factor, Diag) and merged and isinstance(merged[-1], Diag):
            merged[-1] = Diag(sp.HadamardProduct(merged[-1].vector, factor.vector))
        else:
            merged.append(factor)
    if len(merged) >= 2 and isinstance(merged[-1], sp.MatAdd) and isinstance(merged[-2], Diag):
        diagonal, total = merged[-2], merged[-1]
        terms = [sp.MatMul(diagonal, *(t.args if isinstance(t, sp.MatMul) else (t,))) for t in total.args]
        merged[-2:] = [sp.MatAdd(*terms)]
    return merged


def _as_diagonal(matrix: MatrixExpr) -> Diag | None:
    """``matrix`` as one ``Diag`` when it is a diagonal, a multiple of one, or a sum of those; else None."""
    if isinstance(matrix, Diag):
        return matrix
    if isinstance(matrix, sp.MatMul):
        coefficient, factors = Emitter._split(matrix)
        if len(factors) == 1 and isinstance(factors[0], Diag):
            vector = factors[0].vector
            return Diag(sp.MatMul(coefficient, vector) if coefficient != 1 else vector)
        return None
    if isinstance(matrix, sp.MatAdd):
        parts = [_as_diagonal(a) for a in matrix.args]
        if all(part is not None for part in parts):
            return Diag(sp.MatAdd(*(part.vector for part in parts if part is not None)))
    return None
