r"""The source documents' three classic arguments, as derivations built from gradflow's symbolic layer.

* :func:`pascanu_bound` (seed 000, CS224n after Pascanu, Mikolov & Bengio 2013):
  the Elman step Jacobian, the chain through time, the norm bound
  :math:`(\gamma\lVert W_h\rVert_2)^{i-j}`, and the conditions for vanishing and exploding.
* :func:`d2l_bptt` (seed 001, Dive into Deep Learning §9.7): the simplified model,
  the recursion for :math:`\partial h_t/\partial w_h` and its unrolled sum, backpropagation
  through time under full, truncated and randomized truncation, and the linear case with
  its powers :math:`(W_h^\top)^{T-i}`.
* :func:`~gradflow.export.classics_lstm.hochreiter_cec` (seed 002, Hochreiter 1991; Hochreiter & Schmidhuber 1997):
  the local error flow unit by unit, its sum over paths, the constant error carousel of the
  1997 LSTM, then the forget gate (Gers et al. 2000).

Each formula comes from gradflow's symbolic functions applied to gradflow's own cells
(:func:`~gradflow.symbolic.bounds.chain_bound`, :func:`~gradflow.symbolic.bptt.parameter_gradient`,
:func:`~gradflow.symbolic.hochreiter.error_flow_paths`, :func:`~gradflow.symbolic.cec.cec_path`, ...);
only the textbooks' general statements (the scalar model of d2l, Hochreiter's general unit
``j``) are written with sympy directly.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from gradflow.cells.builtin import elman
from gradflow.cells.expr import Elementwise, Signal, t
from gradflow.export.classics_lstm import hochreiter_cec
from gradflow.symbolic.bounds import chain_bound
from gradflow.symbolic.bptt import T, adjoint, adjoint_recursion, chain, parameter_gradient
from gradflow.symbolic.derivation import CS224N, D2L, PASCANU, TALLEC, Derivation, Step, derive
from gradflow.symbolic.gamma import gamma
from gradflow.symbolic.jacobian import Diag, step_jacobian
from gradflow.symbolic.nodes import Adjoint, Chain, MatSum, Norm, Partial
from gradflow.symbolic.strategies import Full, Randomized, Truncated

__all__ = ["CLASSICS", "d2l_bptt", "hochreiter_cec", "pascanu_bound"]

i, j, k = sp.symbols("i j k", integer=True)
tau = sp.Symbol("tau", integer=True, positive=True)


def _eq(lhs: sp.Basic, rhs: sp.Basic) -> sp.Eq:
    return sp.Eq(lhs, rhs, evaluate=False)


def pascanu_bound() -> Derivation:
    r"""Pascanu, Mikolov and Bengio's vanishing/exploding argument on the Elman cell (seed 000).

    Returns
    -------
    Derivation

    Examples
    --------
    >>> d = pascanu_bound()
    >>> [s.title for s in d][:3]
    ['Cell', 'Step Jacobian', 'Chain rule through time']

    References
    ----------
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent
    neural networks", ICML 2013, §3. CS224n lecture 7.
    """
    cell = elman("sigma")
    h_i, h_j = cell.signal("h", i), cell.signal("h", j)
    loss = Signal("J", 1, i, "output")
    bound = chain_bound(cell, i, j)
    w_h = cell.parameter("W_h")
    gamma_symbol = sp.Symbol("gamma", positive=True)
    link = Partial(cell.signal("h", t), cell.signal("h", t - 1))
    steps = [
        Step(
            "Cell",
            _eq(cell.signal("h", t), cell.updates["h"]),
            "The Elman network with activation sigma.",
            CS224N,
        ),
        Step(
            "Step Jacobian",
            _eq(link, step_jacobian(cell, "h")),
            "Numerator layout: the derivative of the activation contributes a diagonal matrix.",
            CS224N,
        ),
        Step(
            "Chain rule through time",
            _eq(Partial(h_i, h_j), chain(cell, i, j)),
            "The state at step i depends on the state at step j < i through every step in between.",
            PASCANU,
        ),
        Step(
            "Chain rule through time",
            _eq(Partial(loss, h_j), sp.MatMul(Partial(loss, h_i), Chain(link, j, i))),
            "The gradient of the loss J at step i with respect to an earlier state.",
            PASCANU,
        ),
        Step(
            "Bound",
            sp.Le(Norm(Partial(loss, h_j)), Norm(Partial(loss, h_i)) * bound.chain, evaluate=False),
            "Submultiplicativity of the spectral norm, factor by factor.",
            PASCANU,
        ),
        Step(
            "Bound",
            sp.Le(
                Norm(Partial(loss, h_j)),
                Norm(Partial(loss, h_i)) * bound.chain_gamma,
                evaluate=False,
            ),
            "With γ = sup|σ′| bounding every derivative factor: the bound is exponential in i − j.",
            PASCANU,
        ),
        Step(
            "Gamma",
            _eq(sp.Symbol("gamma_tanh", positive=True), gamma("tanh").value),
            "γ for tanh, exact (gradflow.gamma).",
            CS224N,
        ),
        Step(
            "Gamma",
            _eq(sp.Symbol("gamma_sigmoid", positive=True), gamma("sigmoid").value),
            "γ for the logistic sigmoid, exact (gradflow.gamma).",
            CS224N,
        ),
        Step(
            "Vanishing condition",
            sp.StrictLessThan(Norm(w_h), 1 / gamma_symbol, evaluate=False),
            "Sufficient for vanishing: the largest singular value of Wₕ below 1/γ makes γ‖Wₕ‖₂ < 1, "
            "and the bound decays exponentially in i − j.",
            PASCANU,
        ),
        Step(
            "Vanishing condition",
            sp.StrictLessThan(Norm(w_h), 1 / gamma("sigmoid").value, evaluate=False),
            "For the sigmoid (γ = 1/4); for tanh (γ = 1) the threshold is ‖Wₕ‖₂ < 1.",
            PASCANU,
        ),
        Step(
            "Exploding condition",
            sp.StrictGreaterThan(Norm(w_h), 1 / gamma_symbol, evaluate=False),
            "Necessary for exploding: below the threshold the bound cannot grow with i − j.",
            PASCANU,
        ),
    ]
    title = "Vanishing and exploding gradients: Pascanu, Mikolov and Bengio's bound (seed 000)"
    return Derivation(title, tuple(steps), cell, (PASCANU, CS224N, *cell.references[:1]))


def _d2l_model() -> list[Step]:
    """d2l's simplified scalar model h_t = f(x_t, h_{t-1}, w_h), o_t = g(h_t, w_o)."""
    x, h, o, y = (sp.IndexedBase(name) for name in "xhoy")
    w_h, w_o, loss = sp.symbols("w_h w_o L")
    f, g, ell = sp.Function("f"), sp.Function("g"), sp.Function("l")
    step_f = f(x[t], h[t - 1], w_h)
    direct = Partial(step_f, w_h)
    recursion = sp.MatAdd(direct, sp.MatMul(Partial(step_f, h[t - 1]), Partial(h[t - 1], w_h)))
    unrolled = sp.MatAdd(
        direct,
        MatSum(sp.MatMul(Chain(Partial(step_f, h[t - 1]), i, t), direct.xreplace({t: i})), (i, 1, t - 1)),
    )
    return [
        Step(
            "Model",
            _eq(h[t], step_f),
            "The hidden state of a simplified RNN, its details abstracted away.",
            D2L,
        ),
        Step("Model", _eq(o[t], g(h[t], w_o)), "The output at step t.", D2L),
        Step(
            "Model",
            _eq(loss, sp.Sum(ell(y[t], o[t]), (t, 1, T)) / T),
            "The loss: the mean over the steps.",
            D2L,
        ),
        Step(
            "Recursion",
            _eq(Partial(h[t], w_h), recursion),
            "hₜ depends on wₕ directly and through hₜ₋₁: a recursion aₜ = bₜ + cₜ aₜ₋₁.",
            D2L,
        ),
        Step(
            "Recursion",
            _eq(Partial(h[t], w_h), unrolled),
            "Unrolled: a sum over every earlier step i, each through the product of the Jacobians after it. "
            "Computing it in full is slow and the products can vanish or explode.",
            D2L,
        ),
    ]


def _d2l_linear() -> list[Step]:
    """d2l's linear hidden layer: powers of W_h^T, and their eigenvalues."""
    cell = elman("identity")
    w_h = cell.parameter("W_h")
    n, q = cell.states["h"], sp.Symbol("q", integer=True, positive=True)
    w_q = sp.MatrixSymbol("W_q", q, n)
    update = cell.updates["h"]  # id(z): the chain rule's diag(id'(z)) W_h, before it is simplified
    step = sp.MatMul(Diag(Elementwise(update.activation.derivative, update.arg)), w_h)
    output = Adjoint(Signal("o", q, i, "output"), total=False)
    powers = MatSum(sp.MatMul(sp.MatPow(sp.Transpose(w_h), i - t), sp.Transpose(w_q), output), (i, t, T))
    reindexed = MatSum(
        sp.MatMul(sp.MatPow(sp.Transpose(w_h), T - i), sp.Transpose(w_q), output.xreplace({i: T + t - i})),
        (i, t, T),
    )
    q_matrix, eigen = sp.MatrixSymbol("Q", n, n), sp.MatrixSymbol("Lambda", n, n)
    delta = Adjoint(cell.signal("h", t))
    return [
        Step(
            "Linear case", _eq(cell.signal("h", t), cell.updates["h"]), "A linear hidden layer (σ = id).", D2L
        ),
        Step(
            "Linear case",
            _eq(step, w_h),
            "Its step Jacobian: diag(id′(·)) = I, so Jₜ = Wₕ for every t.",
            D2L,
        ),
        Step(
            "Linear case",
            _eq(Partial(cell.signal("h", i), cell.signal("h", t)), Chain(w_h, t, i).doit()),
            "The chain of a time-independent factor is a power.",
            D2L,
        ),
        Step(
            "Linear case",
            _eq(delta, powers),
            "With linear outputs o⁽ⁱ⁾ (the output matrix below), the direct part of the gradient at step i is its transpose times ∂L/∂o⁽ⁱ⁾.",
            D2L,
        ),
        Step(
            "Linear case",
            _eq(delta, reindexed),
            "The same sum with i replaced by T + t − i: d2l's formula for ∂L/∂hₜ.",
            D2L,
        ),
        Step(
            "Linear case",
            _eq(
                sp.MatPow(sp.Transpose(w_h), k),
                sp.MatMul(q_matrix, sp.MatPow(eigen, k), sp.Inverse(q_matrix)),
            ),
            "Diagonalizing Wₕᵀ = Q Λ Q⁻¹: the components along eigenvalues |λ| < 1 vanish like |λ|ᵏ, "
            "those with |λ| > 1 explode.",
            D2L,
        ),
    ]


def d2l_bptt() -> Derivation:
    r"""Dive into Deep Learning's backpropagation through time, with its three strategies (seed 001).

    Returns
    -------
    Derivation

    Examples
    --------
    >>> d = d2l_bptt()
    >>> [s.title for s in d][0], len(d.titled("Truncation"))
    ('Model', 3)

    References
    ----------
    A. Zhang, Z. C. Lipton, M. Li, A. J. Smola, *Dive into Deep Learning*, §9.7.
    C. Tallec, Y. Ollivier, "Unbiasing truncated backpropagation through time", 2017.
    """
    cell = elman()
    unbiased = next(step for step in derive(cell) if step.title == "Unbiasedness")
    strategies = [
        ("Full computation: every path back to the first step; slow, and numerically fragile.", Full(), D2L),
        (
            "Regular truncation after τ steps: the sum ends after τ terms (d2l: works well in practice).",
            Truncated(tau),
            D2L,
        ),
        (
            "Randomized truncation: each step Jacobian weighted by ξₖ, unbiased through reweighting.",
            Randomized(),
            TALLEC,
        ),
    ]
    steps = [
        *_d2l_model(),
        Step(
            "Elman cell",
            _eq(cell.signal("h", t), cell.updates["h"]),
            "The same argument on an Elman cell, with gradflow's structured Jacobians.",
            D2L,
        ),
        *(
            Step(
                "Adjoint recursion",
                equation,
                "The gradient reaching h⁽ᵗ⁾: its own loss term plus what step t+1 sends back.",
                D2L,
            )
            for equation in adjoint_recursion(cell)
        ),
        *(
            Step(
                "Truncation",
                _eq(Adjoint(cell.signal("h", t), variant=_variant(s)), adjoint(cell, s)),
                prose,
                source,
            )
            for prose, s, source in strategies
        ),
        unbiased,
        *(
            Step("Parameter gradient", parameter_gradient(cell, "W_h", s, expand_adjoint=True), prose, source)
            for prose, s, source in strategies
        ),
        *_d2l_linear(),
    ]
    title = "Backpropagation through time: full, truncated and randomized (seed 001)"
    return Derivation(title, tuple(steps), cell, (D2L, TALLEC, *cell.references[:1]))


def _variant(strategy: object) -> str:
    return {Truncated: "truncated", Randomized: "randomized"}.get(type(strategy), "")


#: The classic arguments by file name (without suffix), in the order of the seeds.
CLASSICS: dict[str, Callable[[], Derivation]] = {
    "seed000_pascanu_bound": pascanu_bound,
    "seed001_d2l_bptt": d2l_bptt,
    "seed002_hochreiter_lstm": hochreiter_cec,
}
