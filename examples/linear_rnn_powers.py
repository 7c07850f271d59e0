r"""A linear hidden layer: the gradient is a sum of powers of :math:`W_{hh}^\top` (seed 001, claim C11).

Dive into Deep Learning (§9.7) takes a hidden layer without activation,
:math:`h_t = W_{hx} x_t + W_{hh} h_{t-1}`, linear outputs :math:`o_t = W_{qh} h_t`, and finds

.. math::
    \frac{\partial L}{\partial h_t}
    = \sum_{i=t}^{T} \bigl(W_{hh}^\top\bigr)^{T-i} W_{qh}^\top \frac{\partial L}{\partial o_{T+t-i}} :

the gradient that reaches step :math:`t` from :math:`k` steps later passes through
:math:`(W_{hh}^\top)^k`, and large powers vanish or explode with the eigenvalues of
:math:`W_{hh}` (:math:`W_{hh}^\top = Q\Lambda Q^{-1}`, :math:`|\lambda|^k`).

gradflow derives the recursion from the cell written in d2l's notation (``gf.Cell``, outputs
included) and the powers from the linear Elman cell (``gf.export.d2l_bptt()``'s linear case).
This script checks the formula against ``gf.bptt`` term by term, then measures the chain
:math:`\partial h_T/\partial h_{T-k} = W_{hh}^k`:

* for a *normal* :math:`W_{hh}` (symmetric, eigenvalues spread over :math:`[-\rho, \rho]`),
  :math:`\lVert W_{hh}^k\rVert_2 = \rho^k` exactly, so the measured rate is
  :math:`\log|\lambda_{\max}| = \log\rho` for :math:`\rho = 0.9, 1, 1.1` (vanishing, neutral,
  exploding);
* for a *non-normal* :math:`W_{hh}` (Gaussian, rescaled to spectral radius :math:`\rho`) the norm
  bound :math:`\lVert W_{hh}\rVert_2^k` is far too pessimistic, yet for large :math:`k` the rate still
  tends to :math:`\log\rho` (Gelfand's formula): the eigenvalues decide.

Run it::

    python examples/linear_rnn_powers.py            # n = 64, T = 200
    python examples/linear_rnn_powers.py --quick    # n = 16, T = 60
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from _example import Example, Step

import gradflow as gf
from gradflow.symbolic.derivation import Derivation

D2L = "A. Zhang, Z. C. Lipton, M. Li, A. J. Smola, Dive into Deep Learning, section 9.7 (Backpropagation through time)."

#: d2l's linear RNN in its own notation: no activation, linear outputs.
D2L_LINEAR = gf.Cell(
    "d2l_linear",
    states={"h": "n"},
    inputs={"x": "m"},
    params={"W_hh": ("n", "n"), "W_hx": ("n", "m"), "W_qh": ("q", "n")},
    updates={"h": "W_hh @ h + W_hx @ x"},
    outputs={"o": "W_qh @ h"},
    description="d2l's hidden layer without activation, with linear outputs o = W_qh h.",
)


def formulas(ex: Example) -> None:
    """d2l's cell, its step Jacobian and adjoint recursion (gf.derive), then d2l_bptt's linear case."""
    derived = gf.derive(D2L_LINEAR)
    ours = [
        s
        for s in derived
        if s.title in ("Cell", "Step Jacobian", "Chain rule through time", "Adjoint recursion")
    ]
    linear = gf.export.d2l_bptt().titled("Linear case")
    n = D2L_LINEAR.states["h"]
    notation = Step(
        "Notation",
        sp.Eq(sp.MatrixSymbol("W_h", n, n), D2L_LINEAR.parameter("W_hh"), evaluate=False),
        "gf.export.d2l_bptt() writes the linear case on gradflow's Elman cell with the identity activation: "
        "W_h for d2l's W_hh, W_x for W_hx, W_q for W_qh (and a bias b, which does not change the gradient).",
    )
    ex.derivation(
        Derivation(
            "A linear hidden layer: powers of W_hh^T (seed 001, C11)",
            (*ours, notation, *linear),
            D2L_LINEAR,
            (D2L,),
        )
    )


def normal_matrix(n: int, rho: float, rng: np.random.Generator) -> np.ndarray:
    """A symmetric matrix with eigenvalues spread evenly over [-rho, rho] (so |lambda_max| = rho = ||W||_2)."""
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * (rho * np.linspace(-1.0, 1.0, n))) @ q.T


def signed(value: float) -> str:
    """``+0.095310``; a rate that is 0 up to rounding prints as ``+0.000000``, not ``-0.000000``."""
    return f"{round(value, 12) + 0.0:+.6f}"


def main() -> None:
    ex = Example(
        "linear_rnn_powers",
        "C11 (seed 001, Dive into Deep Learning 9.7)",
        "With a linear hidden layer dL/dh_t = sum_{i=t}^{T} (W_hh^T)^(T-i) W_qh^T dL/do_(T+t-i); the powers of "
        "W_hh^T vanish or explode with its eigenvalues: the chain's measured rate is log|lambda_max|.",
    )
    formulas(ex)
    n, T, B, q = ex.size(64, 16), ex.size(200, 60), 4, 4
    cell = D2L_LINEAR.with_sizes(n=n, m=n, q=q)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(T, B, n))

    # 1. d2l's formula, term by term, against gf.bptt (W_hx = I, so dL/dx_t = dL/dh_t)
    W = normal_matrix(n, 1.0, rng) + 0.3 * rng.normal(size=(n, n)) / math.sqrt(n)
    params = gf.init_params(cell, seed=0, values={"W_hh": W, "W_hx": np.eye(n)})
    grad_o = rng.normal(size=(T, B, q))
    grads = gf.bptt(cell, params, x, {"o": grad_o})
    delta = np.asarray(grads.inputs["x"])
    W_hh, W_qh = np.asarray(params["W_hh"]), np.asarray(params["W_qh"])
    worst = 0.0
    for t in range(1, T + 1):
        # the referee: d2l's sum, literally (steps are 1..T; array index t - 1)
        formula = sum(
            np.linalg.matrix_power(W_hh.T, T - i) @ W_qh.T @ grad_o[T + t - i - 1].T for i in range(t, T + 1)
        ).T
        worst = max(worst, float(np.max(np.abs(formula - delta[t - 1])) / np.max(np.abs(formula))))
    print(f"d2l's linear cell, n = {n}, q = {q}, T = {T}, B = {B}; random dL/do_t")
    ex.check(
        worst < 1e-10,
        f"C11: gf.bptt's dL/dh_t equals d2l's sum_(i=t)^T (W_hh^T)^(T-i) W_qh^T dL/do_(T+t-i), evaluated "
        f"literally with NumPy's matrix powers, at every t = 1..{T} (largest relative error {worst:.1e})",
    )

    # 2. the chain's rate against log|lambda_max|: normal matrices, rho = 0.9, 1, 1.1
    runs: dict[str, tuple] = {}
    print(
        f"{'W_hh':28} {'|lambda_max|':>12} {'||W_hh||_2':>10} {'measured rate':>14} {'log|lambda_max|':>16}"
    )
    errors = {}
    for rho in (0.9, 1.0, 1.1):
        params = gf.init_params(cell, seed=0, values={"W_hh": normal_matrix(n, rho, rng), "W_hx": np.eye(n)})
        chain = gf.jacobian_chain(cell, params, x)
        found = gf.regime(cell, params, x)
        runs[rf"normal $W_{{hh}}$, $|\lambda_{{\max}}| = {rho:g}$"] = (
            gf.bound_vs_measured(cell, params, x, chain=chain),
            found,
        )
        errors[rho] = (found.rate, found.label)
        print(
            f"{'normal (symmetric)':28} {rho:12.4f} {rho:10.4f} {signed(found.rate):>14} {signed(math.log(rho)):>16}"
        )
    deviation = max(abs(rate - math.log(rho)) for rho, (rate, _) in errors.items())
    labels = [errors[rho][1] for rho in (0.9, 1.0, 1.1)]
    ex.check(
        deviation < 1e-9,
        f"C11: for a normal W_hh the measured rate of ||dh_T/dh_(T-k)||_2 = ||W_hh^k||_2 equals log|lambda_max| "
        f"for |lambda_max| = 0.9, 1, 1.1 (rates {', '.join(signed(errors[r][0]) for r in (0.9, 1.0, 1.1))}; "
        f"largest deviation {deviation:.1e} per step, n = {n}, lags up to {T})",
    )
    ex.check(
        labels == ["vanishing", "neutral", "exploding"],
        f"C11: |lambda_max| = 0.9, 1, 1.1 give {', '.join(labels)} gradients",
    )

    # 3. a non-normal W_hh: the norm bound is loose, but the eigenvalues still set the rate
    params = gf.init_params(cell, seed=1, spectral_radius=1.0, values={"W_hx": np.eye(n)})
    W_hh = np.asarray(params["W_hh"])
    radius, norm = float(np.max(np.abs(np.linalg.eigvals(W_hh)))), float(np.linalg.norm(W_hh, 2))
    chain = gf.jacobian_chain(cell, params, x)
    found = gf.regime(cell, params, x)
    logs = np.asarray(chain.log_spectral).mean(axis=1)
    lags = np.arange(logs.shape[0])
    tail = lags >= T // 2
    tail_rate = float(np.polyfit(lags[tail], logs[tail], 1)[0])
    runs[rf"non-normal, $|\lambda_{{\max}}| = 1$, $\|W_{{hh}}\|_2 = {norm:.2f}$"] = (chain, found)
    print(
        f"{'non-normal (Gaussian)':28} {radius:12.4f} {norm:10.4f} {found.rate:+14.6f} {math.log(radius):+16.6f}"
        f"   (lags {T // 2}..{T}: {tail_rate:+.6f})"
    )
    ex.check(
        abs(tail_rate - math.log(radius)) < 1e-3 and math.log(norm) > 0.3,
        f"C11: for a non-normal W_hh with |lambda_max| = {radius:.3f} but ||W_hh||_2 = {norm:.3f}, the norm bound "
        f"grows as {norm:.3f}^k, yet over lags {T // 2}..{T} the chain's rate is {tail_rate:+.1e} per step, within "
        f"0.001 of log|lambda_max| = {signed(math.log(radius))}: the eigenvalues, not the norm, decide",
    )
    print()
    ex.figure(
        gf.plot.chain_norms(
            runs,
            title=rf"Linear hidden layer: $\partial h_T/\partial h_{{T-k}} = W_{{hh}}^k$ (d2l's cell, n = {n}, T = {T}, B = {B})",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
