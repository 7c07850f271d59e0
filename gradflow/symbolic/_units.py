r"""Hochreiter's units: a cell read as a net of units, the symbols of the error flow, the scaling verdict.

Private to :mod:`gradflow.symbolic.hochreiter` (split from it, as it passed 400
lines), which re-exports :class:`ErrorSignal`, :class:`OpaqueDerivative` and
:func:`classify_scaling`; the module docstring there states the convention
(:math:`w_{ij} = (W_h)_{ij}`, the connection from unit j to unit i).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Elementwise, t
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic.explicit import explicit
from gradflow.symbolic.jacobian import Diag, step_jacobian

__all__ = ["ErrorSignal", "OpaqueDerivative", "Scaling", "classify_scaling"]

#: What :func:`classify_scaling` can answer.
Scaling = Literal["exploding", "vanishing", "constant", "undetermined"]


class ErrorSignal(sp.Function):  # type: ignore[misc]
    r""":math:`\vartheta_j(\text{time})`, Hochreiter's error at unit j's net input.

    ``ErrorSignal(j, time)``; the time is an expression of :data:`~gradflow.cells.t`,
    so ``expr.xreplace({t: t - 1})`` shifts it.

    Examples
    --------
    >>> import sympy as sp
    >>> from gradflow.cells import t
    >>> sp.latex(ErrorSignal(1, t + 1))
    '\\vartheta_{1}\\left(t + 1\\right)'
    """

    nargs = 2
    is_real = True

    def _latex(self, printer: Any) -> str:
        unit, time = self.args
        return rf"\vartheta_{{{printer._print(unit)}}}\left({printer._print(time)}\right)"

    def _sympystr(self, printer: Any) -> str:
        unit, time = self.args
        return f"vartheta_{printer._print(unit)}({printer._print(time)})"


class OpaqueDerivative(sp.Function):  # type: ignore[misc]
    r""":math:`f'_j(\text{time})`: :math:`f'_j(\mathrm{net}_j(\text{time}))` left unexpanded.

    ``OpaqueDerivative(j, time)``, shifted like :class:`ErrorSignal`.

    Examples
    --------
    >>> import sympy as sp
    >>> from gradflow.cells import t
    >>> sp.latex(OpaqueDerivative(0, t - 2))
    "f'_{0}\\left(t - 2\\right)"
    """

    nargs = 2
    is_real = True

    def _latex(self, printer: Any) -> str:
        unit, time = self.args
        return rf"f'_{{{printer._print(unit)}}}\left({printer._print(time)}\right)"

    def _sympystr(self, printer: Any) -> str:
        unit, time = self.args
        return f"f'_{printer._print(unit)}({printer._print(time)})"


@dataclass(frozen=True)
class _Units:
    """A cell read as Hochreiter's units: state = f(net), step Jacobian diag(f'(net)) R."""

    cell: Cell
    state: str
    derivative: Elementwise  # f'(net(t)), a column
    weights: MatrixExpr  # R (n × n): W_h, or diag(u) for IndRNN; w_ij = R[i, j]


def _units(cell: Cell, caller: str) -> _Units:
    """Check that ``cell`` is a net of Hochreiter's units; return its parts."""
    if not isinstance(cell, Cell):
        raise GradflowError(f"{caller} needs a gradflow Cell, got {type(cell).__name__} {cell!r}")
    need = f"{caller} needs a single-state cell h = f(W h[t-1] + ...), such as elman or indrnn"
    if len(cell.states) != 1:
        raise UnsupportedCellError(
            f"{need}; cell {cell.name!r} has states {', '.join(cell.states)} "
            "(for the LSTM's constant error carousel use cec_path)"
        )
    (state,) = cell.states
    if state in cell.backward:
        raise UnsupportedCellError(f"{need}; state {state!r} of cell {cell.name!r} runs backwards in time")
    if cell.delays(state) != (1,):
        raise UnsupportedCellError(
            f"{need}; cell {cell.name!r} reads {state!r} at the delays {cell.delays(state)}, "
            "not only one step back"
        )
    update = cell.updates[state]
    jacobian = step_jacobian(cell, state)
    why = ""
    if not isinstance(update, Elementwise):
        why = f"its update {state} = {update} is not an activation of a net input"
    elif update.activation.derivative.expression == 1 and _is_weight_matrix(jacobian, cell):
        # a linear unit: the symbolic layer drops diag(id'(net)) = I; Hochreiter keeps f' = 1 in view
        return _Units(cell, state, Elementwise(update.activation.derivative, update.arg), jacobian)
    elif not (isinstance(jacobian, sp.MatMul) and len(jacobian.args) == 2):
        why = f"its step Jacobian is {jacobian}, not diag(f'(net)) W"
    else:
        diag, weights = jacobian.args
        slope = Elementwise(update.activation.derivative, update.arg)
        if diag != Diag(slope) or not _is_weight_matrix(weights, cell):
            why = f"its step Jacobian is {jacobian}, not diag({slope}) W with W a recurrent parameter"
        else:
            return _Units(cell, state, slope, weights)
    raise UnsupportedCellError(f"{need}; cell {cell.name!r} is not: {why}")


def _is_weight_matrix(weights: sp.Basic, cell: Cell) -> bool:
    """A square matrix parameter, or diag(u) of a vector parameter (IndRNN)."""
    if isinstance(weights, Diag):
        weights = weights.vector
    return isinstance(weights, sp.MatrixSymbol) and weights.name in cell.params


def _slopes(units: _Units, step: Any, m: int, opaque: bool) -> list[sp.Expr]:
    r""":math:`f'_j(\mathrm{net}_j(t-m))` for every unit j: explicit, or opaque symbols."""
    n = int(units.cell.states[units.state])
    if opaque:
        return [OpaqueDerivative(j, t - m) for j in range(n)]
    column = explicit(units.derivative.xreplace({t: t - m}), units.cell, step)
    return [column[j, 0] for j in range(n)]


def classify_scaling(factor: Any) -> Scaling:
    r"""Hochreiter's reading of a factor :math:`|f' w|`: exploding, vanishing or constant.

    If :math:`|f'_{l_m}(\mathrm{net}_{l_m}(t-m))\, w_{l_{m-1} l_m}| > 1` for
    every step m of a path, the path's product grows exponentially with q
    (the error explodes); below 1 it decays exponentially (it vanishes);
    exactly 1 is constant error flow, the CEC (:func:`cec_condition`).

    Parameters
    ----------
    factor : number or sympy expression
        A value of :func:`scaling_factor`, with values substituted.

    Returns
    -------
    {"exploding", "vanishing", "constant", "undetermined"}
        "undetermined" when sympy cannot decide how the factor compares
        with 1 (it still holds symbols): never a guess.

    Raises
    ------
    GradflowError
        If ``factor`` is not a real scalar.

    Examples
    --------
    >>> classify_scaling(2), classify_scaling(0.25), classify_scaling(1)
    ('exploding', 'vanishing', 'constant')

    References
    ----------
    S. Hochreiter, J. Schmidhuber, Neural Computation 9(8), 1997, §3.1.1.
    """
    try:
        value = sp.sympify(factor)
    except (sp.SympifyError, TypeError) as err:
        raise GradflowError(f"classify_scaling needs a real scalar, got {factor!r}") from err
    if not isinstance(value, sp.Expr) or isinstance(value, MatrixExpr) or value.is_real is False:
        raise GradflowError(f"classify_scaling needs a real scalar, got {factor!r}")
    excess = value - 1
    if excess.is_zero:
        return "constant"
    if excess.is_positive:
        return "exploding"
    if excess.is_negative:
        return "vanishing"
    return "undetermined"
