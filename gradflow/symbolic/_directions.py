r"""A cell's states grouped by the direction they run in time, for cells that run both ways.

Private to :mod:`gradflow.symbolic.bptt`. A bidirectional cell, or a stack with a
bidirectional layer, has *forward* states (computed from :math:`s^{(t-1)}`) and
*backward* states (computed from :math:`s^{(t+1)}`). Each direction group has
its own step Jacobian and chain; the formulas of :mod:`~gradflow.symbolic.bptt`
need the groups to meet only within a step (a layer reading the bidirectional
layer's output at the same :math:`t`), and in one direction only: group
:math:`H` may read group :math:`G` at step :math:`t`, or :math:`G` read
:math:`H`, not both. Within a step, a group's pullback treats the other
groups' states as leaves (:func:`group_pullback`); what group :math:`H` sends
to :math:`s_G^{(t)}` in step :math:`t` is :func:`cross_upstream`.
"""

from __future__ import annotations

from typing import Any, cast

import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal, t
from gradflow.errors import GradflowError, UnsupportedCellError
from gradflow.symbolic.nodes import Adjoint, Rows
from gradflow.symbolic.vjp import step_pullback

__all__ = [
    "cross_upstream",
    "direction_groups",
    "group_cotangents",
    "group_pullback",
    "group_signal",
    "select_group",
    "senders",
]

FORWARD, BACKWARD = "forward", "backward"
_LABELS = {FORWARD: "fwd.s", BACKWARD: "bwd.s"}  # a group of several states, as one vector


def direction_groups(cell: Cell) -> dict[str, tuple[str, ...]]:
    """The cell's states by direction: ``{"forward": (...), "backward": (...)}``, empty groups left out.

    Examples
    --------
    >>> import gradflow as gf
    >>> direction_groups(gf.cells.stack([gf.cells.bidirectional(gf.cells.elman()), gf.cells.elman()]))
    {'forward': ('layer1.fwd.h', 'layer2.h'), 'backward': ('layer1.bwd.h',)}
    """
    forward = tuple(name for name in cell.states if name not in cell.backward)
    backward = tuple(name for name in cell.states if name in cell.backward)
    return {key: names for key, names in ((FORWARD, forward), (BACKWARD, backward)) if names}


def _direction(cell: Cell, name: str) -> str:
    return BACKWARD if name in cell.backward else FORWARD


def _described(cell: Cell, names: tuple[str, ...]) -> str:
    return ", ".join(f"{name!r} ({_direction(cell, name)})" for name in names)


def select_group(cell: Cell, states: Any = None) -> tuple[str, ...]:
    """The direction group that ``states`` selects, in the cell's order of states.

    ``None`` selects every state of a cell that runs one way. Otherwise
    ``states`` (a name or names) must be every state of one direction.

    Raises
    ------
    UnsupportedCellError
        For ``None`` on a cell running both ways; for states of both
        directions; for a cell whose directions do not meet only within a
        step, one way (:func:`senders`).
    GradflowError
        For an unknown state, an empty selection, or part of a group.
    """
    groups = direction_groups(cell)
    if states is None:
        if len(groups) == 1:
            return tuple(cell.states)
        raise UnsupportedCellError(
            f"cell {cell.name!r} has states running forwards in time ({', '.join(groups[FORWARD])}) "
            f"and backwards ({', '.join(groups[BACKWARD])}); its chains and closed-form adjoints are "
            f"per direction: pass states={list(groups[FORWARD])!r} or states={list(groups[BACKWARD])!r}"
        )
    names = (states,) if isinstance(states, str) else tuple(states)
    if not names:
        raise GradflowError(
            f"states= selects no state of cell {cell.name!r}; its states are {list(cell.states)}"
        )
    for name in names:
        if name not in cell.states:
            raise GradflowError(
                f"cell {cell.name!r} has no state {name!r}; its states are {', '.join(cell.states)}"
            )
    directions = {_direction(cell, name) for name in names}
    if len(directions) > 1:
        raise UnsupportedCellError(
            f"states= mixes directions of cell {cell.name!r}: {_described(cell, names)}; select the "
            f"states of one direction: {list(groups[FORWARD])!r} or {list(groups[BACKWARD])!r}"
        )
    (direction,) = directions
    group = groups[direction]
    missing = [name for name in group if name not in names]
    if missing:
        raise GradflowError(
            f"states= must select every {direction} state of cell {cell.name!r}, {list(group)}: "
            f"{', '.join(map(repr, missing))} is missing (the {direction} states share one step Jacobian)"
        )
    if len(groups) > 1:
        senders(cell, group)  # checks how the directions meet
    return group


def _state_reads(cell: Cell) -> dict[str, set[tuple[str, Any]]]:
    """Each state's update: the states it reads and at which offset, through the step's intermediates."""
    reads: dict[str, set[tuple[str, Any]]] = {}
    for kind, name in cell.order:
        found: set[tuple[str, Any]] = set()
        for signal in cell.expression(kind, name).atoms(Signal):
            if signal.role == "state":
                found.add((signal.name, signal.lag))
            elif signal.role != "input" and signal.name in reads:
                found |= reads[signal.name]
        reads[name] = found
    return {name: reads[name] for name in cell.states}


def senders(cell: Cell, group: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The other direction groups that read ``group``'s states within a step (and so send it gradient).

    Raises
    ------
    UnsupportedCellError
        If a state reads a state of the other direction at another time,
        or each direction reads the other within a step.
    """
    groups = direction_groups(cell)
    reads_within: set[tuple[str, str]] = set()  # (reader, read)
    for name, reads in _state_reads(cell).items():
        for other, lag in reads:
            if _direction(cell, other) == _direction(cell, name):
                continue
            if lag != 0:
                raise UnsupportedCellError(
                    f"cell {cell.name!r}: state {name!r} ({_direction(cell, name)}) reads {other!r} "
                    f"({_direction(cell, other)}) at time t{int(lag):+d}; the per-direction formulas need "
                    "the two directions to meet only within a step (at time t)"
                )
            reads_within.add((_direction(cell, name), _direction(cell, other)))
    if len(reads_within) > 1:
        raise UnsupportedCellError(
            f"cell {cell.name!r}: its forward and backward states read each other within a step, so "
            "neither direction's adjoint can be written before the other's; use adjoint_recursion"
        )
    mine = _direction(cell, group[0])
    return [groups[reader] for reader, read in sorted(reads_within) if read == mine]


def group_signal(cell: Cell, group: tuple[str, ...], time: Any) -> Signal:
    """The group's state as one vector: the state itself, ``s`` for every state, else ``fwd.s`` or ``bwd.s``."""
    if len(group) == 1:
        return cell.signal(group[0], time)
    name = "s" if group == tuple(cell.states) else _LABELS[_direction(cell, group[0])]
    return Signal(name, sp.Add(*(cell.states[n] for n in group)), time, "state")


def group_cotangents(cell: Cell, group: tuple[str, ...], whole: Any) -> dict[str, Any]:
    """The blocks of a column ``whole`` shaped like the group's state, by state name."""
    if len(group) == 1:
        return {group[0]: whole}
    offset: sp.Expr = sp.S.Zero
    blocks = {}
    for name in group:
        blocks[name] = Rows(whole, offset, cell.states[name])
        offset = offset + cell.states[name]
    return blocks


class _GroupStep:
    """One step of a cell as one direction group sees it: the other groups' states are leaves.

    The two attributes :func:`~gradflow.symbolic.vjp.step_pullback` reads:
    the evaluation order without the other groups' states, and the cell's
    expressions. A cotangent reaching another group's state is left there.
    """

    def __init__(self, cell: Cell, group: tuple[str, ...]) -> None:
        self.order = tuple(node for node in cell.order if node[0] != "state" or node[1] in group)
        self.expression = cell.expression


def group_pullback(cell: Cell, group: tuple[str, ...], cotangents: dict[str, Any], wrt: sp.Basic) -> sp.Basic:
    r"""Pull cotangents of ``group``'s new states back to ``wrt`` through the group's part of a step.

    :math:`(\partial^{+} s_G^{(t)}/\partial\,\text{wrt})^\top g`, where the
    other groups' states at :math:`t` are held fixed; for the whole cell it is
    :func:`~gradflow.symbolic.vjp.step_pullback`.
    """
    if group == tuple(cell.states):
        return step_pullback(cell, cotangents, wrt)
    return step_pullback(cast(Cell, _GroupStep(cell, group)), cotangents, wrt)


def cross_upstream(cell: Cell, group: tuple[str, ...], variant: str = "") -> sp.Basic | None:
    r"""What the other groups send to :math:`s_G^{(t)}` within step t, or None when nothing.

    :math:`\sum_H (\partial^{+} s_H^{(t)}/\partial s_G^{(t)})^\top \delta_H^{(t)}`
    over the groups :math:`H` reading :math:`G` at the same step, with their
    adjoints :math:`\delta_H^{(t)}` as :class:`~gradflow.symbolic.nodes.Adjoint`
    symbols (marked with ``variant``); a column shaped like :math:`s_G`
    (a block column for several states).
    """
    parts: dict[str, list[sp.Basic]] = {name: [] for name in group}
    for other in senders(cell, group):
        whole = Adjoint(group_signal(cell, other, t), total=True, variant=variant)
        cotangents = group_cotangents(cell, other, whole)
        for name in group:
            back = group_pullback(cell, other, cotangents, cell.signal(name, t))
            if not isinstance(back, sp.ZeroMatrix):
                parts[name].append(back)
    if not any(parts.values()):
        return None
    blocks = [
        (terms[0] if len(terms) == 1 else sp.MatAdd(*terms)) if terms else sp.ZeroMatrix(cell.states[name], 1)
        for name, terms in parts.items()
    ]
    return blocks[0] if len(blocks) == 1 else sp.BlockMatrix([[block] for block in blocks])
