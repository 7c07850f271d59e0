"""The pullback (vector--Jacobian product) kernels of a cell's nodes, printed from the symbolic pullbacks.

Private to :mod:`gradflow.numeric.compiled` (:meth:`Program.vjp` builds them on first use). Each
node's kernel is :func:`gradflow.symbolic.vjp.pullback` of its expression, lowered by
:class:`~gradflow.numeric.lower.Emitter`, reading the forward kernel's saved values instead of
recomputing them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal
from gradflow.errors import GradflowError, NotDifferentiableError
from gradflow.numeric.lower import Emitter
from gradflow.symbolic.vjp import pullback

__all__ = ["VJP", "ParamTerm", "build_vjp", "lowering_error"]


@dataclass(frozen=True)
class ParamTerm:
    r"""One term of a node's pullback to a parameter.

    ``kind`` is ``"vector"`` (a column, summed over the batch), ``"scalar"``
    (a 1×1, summed) or ``"outer"`` (:math:`\\ell r^\\top`, the weight gradient's
    outer product); for an outer term ``right`` is a signal read ``(name, lag)``
    taken from the trajectory, or ``None`` when the kernel computes it.
    """

    param: str
    kind: str
    right: tuple[str, int] | None = None


@dataclass(frozen=True)
class VJP:
    r"""A node's vector--Jacobian product kernel.

    ``function(xp, P, R, F, G, Gs, dtype)`` (``F``: the forward kernel's saved
    values) returns ``(reads, terms, lefts)``: the pullbacks to each key of
    ``reads`` (``(name, lag)``, inputs included; ``None`` for none), one value
    per :class:`ParamTerm` (an ``(left, right)`` pair for outer terms), and one
    vector :math:`\ell` per entry ``(k, W)`` of ``deferred``: a term
    :math:`W^\top \ell` of the pullback to ``reads[k]`` that the caller forms
    later, in one product with the other terms of the same target (the four
    gates' :math:`\sum_g W_g^\top \ell_g` as one product
    :math:`[W_f; W_i; W_o; W_c]^\top [\ell_f; \ell_i; \ell_o; \ell_c]`) or, for
    an input, with every step's (:math:`L W` over all steps at once).
    Only reads of an input, or of a node at another time, are deferred.
    """

    reads: tuple[tuple[str, int], ...]
    terms: tuple[ParamTerm, ...]
    function: Callable[..., Any]
    source: str
    deferred: tuple[tuple[int, str], ...] = ()
    #: the indices ``k`` of the saved values ``F[k]`` the kernel reads (the forward keeps only these)
    uses: frozenset[int] = frozenset()
    #: the keys of ``reads`` the kernel itself reads from ``R`` (a gate's pullback reads none: it has
    #: the saved gate), so the caller looks up only these
    needs: tuple[tuple[str, int], ...] = ()


def lowering_error(cell: Cell, what: str, err: Exception) -> GradflowError:
    """The error for a part of ``cell`` that cannot be lowered to array code, naming the cell and the part."""
    return NotDifferentiableError(f"cell {cell.name!r}: cannot compile {what}: {err}")


def build_vjp(cell: Cell, name: str, budget: bool, saved: tuple[sp.Basic, ...]) -> VJP:
    """The :class:`VJP` kernel of node ``name``; ``saved``: the subtrees its forward kernel keeps.

    With ``budget`` the cotangent ``G`` carries a leading truncation axis and ``Gs`` is its sum
    (the parameter terms need only the sum).
    """
    kind = dict((n, k) for k, n in cell.order)[name]
    expr = cell.expression(kind, name)
    rows = expr.shape[0]
    g = sp.MatrixSymbol("__g", rows, 1)
    gs = sp.MatrixSymbol("__gs", rows, 1) if budget else g
    emitter = Emitter(set(cell.params), {g: "G", gs: "Gs"})
    for k, subtree in enumerate(saved):  # forward values, read back instead of recomputed
        emitter.memo[("vector", subtree)] = f"F[{k}]"
    signals = sorted(expr.atoms(Signal), key=lambda s: (s.name, int(s.lag)))
    try:
        read_codes, deferred, left_codes = [], [], []
        for k, signal in enumerate(signals):
            back = pullback(expr, signal, g)
            if isinstance(back, sp.ZeroMatrix):
                read_codes.append("None")
                continue
            now = []
            for term in back.args if isinstance(back, sp.MatAdd) else (back,):
                later = _transposed_product(cell, term) if signal.role == "input" or signal.lag != 0 else None
                if later is None:
                    now.append(term)
                else:
                    deferred.append((k, later[0]))
                    left_codes.append(emitter.vector(later[1]))
            read_codes.append(emitter.vector(now[0] if len(now) == 1 else sp.MatAdd(*now)) if now else "None")
        terms: list[ParamTerm] = []
        term_codes: list[str] = []
        for param in sorted(cell.params):
            symbol = cell.parameter(param)
            if not expr.has(symbol):
                continue
            back = pullback(expr, symbol, gs)
            for term in back.args if isinstance(back, sp.MatAdd) else (back,):
                spec, code = _param_term(emitter, param, symbol, term)
                terms.append(spec)
                term_codes.append(code)
        returned = ", ".join(
            f"({', '.join(c)}{',' if c else ''})" for c in (read_codes, term_codes, left_codes)
        )
        source, function = emitter.function("vjp", "xp, P, R, F, G, Gs, dtype", returned)
    except NotDifferentiableError as err:
        raise lowering_error(cell, f"the pullbacks of {kind} {name}", err) from err
    reads = tuple((s.name, int(s.lag)) for s in signals)
    uses = frozenset(int(k) for k in re.findall(r"\bF\[(\d+)\]", source))
    needs = tuple(key for key in reads if key in emitter.reads)
    return VJP(reads, tuple(terms), function, source, tuple(deferred), uses, needs)


def _transposed_product(cell: Cell, term: sp.Basic) -> tuple[str, sp.Basic] | None:
    r"""``(W, ell)`` for a pullback term :math:`c\, W^\top \ell` with :math:`W` a matrix parameter, else None."""
    if not isinstance(term, sp.MatMul):
        return None
    coefficient, matrices = Emitter._split(term)
    first = matrices[0]
    if not (
        len(matrices) >= 2
        and isinstance(first, sp.Transpose)
        and isinstance(first.arg, sp.MatrixSymbol)
        and first.arg.name in cell.params
    ):
        return None
    rest = matrices[1:]
    left = rest[0] if len(rest) == 1 else sp.MatMul(*rest)
    return first.arg.name, (left if coefficient == 1 else sp.MatMul(coefficient, left))


def _param_term(emitter: Emitter, param: str, symbol: sp.Basic, term: sp.Basic) -> tuple[ParamTerm, str]:
    if not isinstance(symbol, sp.MatrixSymbol):
        return ParamTerm(param, "scalar"), emitter.inner(term)
    if isinstance(term, sp.MatMul):
        coefficient, matrices = emitter._split(term)
        last = matrices[-1]
        outer = (
            len(matrices) >= 2
            and isinstance(last, sp.Transpose)
            and last.arg.shape[1] == 1
            and not isinstance(matrices[0], sp.Transpose)
        )
        if outer:
            rest = matrices[:-1]
            left_expr = rest[0] if len(rest) == 1 else sp.MatMul(*rest)
            if coefficient != 1:
                left_expr = sp.MatMul(coefficient, left_expr)
            left = emitter.vector(left_expr)
            right_node = last.arg
            if isinstance(right_node, Signal):
                return ParamTerm(param, "outer", (right_node.name, int(right_node.lag))), f"({left}, None)"
            return ParamTerm(param, "outer"), f"({left}, {emitter.vector(right_node)})"
    return ParamTerm(param, "vector"), emitter.vector(term)
