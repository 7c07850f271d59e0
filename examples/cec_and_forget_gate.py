r"""The constant error carousel, the forget gate and peepholes of the LSTM (seed 002, claims C14 and C15).

Hochreiter and Schmidhuber (1997) keep the error from vanishing with a unit whose self-loop has
:math:`f'(\mathrm{net})\,w_{jj} = 1`: the identity with weight 1, the cell state of the 1997 LSTM,
:math:`c^{(t)} = c^{(t-1)} + i^{(t)} \circ \tilde c^{(t)}`, so that

.. math::
    \frac{\partial c^{(t)}}{\partial c^{(t-1)}} = I, \qquad
    \prod_{t-q<k\le t} \frac{\partial c^{(k)}}{\partial c^{(k-1)}} = I \quad\text{for every } q:

the error flows back along the cell unchanged (the *constant error carousel*). Gers, Schmidhuber
and Cummins (2000) add a learned reset, the forget gate: :math:`c^{(t)} = f^{(t)} \circ c^{(t-1)} +
i^{(t)} \circ \tilde c^{(t)}` and :math:`\partial c^{(t)}/\partial c^{(t-1)} = \operatorname{diag}(f^{(t)})`,
so the carousel decays like :math:`\prod f`; without it the cell state of a long sequence keeps
growing and saturates :math:`\tanh(c)`. Peepholes (Gers and Schmidhuber 2000) let the gates see
the cell state (:math:`f, i` read :math:`c^{(t-1)}`, :math:`o` reads :math:`c^{(t)}`), which adds
terms to :math:`\partial c^{(t)}/\partial c^{(t-1)}`.

What is measured. The carousel is the *direct* path :math:`c^{(t-1)} \to c^{(t)}`; the total
:math:`\partial c^{(T)}/\partial c^{(T-k)}` also runs through :math:`h` (the gates and the
candidate read :math:`h^{(t-1)}`). gradflow measures both: the direct path (``jacobian_chain``
over the state ``c`` alone, :math:`h` held as an input), and the total chain of ``(h, c)``
(``full=True``), whose :math:`c`-block is the carousel exactly when the :math:`h \to c` paths are
cut (:math:`W_i = W_c = 0`, and :math:`W_f = 0` with a forget gate).

Run it::

    python examples/cec_and_forget_gate.py            # n = 32, T = 1000
    python examples/cec_and_forget_gate.py --quick    # n = 8, T = 150
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure

import gradflow as gf
from gradflow.cells.expr import t
from gradflow.symbolic.cec import cec_path
from gradflow.symbolic.nodes import Partial

GERS_PEEPHOLES = "F. A. Gers, J. Schmidhuber, Recurrent nets that time and count, IJCNN 2000."
#: Forget-gate biases of the chain figure: f = sigmoid(b_f) when nothing else drives the gate.
FORGET_BIASES = (5.0, 3.0, 1.0)


def formulas() -> list[Step]:
    """The carousel and the forget gate (gradflow's classic derivation), the paths through h, peepholes."""
    classic = gf.export.hochreiter_cec()
    steps = [s for s in classic if s.title in ("Constant error carousel", "1997 LSTM", "Forget gate")]
    old, peep = gf.cells.lstm(forget_gate=False), gf.cells.lstm(peephole=True)
    cc = Partial(peep.signal("c", t), peep.signal("c", t - 1))
    steps.insert(
        steps.index(next(s for s in steps if s.title == "Forget gate")),
        Step(
            "1997 LSTM",
            sp.Eq(
                Partial(old.signal("c", t), old.signal("h", t - 1)),
                gf.symbolic.step_jacobian(old, "c", "h"),
                evaluate=False,
            ),
            "The carousel is the direct path; the cell also hears h(t−1) through the input gate and "
            "the candidate. When their recurrent weights are zero this block is 0, and the total "
            "∂c(t)/∂c(t−k) is I.",
            classic.references[1],
        ),
    )
    sees = {
        "f": "The gates see the cell: the forget gate (and the input gate) read c(t−1) through a peephole.",
        "o": "The output gate reads the new cell state c(t).",
    }
    for kind, name in peep.order:
        if name in sees:
            steps.append(
                Step(
                    "Peepholes",
                    sp.Eq(peep.signal(name, t), peep.expression(kind, name), evaluate=False),
                    sees[name],
                    GERS_PEEPHOLES,
                )
            )
    steps.append(
        Step(
            "Peepholes",
            sp.Eq(cc, gf.symbolic.step_jacobian(peep, "c"), evaluate=False),
            "So the carousel's Jacobian gains the paths through the forget and input gates' peepholes.",
            GERS_PEEPHOLES,
        )
    )
    return steps


def main() -> None:
    ex = Example(
        "cec_and_forget_gate",
        "C14, C15 (seed 002, the LSTM's road of evolution)",
        "The 1997 LSTM's cell state is a constant error carousel, dc(t)/dc(t-1) = I, so its error "
        "flows back unchanged; the forget gate makes it diag(f), a learned decay, and without one "
        "the cell state grows over a long sequence; peepholes let the gates see c.",
    )
    ex.formulas(
        "The constant error carousel, the forget gate and peepholes (Hochreiter and Schmidhuber 1997; "
        "Gers et al. 2000)",
        formulas(),
        references=(*gf.export.hochreiter_cec().references[1:], GERS_PEEPHOLES),
    )

    n, m, T, B = ex.size(32, 8), 4, ex.size(1000, 150), ex.size(4, 2)
    sizes = {"n": n, "m": m}
    x = np.random.default_rng(0).normal(size=(T, B, m))
    old, forget = gf.cells.lstm(forget_gate=False), gf.cells.lstm()
    print(f"LSTM cells, n = {n}, m = {m}, T = {T}, B = {B}, Gaussian weights (gain 1), inputs N(0, 1)")
    print()

    # C14, symbolic: the carousel's Jacobian and its q-step product are the identity
    q = 50
    ex.check(
        gf.symbolic.step_jacobian(old, "c") == sp.Identity(old.states["c"])
        and cec_path(old, q) == sp.Identity(old.states["c"]),
        f"C14: gradflow derives dc(t)/dc(t-1) = I for the 1997 LSTM, and the product over q = {q} "
        "steps is I (cec_path)",
    )

    # C14, numeric: the direct path, every weight random
    params_old = gf.init_params(old, sizes=sizes, seed=0)
    carousel = gf.jacobian_chain(old, params_old, x, states=["c"])  # h held as an input
    spread = float(np.max(np.abs(carousel.log_spectral)))
    ex.check(
        spread < 1e-12,
        f"C14: along the carousel (h held fixed) ||dc(T)/dc(T-k)||_2 = 1 at every lag k <= {T}: "
        f"largest |log norm| {spread:.1e}; the error flows back unchanged",
    )

    # C14, the total chain: the carousel exactly when the h -> c paths are cut
    cut = dict(params_old, W_i=np.zeros((n, n)), W_c=np.zeros((n, n)))
    total_cut = gf.jacobian_chain(old, cut, x, full=True).matrix(T)  # (B, 2n, 2n), order (h, c)
    c_of_c, c_of_h = total_cut[:, n:, n:], total_cut[:, n:, :n]
    error = float(np.max(np.abs(c_of_c - np.eye(n))))
    ex.check(
        error < 1e-12 and float(np.max(np.abs(c_of_h))) == 0.0,
        f"C14: with W_i = W_c = 0 (no path h -> c) the total dc(T)/dc(0) over T = {T} steps is I "
        f"(largest entry error {error:.1e}) and dc(T)/dh(0) = 0",
    )
    total = gf.jacobian_chain(old, params_old, x, full=True).matrix(T)
    through_h = float(np.median(np.linalg.norm(total[:, n:, n:], 2, axis=(1, 2))))
    ex.check(
        abs(math.log(through_h)) > 0.01,
        f"C14: the carousel is the direct path only: with the h -> c paths as they are (random W_i, "
        f"W_c) the total ||dc(T)/dc(0)||_2 is {through_h:.3g}, not 1",
    )

    # C15, forget gate: the carousel decays like prod f
    runs: dict[str, gf.numeric.ChainResult] = {"no forget gate (1997): the identity": carousel}
    worst, rates = 0.0, []
    for bias in FORGET_BIASES:
        params = gf.init_params(forget, sizes=sizes, seed=0, values={"b_f": bias})
        params.update(W_f=np.zeros((n, n)), W_i=np.zeros((n, n)), W_c=np.zeros((n, n)))
        # diagonal chains whose largest unit changes over time: the referee below checks the norms
        both = gf.jacobian_chain(forget, params, x, states=["c"])
        f = np.asarray(both.trajectory["f"])  # (T, B, n), t = 1..T
        # referee: ||prod_k diag(f(T-k+1..T))||_2 = max over units of the product of the gate values
        logs = np.concatenate([np.zeros((1, B)), np.max(np.cumsum(np.log(f[::-1]), axis=0), axis=-1)])
        worst = max(worst, float(np.max(np.abs(both.log_spectral - logs))))
        # the c-block of the total chain of (h, c) is the same product (no path h -> c)
        block = gf.jacobian_chain(forget, params, x[:20], full=True).matrix(20)[:, n:, n:]
        f20 = np.prod(np.asarray(gf.simulate(forget, params, x[:20])["f"]), axis=0)  # (B, n)
        worst = max(worst, float(np.max(np.abs(block - f20[:, :, None] * np.eye(n)))))
        slope = float(np.polyfit(np.arange(T + 1), np.median(both.log_spectral, axis=1), 1)[0])
        slowest = float(np.mean(np.max(np.log(f).mean(axis=0), axis=-1)))  # the slowest unit's mean log f
        rates.append((bias, slope, slowest))
        runs[f"forget gate, b_f = {bias:g} (mean f {float(f.mean()):.3f})"] = both
    ex.check(
        worst < 1e-10,
        f"C15: with a forget gate the carousel is prod diag(f): ||dc(T)/dc(T-k)||_2 equals the largest "
        f"product of gate values over the last k steps, for b_f = {', '.join(f'{b:g}' for b in FORGET_BIASES)} "
        f"(largest log error {worst:.1e}; the total chain's c-block over 20 steps too)",
    )
    ex.check(
        all(abs(slope - slowest) <= 0.1 * abs(slowest) for _, slope, slowest in rates)
        and all(a[1] > b[1] for a, b in itertools.pairwise(rates)),
        "C15: the carousel decays like the slowest unit's product of gates, faster as the gate closes "
        "(fitted rate; the slowest unit's geometric-mean f): "
        + ", ".join(f"b_f = {b:g}: {math.exp(s):.4f}^k ({math.exp(w):.4f})" for b, s, w in rates),
    )

    # C15: without a forget gate the cell state grows over a long sequence; with one it stays bounded
    long_x = np.random.default_rng(1).normal(size=(T, B, m))
    grown = gf.simulate(old, params_old, long_x)
    params_f = gf.init_params(forget, sizes=sizes, seed=0, values={"b_f": 1.0})
    kept = gf.simulate(forget, params_f, long_x)
    size_old = np.abs(np.asarray(grown["c"])).mean(axis=(1, 2))  # mean |c(t)|, t = 0..T
    size_f = np.abs(np.asarray(kept["c"])).mean(axis=(1, 2))
    early = T // 10
    saturated = float(np.mean(np.abs(np.tanh(np.asarray(grown["c"])[-1])) > 0.99))
    ex.check(
        size_old[T] > 4 * size_old[early] and saturated > 0.5,
        f"C15: without a forget gate the cell state keeps growing: mean |c| is {size_old[early]:.3g} "
        f"at t = {early} and {size_old[T]:.3g} at t = {T} (x{size_old[T] / size_old[early]:.1f}); "
        f"{100 * saturated:.0f}% of tanh(c(T)) are saturated (|tanh c| > 0.99)",
    )
    # each unit: |c_j(t)| <= sum_k (max_t f_j)^k max|i c_tilde| <= 1 / (1 - max_t f_j)
    f_max = np.max(np.asarray(kept["f"]), axis=0)  # (B, n)
    fill = float(np.max(np.max(np.abs(np.asarray(kept["c"])), axis=0) * (1.0 - f_max)))
    ex.check(
        fill <= 1.0 and size_f[T] < 2 * size_f[early],
        f"C15: with a forget gate (b_f = 1) it stays bounded: every unit's |c_j| stays below "
        f"1/(1 - max_t f_j) (at most {fill:.2f} of it); mean |c| {size_f[early]:.3g} at t = {early}, "
        f"{size_f[T]:.3g} at t = {T}",
    )

    # C15, peepholes: the derived Jacobian of c sees p_f and p_i; numbers against finite differences
    peep = gf.cells.lstm(peephole=True)
    small = {"n": 4, "m": m}
    params_p = gf.init_params(peep, sizes=small, seed=2, values={"p_f": 0.8, "p_i": -0.6, "p_o": 0.5})
    rng = np.random.default_rng(3)
    x1, h0, c0 = rng.normal(size=(1, 1, m)), rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
    step = gf.jacobian_chain(peep, params_p, x1, {"h": h0, "c": c0}, full=True).matrix(1)[0, 4:, 4:]
    eps, columns = 1e-6, []
    for j in range(4):
        shift = np.zeros((1, 4))
        shift[0, j] = eps
        up = gf.simulate(peep, params_p, x1, {"h": h0, "c": c0 + shift})["c"][1, 0]
        down = gf.simulate(peep, params_p, x1, {"h": h0, "c": c0 - shift})["c"][1, 0]
        columns.append((up - down) / (2 * eps))
    reference = np.stack(columns, axis=1)
    f1 = np.asarray(gf.simulate(peep, params_p, x1, {"h": h0, "c": c0})["f"])[0, 0]
    fd_error = float(np.max(np.abs(step - reference)))
    beyond = float(np.max(np.abs(step - np.diag(f1))))
    symbols = {s.name for s in gf.symbolic.step_jacobian(peep, "c").free_symbols}
    symbols_h = {s.name for s in gf.symbolic.step_jacobian(peep, "h", "c").free_symbols}
    ex.check(
        {"p_f", "p_i"} <= symbols and "p_o" in symbols_h and fd_error < 1e-8 and beyond > 1e-3,
        f"C15: with peepholes the gates see c: dc(t)/dc(t-1) gains terms in p_f and p_i (and dh(t)/dc(t-1) "
        f"one in p_o); gradflow's number agrees with central differences to {fd_error:.1e} and differs "
        f"from diag(f) by {beyond:.3f} (largest entry, n = 4)",
    )

    ex.figure(
        gf.plot.chain_norms(
            runs,
            title=r"The LSTM's carousel $\|\partial c^{(T)}/\partial c^{(T-k)}\|_2$ along the cell state, "
            f"h held fixed (n = {n}, T = {T}, B = {B}); forget gates driven by their bias only",
        )
    )
    ex.figure(growth_figure(old, forget, long_x[:, :1], 4), "growth")
    ex.finish()


def growth_figure(old: gf.Cell, forget: gf.Cell, x: np.ndarray, units: int) -> Figure:
    """The cell state of one sequence of small LSTMs, without and with a forget gate, on one scale."""
    figure = Figure(figsize=(12.0, 3.8), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    sizes = {"n": units, "m": x.shape[-1]}
    for column, (cell, extra, label) in enumerate(
        ((old, {}, "no forget gate (1997)"), (forget, {"b_f": 1.0}, "forget gate, b_f = 1"))
    ):
        params = gf.init_params(cell, sizes=sizes, seed=0, values=extra)
        gf.plot.gates(gf.simulate(cell, params, x), ["c"], kind="lines", ax=[axes[column]])
        axes[column].set_title(label, loc="left")
    figure.suptitle(
        f"The cell state c of a {units}-unit LSTM over T = {x.shape[0]} steps (one sequence, same "
        "weights): it grows without a forget gate",
        x=0.01,
        ha="left",
    )
    return figure


if __name__ == "__main__":
    main()
