r"""The local Jacobian carried, unevaluated, by each edge of an unrolled graph.

An edge ``source -> target`` of an unrolled graph is one direct dependency:
the target's equation at step :math:`\tau` reads the source. Its local
Jacobian :math:`\partial\,\text{target} / \partial\,\text{source}` is kept
as data -- the equation and the object to differentiate against -- and is
computed only by :meth:`LocalJacobian.doit`, which hands both to the
symbolic layer. The graph layer never differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from gradflow.cells.expr import t
from gradflow.errors import GraphError
from gradflow.graph.labels import latex_label

__all__ = ["LocalJacobian", "Node"]

#: A node of an unrolled graph: ``(name, t)``, with ``t`` None for parameters
#: and for the total loss.
Node = tuple[str, int | None]


@dataclass(frozen=True)
class LocalJacobian:
    r"""The unevaluated local Jacobian :math:`\partial\,\text{target}/\partial\,\text{source}` of an edge.

    Parameters
    ----------
    target, source : tuple
        The edge's nodes, ``(name, t)`` (``t`` None for a parameter).
    equation : sympy expression or None
        The target's expression in the time symbol ``t`` as the cell writes
        it (``cell.expression(kind, name)``); None for the edges of the
        abstract loss (:math:`E^{(t)}` and :math:`L = \sum_t E^{(t)}`).
    variable : sympy object
        What the target is differentiated against, in the time symbol ``t``:
        the :class:`~gradflow.cells.expr.Signal` read (e.g. ``h[t - 1]``),
        the parameter (a ``MatrixSymbol`` or a scalar ``Symbol``), or for
        the total loss the step loss ``E[t]``.
    step : int or None
        The time step :math:`\tau` at which the equation and the variable
        are taken (the target's step; the source's for edges into :math:`L`).

    Notes
    -----
    :attr:`expression` and :attr:`wrt` are the equation and the variable at
    :math:`t = \tau`; they are computed on first access, so that unrolling a
    long sequence does not pay for sympy substitutions nobody reads.

    Examples
    --------
    >>> import sympy as sp
    >>> from gradflow.cells.expr import Signal, t
    >>> n = sp.Symbol("n")
    >>> h = Signal("h", n, t - 1, "state")
    >>> W_h = sp.MatrixSymbol("W_h", n, n)
    >>> edge = LocalJacobian(("h", 3), ("h", 2), W_h * h, h, 3)
    >>> edge.expression, edge.wrt
    (W_h*h[2], h[2])
    >>> edge.latex
    '\\frac{\\partial h^{(3)}}{\\partial h^{(2)}}'
    """

    target: tuple[str, int | None]
    source: tuple[str, int | None]
    equation: sp.Basic | None
    variable: sp.Basic
    step: int | None

    @cached_property
    def expression(self) -> sp.Basic | None:
        r"""The target's expression at :math:`t = \tau` (None for loss edges)."""
        if self.equation is None or self.step is None:
            return self.equation
        return self.equation.xreplace({t: sp.Integer(self.step)})

    @cached_property
    def wrt(self) -> sp.Basic:
        r"""The object differentiated against, at :math:`t = \tau`."""
        if self.step is None:
            return self.variable
        return self.variable.xreplace({t: sp.Integer(self.step)})

    @property
    def is_abstract(self) -> bool:
        """True for the edges of the loss, whose functions are not written out."""
        return self.equation is None

    @property
    def latex(self) -> str:
        r"""``\frac{\partial target}{\partial source}`` with the nodes' labels."""
        return (
            rf"\frac{{\partial {latex_label(*self.target)}}}"
            rf"{{\partial {latex_label(*self.source)}}}"
        )

    def doit(self) -> sp.Basic:
        r"""Evaluate the Jacobian with :func:`gradflow.symbolic.jacobian.local_jacobian`.

        Returns
        -------
        sympy expression
            The structured Jacobian in numerator layout
            (:math:`\dim \text{target} \times \dim \text{source}`).

        Raises
        ------
        GraphError
            For an edge of the abstract loss: :math:`E^{(t)}` has no
            equation, so its Jacobian is the upstream gradient, an input of
            backpropagation rather than something to derive.
        """
        if self.equation is None:
            raise GraphError(
                f"the edge {self.source} -> {self.target} belongs to the abstract loss; "
                "its Jacobian is the upstream gradient dE/dy (or dL/dE = 1), which is "
                "supplied to backpropagation rather than derived"
            )
        # The one upward import of the graph layer: evaluation belongs to the
        # symbolic layer, which imports the graph layer itself.
        from gradflow.symbolic.jacobian import local_jacobian

        return local_jacobian(self.expression, self.wrt)

    def __repr__(self) -> str:
        return f"LocalJacobian(d{_text(self.target)}/d{_text(self.source)})"


def _text(node: tuple[str, int | None]) -> str:
    name, time = node
    return name if time is None else f"{name}[{time}]"
