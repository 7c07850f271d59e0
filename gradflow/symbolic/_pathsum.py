r"""The path sum :math:`\partial s^{(i)}/\partial s^{(j)}` of a cell with delays (seed 003).

Private to :mod:`gradflow.symbolic.bptt`, which re-exports :class:`PathSum`.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.expr import t
from gradflow.symbolic.nodes import BOUND_T

__all__ = ["PathSum"]


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
        """The explicit path sum for integer bounds (shared subproducts, linear in i - j).

        A lag that no path covers (a cell read only ``d > 1`` steps back, ``k`` not a multiple
        of ``d``) gives the zero matrix.
        """
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
                before = memo[k - int(d)]
                if isinstance(
                    before, sp.ZeroMatrix
                ):  # no path of that length (delays only, k not a sum of them)
                    continue
                step = jacobian.xreplace({BOUND_T: lower + k})
                factor = sp.MatMul(weight.xreplace({BOUND_T: lower + k}), step) if weight != 1 else step
                terms.append(factor if isinstance(before, sp.Identity) else sp.MatMul(factor, before))
            memo[k] = (
                sp.MatAdd(*terms) if len(terms) > 1 else terms[0] if terms else sp.ZeroMatrix(size, size)
            )
        return memo[int(length)]

    def _sympystr(self, printer: Any) -> str:
        return f"d s[{printer._print(self.args[1])}]/d s[{printer._print(self.args[0])}]"
