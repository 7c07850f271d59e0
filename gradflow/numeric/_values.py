"""Values of a simulation's signals by name and time, for :mod:`gradflow.numeric.simulate`.

Each node's values over time are one array, laid out as its trajectory (see
:mod:`gradflow.numeric.simulate`); inputs are read from the problem and a state's
history before the sequence from its initial values.
"""

from __future__ import annotations

from typing import Any

from gradflow.errors import GradflowError
from gradflow.numeric._problem import Problem

__all__ = ["Values"]


class Values:
    """Values of a problem's signals by ``(name, time)``: inputs, history and computed nodes."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.computed: dict[tuple[str, int], Any] = {}
        self.saved: dict[tuple[str, int], Any] = {}
        self.backward = problem.cell.backward
        self.states = frozenset(problem.cell.states)
        #: each node's values over time, one (rows, B, size) array laid out as the trajectory
        #: (the module docstring): one large allocation per node instead of one per step
        self.series: dict[str, Any] = {}

    def store(self, name: str, time: int, value: Any) -> Any:
        """Write ``value`` of ``name`` at ``time`` into its series; return the (B, size) row that holds it."""
        series = self.series.get(name)
        state = name in self.states
        backward = name in self.backward
        if series is None:
            problem, xp = self.problem, self.problem.xp
            rows = problem.T + 1 if state else problem.T
            series = xp.empty((rows, problem.B, value.shape[-1]), dtype=value.dtype)
            if state:  # the initial value, first (last for a state running backwards)
                series[problem.T if backward else 0, ...] = self(name, problem.T + 1 if backward else 0)
            self.series[name] = series
        index = time if state and not backward else time - 1
        series[index, ...] = value
        row = self.computed[(name, time)] = series[index, ...]
        return row

    def __call__(self, name: str, time: int) -> Any:
        """The value of ``name`` at ``time``."""
        found = self.computed.get((name, time))
        if found is not None:
            return found
        problem = self.problem
        if name in problem.inputs:
            if not 1 <= time <= problem.T:  # cells read inputs at time t only; never wrap to the other end
                raise GradflowError(
                    f"no value of input {name!r} at time {time}: inputs run from 1 to {problem.T}"
                )
            return problem.inputs[name][time - 1]
        if name in problem.initial:
            outside = time - problem.T - 1 if name in self.backward else -time
            if 0 <= outside < len(problem.initial[name]):
                return problem.initial[name][outside]
        raise GradflowError(f"no value of {name!r} at time {time} (the schedule read it too early)")

    def over_time(self, name: str, lag: int) -> Any:
        """The values of ``name`` at times ``1 + lag`` to ``T + lag``, (T, B, size): a slice where they are held so."""
        problem, xp, T = self.problem, self.problem.xp, self.problem.T
        if name in problem.sequences and lag == 0:
            return problem.sequences[name]
        series = self.series.get(name)
        if series is not None:
            start = 1 + lag if name in self.states and name not in self.backward else lag
            if start >= 0 and start + T <= series.shape[0]:
                return series[start : start + T, ...]
        values = [self(name, time + lag) for time in range(1, T + 1)]
        return xp.stack([xp.broadcast_to(v, (problem.B, v.shape[-1])) for v in values], axis=0)

    def reads(self, keys: Any, time: int) -> dict[tuple[str, int], Any]:
        """``{(name, lag): value at time + lag}`` for a kernel's reads."""
        return {key: self(key[0], time + key[1]) for key in keys}
