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

Cells running both ways
-----------------------
A bidirectional cell (or a stack with a bidirectional layer) has forward
states :math:`s_F` and backward states :math:`s_B`. Each *direction group*
:math:`G` has its own step Jacobian and chain (``states=`` of
:func:`state_jacobian`, :func:`chain`, :func:`adjoint`), and its own adjoint

.. math::
    \delta_G^{(t)} = \sum_{i} \Bigl(\frac{\partial s_G^{(i)}}{\partial s_G^{(t)}}\Bigr)^{\top} u_G^{(i)},
    \qquad
    u_G^{(i)} = \frac{\partial^{+} L}{\partial s_G^{(i)}}
      + \sum_{H \ne G} \Bigl(\frac{\partial^{+} s_H^{(i)}}{\partial s_G^{(i)}}\Bigr)^{\top} \delta_H^{(i)},

summed over :math:`i \ge t` for a forward group and :math:`i \le t` for a
backward one. The upstream :math:`u_G^{(i)}` adds what the other groups send
:math:`s_G^{(i)}` within step :math:`i` (a forward layer stacked on a
bidirectional one reads its output at the same :math:`t`). This is exact:
read the unrolled graph as a graph of *group steps* :math:`(G, t)`, each
computing :math:`s_G^{(t)}` from its own previous value and, within the
step, the other groups' values (which must meet only within a step, one way
round); then :math:`\delta_G^{(t)}` is the derivative of :math:`L` with
respect to :math:`s_G^{(t)}` through every later group step -- the group's
own later steps and the other groups' steps at the same :math:`t` -- with
the group's own states at :math:`t` taken as independent (as for the whole
state of a one-way cell). It is the total derivative
:math:`dL/ds^{(t)}` for a state that is alone in its group, and it differs from
:func:`adjoint_recursion`'s per-state :math:`\delta_s^{(t)}` (which holds every
other state of step :math:`t` fixed) by the term :math:`H` sends within step
:math:`t`. A group step pulls back through its own equations, the other
groups' states held fixed, so
:math:`\partial L/\partial\theta = \sum_t \sum_G (\partial^{+} s_G^{(t)}/\partial\theta)^\top \delta_G^{(t)}`.
Truncation keeps :math:`|i - t| \le \tau` in each group's sum, with the
other groups' truncated adjoints in the upstream (so a loss step reaches
:math:`t` through both groups with at most :math:`\tau` steps in each, as when
each direction runs its own truncated backpropagation); randomization
weights the backward group's steps by their own :math:`\bar\xi_k`
(:data:`xi_backward`), independent of the forward group's :math:`\xi_k`, so
that a path through both groups never meets the same draw twice.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal, t
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic._directions import (
    cross_upstream,
    direction_groups,
    group_cotangents,
    group_pullback,
    group_signal,
    select_group,
    senders,
)
from gradflow.symbolic._pathsum import PathSum
from gradflow.symbolic.jacobian import step_jacobian
from gradflow.symbolic.nodes import Adjoint, Chain, MatSum
from gradflow.symbolic.strategies import Full, Randomized, Strategy, Truncated, as_strategy
from gradflow.symbolic.vjp import step_pullback

__all__ = [
    "PathSum",
    "T",
    "adjoint",
    "adjoint_recursion",
    "chain",
    "direction_groups",
    "parameter_gradient",
    "state_jacobian",
    "state_signal",
    "xi",
    "xi_backward",
]

#: The sequence length.
T = sp.Symbol("T", integer=True, positive=True)
#: The index of the loss step in sums.
i = sp.Symbol("i", integer=True)
#: The index of the loss step in the sum of another group nested in a group's upstream.
_j = sp.Symbol("j", integer=True)
#: The random weights of randomized truncation, :math:`\xi_k`.
xi = sp.Function("xi", positive=True)
#: The random weights of the backward group's steps of a cell running both ways, :math:`\bar\xi_k`.
xi_backward = sp.Function("xi_bwd", positive=True)


def state_signal(cell: Cell, time: Any = None, states: Any = None) -> Signal:
    """The cell's state as one vector: the state itself, or ``s = [h; c; ...]`` for several.

    With ``states`` (a direction group, see :func:`adjoint`), the group's
    state: ``fwd.s`` or ``bwd.s`` when it has several.
    """
    time = t if time is None else sp.sympify(time)
    group = tuple(cell.states) if states is None else select_group(cell, states)
    return group_signal(cell, group, time)


def _lags(cell: Cell, group: tuple[str, ...] | None = None) -> tuple[int, ...]:
    lags = {d for state in (cell.states if group is None else group) for d in cell.delays(state)}
    return tuple(sorted(lags)) or (1,)


def state_jacobian(cell: Cell, lag: int = 1, *, states: Any = None) -> sp.Basic:
    r""":math:`J_t = \partial s^{(t)}/\partial s^{(t-\text{lag})}` of the whole state (a block matrix for several states).

    Parameters
    ----------
    cell : Cell
    lag : int, default 1
    states : str or sequence of str, optional
        A direction group (every forward, or every backward, state); needed
        for a cell running both ways. A backward group's :math:`J_t` is
        :math:`\partial s^{(t)}/\partial s^{(t+\text{lag})}`.

    Raises
    ------
    UnsupportedCellError
        For a cell running both ways without ``states``, or a selection of both directions.
    GradflowError
        For an unknown state or part of a direction group.

    Examples
    --------
    >>> import gradflow as gf
    >>> print(state_jacobian(gf.cells.lstm(forget_gate=False)).blocks[1, 1])
    I
    >>> print(state_jacobian(gf.cells.bidirectional(gf.cells.elman()), states="bwd.h"))
    diag(tanh'(bwd.W_h*bwd.h[t + 1] + bwd.W_x*x[t] + bwd.b))*bwd.W_h
    """
    names = select_group(cell, states)
    if len(names) == 1:
        return step_jacobian(cell, names[0], names[0], lag)
    rows = [[step_jacobian(cell, a, b, lag) for b in names] for a in names]
    return sp.BlockMatrix(rows)


def chain(cell: Cell, upper: Any, lower: Any, weight: Any = 1, *, states: Any = None) -> sp.Basic:
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
    states : str or sequence of str, optional
        The chain of one direction group, its other groups held fixed (see
        :func:`adjoint`); needed for a cell running both ways.

    Raises
    ------
    UnsupportedCellError
        For a cell running both ways without ``states``, or a backward
        group with delays.

    Examples
    --------
    >>> import gradflow as gf
    >>> print(gf.export.to_text(chain(gf.cells.elman(), 3, 1).doit()))
    diag(tanh'(W_h h^(2) + W_x x^(3) + b)) W_h diag(tanh'(W_h h^(1) + W_x x^(2) + b)) W_h
    >>> both = gf.cells.bidirectional(gf.cells.elman())
    >>> print(gf.export.to_text(chain(both, 2, 1, states=["bwd.h"]).doit()))
    diag(tanh'(bwd.W_h bwd.h^(2) + bwd.W_x x^(1) + bwd.b)) bwd.W_h
    """
    names = select_group(cell, states)
    backward = names[0] in cell.backward
    lags = _lags(cell, names)
    if lags == (1,):
        jacobian = state_jacobian(cell, states=names)
        factor = jacobian if weight == 1 else sp.MatMul(weight, jacobian)
        return Chain(factor, lower, upper, backward=backward)
    if backward:
        raise UnsupportedCellError(
            f"cell {cell.name!r}: path sums of backward cells with delays are not supported"
        )
    return PathSum(lower, upper, {d: state_jacobian(cell, d, states=names) for d in lags}, weight)


def _variant(strategy: Strategy) -> str:
    return (
        "" if isinstance(strategy, Full) else "truncated" if isinstance(strategy, Truncated) else "randomized"
    )


def adjoint(cell: Cell, strategy: Any = None, length: Any = T, *, states: Any = None) -> sp.Basic:
    r"""The adjoint :math:`\delta^{(t)}` as a sum over the loss steps, under a truncation strategy.

    .. math::
        \delta^{(t)} = \sum_{i=t}^{T'} w_{t,i}\,
        \Bigl(\frac{\partial s^{(i)}}{\partial s^{(t)}}\Bigr)^{\top} \frac{\partial^{+} L}{\partial s^{(i)}}

    with :math:`T' = T` and :math:`w = 1` for :class:`Full`, :math:`T' = \min(T, t+\tau)`
    for :class:`Truncated`, and :math:`\xi_k` inside the chain for :class:`Randomized`.
    A cell running backwards in time sums over :math:`1 \le i \le t` instead.

    Parameters
    ----------
    cell : Cell
    strategy : Full, Truncated, Randomized, int or None
    length : int or sympy expression, default T
    states : str or sequence of str, optional
        For a cell running both ways: the direction group (all its forward,
        or all its backward, states) whose adjoint :math:`\delta_G^{(t)}` to
        write. Its upstream adds what the other groups send it within each
        step, :math:`(\partial^{+} s_H^{(i)}/\partial s_G^{(i)})^\top \delta_H^{(i)}`,
        with :math:`\delta_H` left as a symbol (the module docstring says
        what :math:`\delta_G` is exactly); backward groups draw :data:`xi_backward`.

    Returns
    -------
    MatSum
        Unevaluated; ``.doit()`` expands it for integer ``t`` and ``length``.

    Raises
    ------
    UnsupportedCellError
        For a cell running both ways without ``states``, a selection of
        both directions, or directions that meet other than within a step.
    GradflowError
        For an unknown state or part of a direction group.

    Examples
    --------
    >>> import gradflow as gf
    >>> both = gf.cells.bidirectional(gf.cells.elman())
    >>> print(gf.export.to_text(adjoint(both, states="bwd.h")))
    Σ_{i=1}^{t} [(∏_{i≤k<t} [diag(tanh'(bwd.W_h bwd.h^(k+1) + bwd.W_x x^(k) + bwd.b)) bwd.W_h]ᵀ) ∂⁺L/∂bwd.h^(i)]
    """
    strategy = as_strategy(strategy)
    group = select_group(cell, states)
    return _adjoint(cell, group, strategy, length)


def _adjoint(cell: Cell, group: tuple[str, ...], strategy: Strategy, length: Any) -> MatSum:
    """The group's adjoint; the other groups' adjoints in its upstream are symbols."""
    backward = group[0] in cell.backward
    mixed = len(direction_groups(cell)) > 1
    upstream: Any = Adjoint(group_signal(cell, group, i), total=False)
    sent = cross_upstream(cell, group, _variant(strategy)) if mixed else None
    if sent is not None:
        upstream = sp.MatAdd(upstream, sent.xreplace({t: i}))
    draws = xi_backward if mixed and backward else xi
    weight = draws(t) if isinstance(strategy, Randomized) else 1
    if backward:  # ds(i)/ds(t) for i <= t: the chain from i up to t
        derivative = chain(cell, t, i, weight, states=group)
        lower = 1 if not isinstance(strategy, Truncated) else sp.Max(1, t - strategy.tau)
        limits: tuple[Any, Any, Any] = (i, lower, t)
    else:
        derivative = chain(cell, i, t, weight, states=group)
        upper = length if not isinstance(strategy, Truncated) else sp.Min(length, t + strategy.tau)
        limits = (i, t, upper)
    return MatSum(sp.MatMul(sp.Transpose(derivative), upstream), limits)


def _closed_adjoint(cell: Cell, group: tuple[str, ...], strategy: Strategy, length: Any) -> sp.Basic:
    """The group's adjoint with the other groups' adjoints in its upstream written out too."""
    found = _adjoint(cell, group, strategy, length)
    nested = {}
    for other in senders(cell, group):  # they read this group, so nothing reads them: no deeper nesting
        inner = _adjoint(cell, other, strategy, length).xreplace({i: _j}).xreplace({t: i})
        nested[Adjoint(group_signal(cell, other, i), total=True, variant=_variant(strategy))] = inner
    return found.xreplace(nested) if nested else found


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
    blocks go to each state. Under :class:`Full` without ``expand_adjoint``
    the adjoints are each state's own :math:`\delta_s^{(t)}`
    (:func:`adjoint_recursion`). For a cell running both ways, each direction
    group's part of the step pulls back its own group's adjoint (the other
    groups' states held fixed), written out with the other groups' adjoints
    nested in its upstream (index :math:`j`); see the module docstring.

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
    UnsupportedCellError
        For a formula written out for a cell running both ways whose
        directions meet other than within a step, one way round.

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
    lhs = sp.Symbol(rf"\frac{{\partial L}}{{\partial {param}}}")
    if not (expand_adjoint or not isinstance(strategy, Full)):
        # each state's own adjoint, defined by adjoint_recursion: any cell, any direction
        cotangents = {name: Adjoint(cell.signal(name, t), total=True) for name in cell.states}
        return sp.Eq(lhs, MatSum(step_pullback(cell, cotangents, theta), (t, 1, length)), evaluate=False)
    # each direction group's adjoint, written out by adjoint(), goes to its own states' blocks
    terms, adjoints = [], {}
    for group in direction_groups(cell).values():
        whole = Adjoint(group_signal(cell, group, t), total=True)
        pulled = group_pullback(cell, group, group_cotangents(cell, group, whole), theta)
        if not isinstance(pulled, sp.ZeroMatrix):
            terms.append(pulled)
            adjoints[whole] = _closed_adjoint(cell, group, strategy, length)
    per_step = (terms[0] if len(terms) == 1 else sp.MatAdd(*terms)) if terms else pulled
    # the adjoint under the strategy replaces the exact one inside the step's pullback
    per_step = per_step.xreplace(adjoints)
    return sp.Eq(lhs, MatSum(per_step, (t, 1, length)), evaluate=False)
