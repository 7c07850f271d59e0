r"""The weight gradients of all steps at once, for :mod:`gradflow.numeric.bptt`.

A parameter's gradient is a sum over steps of outer products
:math:`\sum_t \ell_t r_t^\top` (and, for a bias, of vectors :math:`\sum_t \ell_t`).
The reverse pass writes each step's factors into rows of one (T, B, w) array per
factor -- a forward value such as :math:`h^{(t-1)}` is read in place from the
trajectory instead -- and the sums become one large product each at the end:
:math:`L^\top R` with :math:`L, R` stacked over time and batch.
"""

from __future__ import annotations

from typing import Any

from gradflow.numeric.simulate import Problem, Values

__all__ = ["Factors"]


class Factors:
    """Per-step factors of the weight gradients, by key, and the sums over steps they stand for.

    A key is ``("signal", name, lag)`` for a value the forward pass holds (read in place), or any
    other hashable for rows written with :meth:`put`.
    """

    def __init__(self, problem: Problem, values: Values) -> None:
        self.problem, self.values, self.xp = problem, values, problem.xp
        #: key -> (array, rows written); the rows never written are zeroed on first use (:meth:`rows`)
        self.arrays: dict[Any, tuple[Any, set[int]]] = {}
        #: param -> {(left key, right key)}: the outer terms whose sum over steps is L^T R
        self.outer: dict[str, dict[tuple[Any, Any], None]] = {}
        #: param -> {key}: rows whose sum over steps and batch is (part of) a bias's gradient
        self.vector: dict[str, dict[Any, None]] = {}

    def put(self, key: Any, time: int, value: Any, add: bool = True) -> None:
        """Add ``value`` (B, w) to the row of ``time`` of the factors ``key``.

        With ``add=False`` a row already written is kept: a forward value sent again.
        """
        entry = self.arrays.get(key)
        if entry is None:
            problem = self.problem
            array = self.xp.empty((problem.T, problem.B, value.shape[-1]), dtype=value.dtype)
            entry = self.arrays[key] = (array, set())
        array, written = entry
        if time in written:
            if add:
                array[time - 1, ...] = array[time - 1, ...] + value
        else:
            array[time - 1, ...] = value
            written.add(time)

    def rows(self, key: Any) -> Any:
        """The (T, B, w) factors ``key``, with zeros in the rows of the steps that sent none."""
        if key[0] == "signal":
            return self.values.over_time(key[1], key[2])
        array, written = self.arrays[key]
        T = self.problem.T
        if len(written) < T:
            for time in set(range(1, T + 1)) - written:
                array[time - 1, ...] = 0.0
            written.update(range(1, T + 1))
        return array

    def total(self, param: str) -> Any | None:
        """The sum over steps of ``param``'s bias rows and outer terms (None when it has none)."""
        xp, total = self.xp, None
        for key in self.vector.get(param, ()):
            rows = self.rows(key)
            part = xp.sum(xp.reshape(rows, (-1, rows.shape[-1])), axis=0)
            total = part if total is None else total + part
        for left, right in self.outer.get(param, ()):
            L, R = (xp.reshape(a, (-1, a.shape[-1])) for a in (self.rows(left), self.rows(right)))
            product = xp.matmul(L.T, R)
            total = product if total is None else total + product
        return total
