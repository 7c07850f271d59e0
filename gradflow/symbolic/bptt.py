r"""Backpropagation through time, as formulas: chains, adjoints and parameter gradients.

Notation (CS224n, d2l): the cell's state :math:`s^{(t)}` (the stacked
:math:`[h; c]` for several states), step Jacobians
:math:`J_t = \partial s^{(t)}/\partial s^{(t-1)}` (numerator layout), the
direct gradient :math:`\partial^{+} L/\partial s^{(i)}` that the loss at
step :math:`i` contributes, and the adjoint

.. math::
    \delta^{(t)} = \Bigl(\frac{dL}{ds^{(t)}}\Bigr)^{\top}
    = \sum_{i=t}^{T} \Bigl(\frac{\partial s^{(i)}}{\partial s^{(t)}}\Bigr)^{\top}
      \frac{\partial^{+} L}{\partial s^{(i)}},
    \qquad
    \frac{\partial L}{\partial \theta} = \sum_{t=1}^{T}
      \Bigl(\frac{\partial^{+} s^{(t)}}{\partial \theta}\Bigr)^{\top} \delta^{(t)} .

:math:`\partial s^{(i)}/\partial s^{(t)} = \prod_{t<k\le i} J_k` for a cell
read one step back; with delays it is the sum over the paths of the
unrolled graph (:class:`PathSum`). Truncation (:class:`~gradflow.symbolic.strategies.Truncated`)
keeps :math:`i \le t + \tau`; randomization (:class:`~gradflow.symbolic.strategies.Randomized`)
multiplies every step Jacobian :math:`J_k` by :math:`\xi_k`.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal, t
from gradflow.errors import GradflowError
from gradflow.symbolic.jacobian import step_jacobian
from gradflow.symbolic.nodes import BOUND_T, Adjoint, Chain, MatSum, Rows
from gradflow.symbolic.strategies import Full, Randomized, Truncated, as_strategy
from gradflow.symbolic.vjp import step_pullback

__all__ = [
    "PathSum",
    "T",
    "adjoint",
    "adjoint_recursion",
    "chain",
    "parameter_gradient",
    "state_jacobian",
    "state_signal",
    "xi",
]

#: The sequence length.
T = sp.Symbol("T", integer=True, positive=True)
#: The index of the loss step in sums.
i = sp.Symbol("i", integer=True)
#: The random weights of randomized truncation, :math:`\xi_k`.
xi = sp.Function("xi", positive=True)


def state_signal(cell: Cell, time: Any = None) -> Signal:
    """The cell's state as one vector: the state itself, or ``s = [h; c; ...]`` for several."""
    time = t if time is None else sp.sympify(time)
    if len(cell.states) == 1:
        (name,) = cell.states
        return cell.signal(name, time)
    size = sp.Add(*cell.states.values())
    return Signal("s", size, time, "state")


def _lags(cell: Cell) -> tuple[int, ...]:
    lags = {d for state in cell.states for d in cell.delays(state)}
    return tuple(sorted(lags)) or (1,)


def _direction(cell: Cell) -> int:
    backward = set(cell.backward)
    if backward and backward != set(cell.states):
        raise GradflowError(
            f"cell {cell.name!r} mixes states running forwards and backwards in time; "
            "derive each direction's states separately (its step Jacobians are available per state)"
        )
    return -1 if backward else 1


def state_jacobian(cell: Cell, lag: int = 1) -> sp.Basic:
    r""":math:`J_t = \partial s^{(t)}/\partial s^{(t-\text{lag})}` of the whole state (a block matrix for several states).

    Examples
    --------
    >>> import gradflow as gf
    >>> print(state_jacobian(gf.cells.lstm(forget_gate=False)).blocks[1, 1])
    I
    """
    names = list(cell.states)
    if len(names) == 1:
        return step_jacobian(cell, names[0], names[0], lag)
    rows = [[step_jacobian(cell, a, b, lag) for b in names] for a in names]
    return sp.BlockMatrix(rows)


class PathSum(MatrixExpr):  # type: ignore[misc]
    r""":math:`\partial s^{(i)}/\partial s^{(j)}` of a cell with delays: the sum over graph paths.

    With step Jacobians :math:`J^{[d]}_k = \partial s^{(k)}/\partial s^{(k-d)}`
    for each delay :math:`d`, :math:`D_j = I` and
    :math:`D_k = \sum_d w_k J^{[d]}_k D_{k-d}` (terms reaching before
    :math:`j` dropped), :math:`D_i` is the sum over every path from
    :math:`s^{(j)}` to :math:`s^{(i)}` of the product of its edges'
    Jacobians -- as many paths as compositions of :math:`i-j` into the
    delays (seed 003). ``weight`` (in ``t``) multiplies each step: 1, or
    :math:`\xi_k` for randomized truncation. ``doit()`` expands it for integer bounds.
    """

    is_commutative = False

    def __new__(cls, lower: Any, upper: Any, jacobians: Any, weight: Any = 1) -> PathSum:
        """Build the node; ``jacobians`` maps each delay to its step Jacobian in ``t``.

        The templates are stored in the bound variable :data:`~gradflow.symbolic.nodes.BOUND_T`,
        so that shifting the whole expression in ``t`` leaves them intact.
        """
        if isinstance(jacobians, dict):
            bound = {t: BOUND_T}
            pairs = sp.Tuple(
                *(sp.Tuple(sp.Integer(d), jacobians[d].xreplace(bound)) for d in sorted(jacobians))
            )
            weight = sp.sympify(weight).xreplace(bound)
        else:  # rebuilt by sympy from its own args
            pairs = jacobians
        return super().__new__(cls, sp.sympify(lower), sp.sympify(upper), pairs, sp.sympify(weight))  # type: ignore[no-any-return]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """Square, the size of the state."""
        return self.args[2][0][1].shape  # type: ignore[no-any-return]

    def doit(self, **hints: Any) -> sp.Basic:
        """The explicit path sum for integer bounds (shared subproducts, linear in i - j)."""
        lower, upper, pairs, weight = self.args
        length = sp.expand(upper - lower)
        if not length.is_Integer:
            return self
        size = self.shape[0]
        memo: dict[int, Any] = {0: sp.Identity(size)}
        for k in range(1, int(length) + 1):
            terms = []
            for d, jacobian in pairs:
                if k - int(d) < 0:
                    continue
                step = jacobian.xreplace({BOUND_T: lower + k})
                factor = sp.MatMul(weight.xreplace({BOUND_T: lower + k}), step) if weight != 1 else step
                before = memo[k - int(d)]
                terms.append(factor if isinstance(before, sp.Identity) else sp.MatMul(factor, before))
            memo[k] = sp.MatAdd(*terms) if len(terms) > 1 else terms[0]
        return memo[int(length)]

    def _sympystr(self, printer: Any) -> str:
        return f"d s[{printer._print(self.args[1])}]/d s[{printer._print(self.args[0])}]"


def chain(cell: Cell, upper: Any, lower: Any, weight: Any = 1) -> sp.Basic:
    r""":math:`\partial s^{(i)}/\partial s^{(j)}` for the cell's whole state, unevaluated.

    A :class:`~gradflow.symbolic.nodes.Chain` :math:`\prod_{j<t\le i} J_t`
    when the cell reads its states one step back; a :class:`PathSum` with
    delays. For a cell running backwards in time, the product runs the
    other way (:math:`\partial s^{(j)}/\partial s^{(i)}` for :math:`j < i`).
    Its cost does not depend on :math:`i - j`; ``.doit()`` multiplies out.

    Parameters
    ----------
    cell : Cell
    upper, lower : int or sympy expression
        :math:`i` and :math:`j`.
    weight : sympy expression in t, default 1
        A scalar multiplying each step (``xi(t)`` for randomized truncation).

    Examples
    --------
    >>> import gradflow as gf
    >>> print(gf.export.to_text(chain(gf.cells.elman(), 3, 1).doit()))
    diag(tanh'(W_h h^(2) + W_x x^(3) + b)) W_h diag(tanh'(W_h h^(1) + W_x x^(2) + b)) W_h
    """
    direction = _direction(cell)
    lags = _lags(cell)
    if lags == (1,):
        jacobian = state_jacobian(cell)
        factor = jacobian if weight == 1 else sp.MatMul(weight, jacobian)
        return Chain(factor, lower, upper, backward=direction < 0)
    if direction < 0:
        raise GradflowError(f"cell {cell.name!r}: path sums of backward cells with delays are not supported")
    return PathSum(lower, upper, {d: state_jacobian(cell, d) for d in lags}, weight)


def adjoint(cell: Cell, strategy: Any = None, length: Any = T) -> sp.Basic:
    r"""The adjoint :math:`\delta^{(t)}` as a sum over the loss steps, under a truncation strategy.

    .. math::
        \delta^{(t)} = \sum_{i=t}^{T'} w_{t,i}\,
        \Bigl(\frac{\partial s^{(i)}}{\partial s^{(t)}}\Bigr)^{\top} \frac{\partial^{+} L}{\partial s^{(i)}}

    with :math:`T' = T` and :math:`w = 1` for :class:`Full`, :math:`T' = \min(T, t+\tau)`
    for :class:`Truncated`, and :math:`\xi_k` inside the chain for :class:`Randomized`.
    A cell running backwards in time sums over :math:`1 \le i \le t` instead.
    """
    strategy = as_strategy(strategy)
    backward = _direction(cell) < 0
    upstream = Adjoint(state_signal(cell, i), total=False)
    weight = xi(t) if isinstance(strategy, Randomized) else 1
    if backward:  # ds(i)/ds(t) for i <= t: the chain from i up to t
        derivative = chain(cell, t, i, weight)
        lower = 1 if not isinstance(strategy, Truncated) else sp.Max(1, t - strategy.tau)
        limits: tuple[Any, Any, Any] = (i, lower, t)
    else:
        derivative = chain(cell, i, t, weight)
        upper = length if not isinstance(strategy, Truncated) else sp.Min(length, t + strategy.tau)
        limits = (i, t, upper)
    return MatSum(sp.MatMul(sp.Transpose(derivative), upstream), limits)


def adjoint_recursion(cell: Cell) -> list[sp.Eq]:
    r"""The backward recursion of every state's adjoint, one equation per state.

    .. math::
        \delta_s^{(t)} = \frac{\partial^{+} L}{\partial s^{(t)}}
        + \sum_{d} \Bigl(\frac{\partial}{\partial s^{(t)}} \text{step } t+d\Bigr)^{\top} \delta^{(t+d)}

    built by pulling the later adjoints back through the cell's own
    equations (:func:`~gradflow.symbolic.vjp.step_pullback`).
    """
    equations = []
    for name in cell.states:
        sign = -1 if name in cell.backward else 1  # who reads s(t) at a lag: its own direction
        terms: list[Any] = [Adjoint(cell.signal(name, t), total=False)]
        for lag in _lags(cell):
            # step t + lag reads s^(t); write it at time t with s^(t - lag), then shift
            cotangents = {s: Adjoint(cell.signal(s, t), total=True) for s in cell.states}
            back = step_pullback(cell, cotangents, cell.signal(name, t - sign * lag))
            if not isinstance(back, sp.ZeroMatrix):
                terms.append(back.xreplace({t: t + sign * lag}))
        equations.append(sp.Eq(Adjoint(cell.signal(name, t), total=True), sp.MatAdd(*terms), evaluate=False))
    return equations


def parameter_gradient(
    cell: Cell, param: str, strategy: Any = None, length: Any = T, *, expand_adjoint: bool = False
) -> sp.Eq:
    r""":math:`\partial L/\partial\theta = \sum_{t=1}^{T} (\partial^{+} s^{(t)}/\partial\theta)^\top \delta^{(t)}`.

    The pullback through one step (the readable outer-product form of
    :mod:`~gradflow.symbolic.vjp`) of the adjoint :math:`\delta^{(t)}` of
    :func:`adjoint` under ``strategy``; for several states the adjoint's
    blocks go to each state.

    Parameters
    ----------
    cell : Cell
    param : str
        A parameter of the cell.
    strategy : Full, Truncated, Randomized, int or None
    length : int or sympy expression, default T
    expand_adjoint : bool, default False
        Under :class:`Full`, write :math:`\delta^{(t)}` out as its sum over the
        loss steps (it is always written out under the other strategies).

    Returns
    -------
    sympy.Eq
        ``Eq(symbol of dL/dθ, formula)``; the formula is a :class:`~gradflow.symbolic.nodes.MatSum`,
        and ``.doit()`` expands it for an integer length.

    Raises
    ------
    GradflowError
        For a parameter the cell does not have.

    Examples
    --------
    >>> import gradflow as gf
    >>> eq = parameter_gradient(gf.cells.elman(), "W_x")
    >>> print(gf.export.to_text(eq.rhs))
    Σ_{t=1}^{T} [(tanh'(W_h h^(t-1) + W_x x^(t) + b) ∘ δ_h^(t)) x^(t)ᵀ]
    """
    if param not in cell.params:
        raise GradflowError(f"cell {cell.name!r} has no parameter {param!r}; it has {', '.join(cell.params)}")
    strategy = as_strategy(strategy)
    theta = cell.parameter(param)
    names = list(cell.states)
    expand = expand_adjoint or not isinstance(strategy, Full)
    if not expand:  # each state's own adjoint, defined by adjoint_recursion: any cell, any direction
        cotangents: dict[str, Any] = {name: Adjoint(cell.signal(name, t), total=True) for name in names}
    else:  # the blocks of the whole state's adjoint, which adjoint() writes out
        state = state_signal(cell)
        offset: sp.Expr = sp.S.Zero
        cotangents = {}
        for name in names:
            whole = Adjoint(state, total=True)
            cotangents[name] = whole if len(names) == 1 else Rows(whole, offset, cell.states[name])
            offset = offset + cell.states[name]
    per_step = step_pullback(cell, cotangents, theta)
    if expand:
        # the adjoint under the strategy replaces the exact one inside the step's pullback
        per_step = per_step.xreplace({Adjoint(state, total=True): adjoint(cell, strategy, length)})
    lhs = sp.Symbol(rf"\frac{{\partial L}}{{\partial {param}}}")
    return sp.Eq(lhs, MatSum(per_step, (t, 1, length)), evaluate=False)
