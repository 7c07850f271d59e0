r"""A derivation as data: ordered steps of sympy equations with prose and citations.

:func:`derive` walks a cell from its definition to its gradient:
definition → step Jacobians → chain → bound → conditions → adjoints
(full, truncated, randomized) → parameter gradients. Printing is the export
layer's job; a :class:`Derivation` only holds the mathematics.

``Derivation.to_latex()``, ``.to_markdown()`` and Jupyter's views call the
printers that :mod:`gradflow.export.document` registers with
:func:`register_printer` when it is imported (``import gradflow`` imports it),
so that imports run one way: export imports symbolic, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.expr import t
from gradflow.errors import GradflowError
from gradflow.symbolic.bound_nodes import BlockBound, UnitRate
from gradflow.symbolic.bounds import ROW_BY_ROW, chain_bound
from gradflow.symbolic.bptt import (
    _lags,
    adjoint,
    adjoint_recursion,
    chain,
    parameter_gradient,
    state_jacobian,
    state_signal,
    xi,
)
from gradflow.symbolic.jacobian import step_jacobian
from gradflow.symbolic.nodes import Adjoint, Norm, Partial
from gradflow.symbolic.strategies import Full, Randomized, Truncated

__all__ = ["PASCANU", "Derivation", "Step", "derive", "register_printer"]

PASCANU = (
    "R. Pascanu, T. Mikolov, Y. Bengio, On the difficulty of training recurrent neural networks, ICML 2013."
)
D2L = "A. Zhang, Z. C. Lipton, M. Li, A. J. Smola, Dive into Deep Learning, section 9.7 (Backpropagation through time)."
TALLEC = "C. Tallec, Y. Ollivier, Unbiasing truncated backpropagation through time, arXiv:1705.08209, 2017."
CS224N = "Stanford CS224n, lecture 7: vanishing gradients and fancy RNNs."

#: Symbols of the derivations: the steps i > j, and the truncation length.
i_sym, j_sym = sp.symbols("i j", integer=True)
tau = sp.Symbol("tau", integer=True, positive=True)
k_sym = sp.Symbol("k", integer=True)


#: The printers of derivations by format ("latex", "markdown"), registered by the export layer.
_PRINTERS: dict[str, Callable[..., str]] = {}


def _expectation_of_xi(pi: sp.Symbol) -> sp.Basic:
    r"""``π (1/π) + (1 − π) 0 = 1``: the two values of :math:`\xi_k` weighted by their probabilities, as written."""
    kept = sp.Mul(pi, sp.UnevaluatedExpr(sp.Pow(pi, -1, evaluate=False)), evaluate=False)
    dropped = sp.Mul(sp.UnevaluatedExpr(1 - pi), sp.Integer(0), evaluate=False)
    return sp.Eq(sp.Add(kept, dropped, evaluate=False), sp.Integer(1), evaluate=False)


def register_printer(kind: str, printer: Callable[..., str]) -> None:
    """Make ``printer(derivation, **options)`` the way a :class:`Derivation` prints as ``kind``.

    :mod:`gradflow.export.document` registers ``"latex"``
    (:func:`~gradflow.export.derivation_to_latex`) and ``"markdown"``
    (:func:`~gradflow.export.derivation_to_markdown`) when it is imported; the
    symbolic layer sits below the export layer and cannot import it.

    Examples
    --------
    >>> _PRINTERS["latex"].__name__
    'derivation_to_latex'
    """
    _PRINTERS[kind] = printer


def _print(derivation: Derivation, kind: str, **options: Any) -> str:
    printer = _PRINTERS.get(kind)
    if printer is None:
        raise GradflowError(
            f"no {kind} printer of derivations is registered; import gradflow.export (import gradflow "
            "does), which registers it"
        )
    return printer(derivation, **options)


@dataclass(frozen=True)
class Step:
    """One step of a derivation.

    Attributes
    ----------
    title : str
        A short heading ("Step Jacobian").
    equation : sympy object
        An ``Eq``, an inequality, or an expression.
    prose : str
        One or two sentences saying what the step does.
    citation : str
        Where the formula comes from ("" when it is the previous steps' algebra).
    """

    title: str
    equation: sp.Basic
    prose: str
    citation: str = ""


@dataclass(frozen=True)
class Derivation:
    """An ordered list of :class:`Step` about one cell (or one classic argument).

    Examples
    --------
    >>> import gradflow as gf
    >>> d = gf.derive(gf.cells.elman())
    >>> [s.title for s in d][:3]
    ['Cell', 'Step Jacobian', 'Chain rule through time']
    """

    title: str
    steps: tuple[Step, ...]
    cell: Cell | None = None
    references: tuple[str, ...] = field(default=())

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    def titled(self, title: str) -> list[Step]:
        """Every step with this title."""
        return [step for step in self.steps if step.title == title]

    # Printing is the export layer's job; these call the printers it registered (register_printer).

    def to_latex(self, **options: Any) -> str:
        r"""The derivation as a LaTeX ``align`` fragment: :func:`gradflow.export.derivation_to_latex`.

        Examples
        --------
        >>> import gradflow as gf
        >>> print(gf.derive(gf.cells.elman()).to_latex().splitlines()[3])
        h^{(t)} &= \tanh\left(W_{h} h^{(t-1)} + W_{x} x^{(t)} + b\right) \\
        """
        return _print(self, "latex", **options)

    def to_markdown(self, **options: Any) -> str:
        """The derivation as Markdown with ``$$`` blocks: :func:`gradflow.export.derivation_to_markdown`."""
        return _print(self, "markdown", **options)

    def _repr_latex_(self) -> str:
        r"""Jupyter's LaTeX view (MathJax has no ``\intertext``: the prose goes in ``\text`` lines)."""
        return _print(self, "latex", prose="text")

    def _repr_markdown_(self) -> str:
        """Jupyter's Markdown view."""
        return self.to_markdown()


def _definition(cell: Cell) -> list[Step]:
    citation = cell.references[0] if cell.references else ""
    steps = []
    for kind, name in cell.order:
        target = cell.signal(name, t)
        steps.append(
            Step(
                "Cell",
                sp.Eq(target, cell.expression(kind, name), evaluate=False),
                f"The {kind} {name} at step t." if kind != "state" else f"The update of the state {name}.",
                citation,
            )
        )
    return steps


def _jacobians(cell: Cell) -> list[Step]:
    steps = []
    for state in cell.states:
        for wrt in cell.states:
            for lag in cell.delays(wrt) or (1,):
                jacobian = step_jacobian(cell, state, wrt, lag)
                if isinstance(jacobian, sp.ZeroMatrix):
                    continue
                offset = lag if wrt in cell.backward else -lag
                lhs = Partial(cell.signal(state, t), cell.signal(wrt, t + offset))
                steps.append(
                    Step(
                        "Step Jacobian",
                        sp.Eq(lhs, jacobian, evaluate=False),
                        "Numerator layout (rows: the differentiated state), through every gate of the step; "
                        "each activation contributes the diagonal matrix of its derivative.",
                        CS224N,
                    )
                )
    if len(cell.states) > 1 and not cell.backward and _lags(cell) == (1,):
        s = state_signal(cell)
        steps.append(
            Step(
                "Step Jacobian",
                sp.Eq(Partial(s, state_signal(cell, t - 1)), state_jacobian(cell), evaluate=False),
                f"The block Jacobian of the whole state s = [{'; '.join(cell.states)}].",
            )
        )
    return steps


def _chain_and_bounds(cell: Cell) -> list[Step]:
    if cell.backward:
        return []
    s_i, s_j = state_signal(cell, i_sym), state_signal(cell, j_sym)
    link = chain(cell, i_sym, j_sym)
    lhs = Partial(s_i, s_j)
    if _lags(cell) != (1,):
        return [
            Step(
                "Chain rule through time",
                sp.Eq(lhs, link, evaluate=False),
                "With delays the derivative is a sum over the paths of the unrolled graph, one product of "
                "edge Jacobians per composition of i - j into the delays; the shortest path has "
                "floor((i-j)/d) + (i-j) mod d steps, so the decay exponent scales with (i-j)/d.",
                "Goodfellow, Bengio, Courville, Deep Learning, section 10.9.1 (skip connections through time).",
            )
        ]
    bound = chain_bound(cell, i_sym, j_sym)
    norm = Norm(lhs)
    return [
        Step(
            "Chain rule through time",
            sp.Eq(lhs, link, evaluate=False),
            "The gradient flows back from step i to step j through the product of the step Jacobians.",
            PASCANU,
        ),
        Step(
            "Bound",
            sp.Le(norm, bound.chain, evaluate=False),
            "Submultiplicativity of the spectral norm, factor by factor"
            + (
                "; blocks by the spectral norm of the matrix of their bounds"
                if isinstance(state_jacobian(cell), sp.BlockMatrix)
                else ""
            )
            + ".",
            PASCANU,
        ),
        *_definitions(bound.step),
        Step(
            "Bound",
            sp.Le(norm, bound.chain_gamma, evaluate=False),
            "With γ = sup|σ′| bounding every derivative factor"
            + ("; gates and states keep their values at step t." if bound.step_gamma.has(t) else "."),
            PASCANU,
        ),
        *_definitions(bound.step_gamma),
        Step(
            "Vanishing condition",
            bound.vanishing,
            "Sufficient for vanishing: the bound then decays exponentially in i - j." + _never_met(cell),
            PASCANU,
        ),
        Step(
            "Exploding condition",
            bound.exploding,
            "Necessary for exploding: otherwise the bound cannot grow with i - j.",
            PASCANU,
        ),
    ]


def _never_met(cell: Cell) -> str:
    """A sentence for a cell whose step Jacobian has an identity block on its diagonal (the 1997 LSTM's CEC)."""
    jacobian = state_jacobian(cell)
    if not isinstance(jacobian, sp.BlockMatrix):
        return ""
    blocks = jacobian.blocks
    kept = [s for r, s in enumerate(cell.states) if isinstance(blocks[r, r], sp.Identity)]
    if not kept:
        return ""
    return (
        f" It is never met here: ∂{kept[0]}/∂{kept[0]} is I (the constant error carousel), so every step "
        "Jacobian has norm at least 1; a chain may still decay through the other blocks, but no bound of "
        "one step can show it."
    )


def _block_bounds(step: sp.Expr) -> list[BlockBound]:
    """The named block bounds of a step bound, row by row as they stand in the matrix of bounds."""
    found: list[BlockBound] = []
    for norm in sorted(step.atoms(Norm), key=sp.default_sort_key):
        if isinstance(norm.arg, sp.ImmutableMatrix):
            found += [entry for entry in norm.arg if isinstance(entry, BlockBound) and entry not in found]
    return found


def _definitions(step: sp.Expr) -> list[Step]:
    """The block bounds and per-unit rates a step bound names, each defined in a step of its own."""
    steps = [
        Step(
            "Bound",
            sp.Eq(block, block.definition, evaluate=False),
            f"The bound of the block ∂{block.block[0]}/∂{block.block[1]}"
            + (", with γ." if block.gamma_form else ", by the same inequalities."),
            PASCANU,
        )
        for block in _block_bounds(step)
    ]
    for rate in sorted(step.atoms(UnitRate), key=sp.default_sort_key):
        if rate.name.startswith("rhobar"):
            prose = "The rate of unit k with γ bounding its derivative factors."
        else:
            prose = (
                "The rate of unit k: each term diag(w) M of the step Jacobian adds |w_k| times the bound of M. "
                "A gate that keeps the state and one that lets the candidate in add up to 1 (z_k and 1 - z_k), "
                "so the rate is below 1 when the paths through the candidate are; the bound above is the "
                "Cauchy-Schwarz inequality applied row by row, which holds for the spectral norm."
            )
        steps.append(Step("Bound", sp.Eq(rate, rate.definition, evaluate=False), prose, ROW_BY_ROW))
    return steps


def _adjoints(cell: Cell) -> list[Step]:
    steps = [
        Step(
            "Adjoint recursion",
            equation,
            "The gradient reaching a state: its own loss term plus what every later step that reads it sends back.",
            D2L,
        )
        for equation in adjoint_recursion(cell)
    ]
    if set(cell.backward) not in (set(), set(cell.states)):
        return steps
    state = state_signal(cell)
    steps += [
        Step(
            "Adjoint (full)",
            sp.Eq(Adjoint(state), adjoint(cell, Full()), evaluate=False),
            "Full backpropagation through time: every later loss term, through every path.",
            D2L,
        ),
        Step(
            "Adjoint (truncated)",
            sp.Eq(Adjoint(state, variant="truncated"), adjoint(cell, Truncated(tau)), evaluate=False),
            "Regular truncation: only chains of at most τ step Jacobians.",
            D2L,
        ),
        Step(
            "Adjoint (randomized)",
            sp.Eq(Adjoint(state, variant="randomized"), adjoint(cell, Randomized()), evaluate=False),
            "Randomized truncation: each step Jacobian weighted by an independent ξₖ with "
            "P(ξₖ = 1/π) = π and P(ξₖ = 0) = 1 − π.",
            TALLEC,
        ),
        Step(
            "Unbiasedness",
            sp.Eq(sp.Function("E")(xi(k_sym)), _expectation_of_xi(Randomized().pi), evaluate=False),
            "E[ξₖ] = 1 and the ξₖ are independent, so every product of them has expectation 1: "
            "the randomized adjoint is an unbiased estimate of the full one.",
            TALLEC,
        ),
    ]
    return steps


def _gradients(cell: Cell) -> list[Step]:
    return [
        Step(
            "Parameter gradient",
            parameter_gradient(cell, param),
            "The immediate derivative of each step, pulled back against that step's adjoint, summed over time.",
            D2L,
        )
        for param in cell.params
    ]


def derive(cell: Cell) -> Derivation:
    r"""Derive how gradients flow back through time in ``cell``: a :class:`Derivation`.

    Steps: the cell's equations; every structured step Jacobian (and the
    block Jacobian of a multi-state cell); the chain
    :math:`\partial s^{(i)}/\partial s^{(j)}` (a path sum with delays);
    Pascanu's bound with the actual derivative factors and with
    :math:`\gamma`, and the vanishing/exploding conditions; the adjoint
    recursion; the adjoint under full, truncated and randomized
    backpropagation; :math:`\partial L/\partial\theta` for every parameter.
    The cost does not depend on the sequence length (:math:`T` stays a symbol).

    Raises
    ------
    GradflowError
        If ``cell`` is not a :class:`~gradflow.cells.Cell`.

    Examples
    --------
    >>> import gradflow as gf
    >>> d = gf.derive(gf.cells.lstm(forget_gate=False))
    >>> print(gf.export.to_text(d.titled("Step Jacobian")[3].equation.rhs))
    I
    """
    if not isinstance(cell, Cell):
        raise GradflowError(f"derive needs a gradflow Cell, got {type(cell).__name__}")
    steps = [
        *_definition(cell),
        *_jacobians(cell),
        *_chain_and_bounds(cell),
        *_adjoints(cell),
        *_gradients(cell),
    ]
    references = tuple(dict.fromkeys([*cell.references, PASCANU, CS224N, D2L, TALLEC]))
    return Derivation(f"Gradient flow through time in the {cell.name} cell", tuple(steps), cell, references)
