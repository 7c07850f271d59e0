r"""How much gradient reaches a token k steps back, in trained PyTorch RNNs, LSTMs and GRUs (C7, context).

CS224n (seed 000) cites Linzen, Dupoux and Goldberg (2016): language models make more agreement
errors when the subject lies far from its verb, and vanishing gradients are blamed -- the loss at
the verb sends back a gradient that reaches the subject through :math:`k` step Jacobians,

.. math::
    \frac{\partial L}{\partial x^{(T-k)}}
      = \Bigl(\frac{\partial h^{(T-k)}}{\partial x^{(T-k)}}\Bigr)^{\!\top}
        \Bigl(\prod_{T-k<t\le T}\frac{\partial h^{(t)}}{\partial h^{(t-1)}}\Bigr)^{\!\top}
        \frac{\partial L}{\partial h^{(T)}}.

gradflow reproduces the gradient-flow side on a synthetic long-distance dependency, not language
modelling: a sequence of :math:`T` random tokens (one-hot, 4 kinds) whose class -- the *first*
token's kind, 0-1 or 2-3 -- must be reported after the last step, the other tokens being
distractors. Small PyTorch ``nn.RNN`` (tanh), ``nn.LSTM`` and ``nn.GRU`` models with a linear readout
are trained on it (seeded, CPU; the LSTM's forget gate and the GRU's update gate start biased to keep,
+3, as Gers et al. 2000 advise). Before and after training, ``gf.from_torch`` turns each recurrent
module into a gradflow cell and ``gf.bptt`` computes :math:`\lVert\partial L/\partial x^{(T-k)}\rVert_2`
for every :math:`k`, checked against PyTorch's own autograd. The script needs PyTorch
(``pip install torch==2.13.0``).

Run it::

    python examples/long_distance_gradient.py            # T = 30, n = 32, 400 training steps
    python examples/long_distance_gradient.py --quick    # T = 12, n = 16, 150 training steps
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure

import gradflow as gf
from gradflow.symbolic.bptt import state_signal
from gradflow.symbolic.nodes import Chain, Partial

LINZEN = (
    "T. Linzen, E. Dupoux, Y. Goldberg, Assessing the ability of LSTMs to learn syntax-sensitive "
    "dependencies, TACL 4, 2016."
)
GERS = (
    "F. A. Gers, J. Schmidhuber, F. Cummins, Learning to forget: continual prediction with LSTM, "
    "Neural Computation 12(10), 2000."
)
KINDS = 4  # token kinds; the class is whether the first token's kind is below KINDS / 2
KEEP_BIAS = 3.0


def formulas() -> list[Step]:
    """The adjoint of the Elman cell (the gradient a loss sends back), and the chains of the three cells."""
    elman = gf.cells.elman()
    steps = list(gf.derive(elman).titled("Adjoint (full)"))
    i, j = sp.symbols("i j", integer=True)
    steps.append(
        Step(
            "Elman RNN",
            sp.Eq(
                Partial(state_signal(elman, i), state_signal(elman, j)),
                gf.symbolic.chain(elman, i, j),
                evaluate=False,
            ),
            "The loss at step i reaches step j < i through i − j step Jacobians of the plain RNN.",
            LINZEN,
        )
    )
    for title, cell, what in (
        ("GRU", gf.cells.gru(reset_after=True), "GRU (gf.from_torch reads nn.GRU as the reset-after GRU)"),
        ("LSTM", gf.cells.lstm(), "LSTM, s = [h; c]"),
    ):
        state = state_signal(cell)
        factor = Partial(state, state_signal(cell, gf.cells.t - 1))
        steps.append(
            Step(
                title,
                sp.Eq(
                    Partial(state_signal(cell, i), state_signal(cell, j)), Chain(factor, j, i), evaluate=False
                ),
                f"The {what}: the same product of its step Jacobians (of the whole state).",
                LINZEN,
            )
        )
    lstm = gf.cells.lstm()
    steps.append(
        Step(
            "LSTM",
            sp.Eq(
                Partial(lstm.signal("c", gf.cells.t), lstm.signal("c", gf.cells.t - 1)),
                gf.symbolic.step_jacobian(lstm, "c"),
                evaluate=False,
            ),
            "Along the LSTM's cell state each step multiplies by the forget gate: started near 1 (bias +3), "
            "the gradient passes.",
            GERS,
        )
    )
    return steps


def task(generator: Any, batch: int, steps: int) -> tuple[Any, Any]:
    """A batch of the long-distance task: one-hot tokens (T, B, KINDS) and the first token's class (B,)."""
    import torch

    tokens = torch.randint(0, KINDS, (steps, batch), generator=generator)
    labels = (tokens[0] < KINDS // 2).long()
    return torch.nn.functional.one_hot(tokens, KINDS).double(), labels


def model(kind: str, n: int, seed: int) -> tuple[Any, Any]:
    """A recurrent module and its readout, seeded; gates that keep start biased to keep."""
    import torch

    torch.manual_seed(seed)
    module = getattr(torch.nn, kind)(KINDS, n).double()
    head = torch.nn.Linear(n, 2).double()
    block = {"LSTM": 1, "GRU": 1}.get(kind)  # PyTorch's gate order: LSTM i, f, g, o; GRU r, z, n
    if block is not None:
        with torch.no_grad():
            module.bias_ih_l0[block * n : (block + 1) * n] = KEEP_BIAS
    return module, head


def train(module: Any, head: Any, generator: Any, T: int, steps: int) -> None:
    """Adam with gradient-norm clipping at 1 on fresh batches of 32."""
    import torch

    parameters = [*module.parameters(), *head.parameters()]
    optimiser = torch.optim.Adam(parameters, lr=1e-2)
    for _ in range(steps):
        x, y = task(generator, 32, T)
        loss = torch.nn.functional.cross_entropy(head(module(x)[0][-1]), y)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()


def accuracy(module: Any, head: Any, generator: Any, T: int) -> float:
    import torch

    x, y = task(generator, 2000, T)
    with torch.no_grad():
        return float((head(module(x)[0][-1]).argmax(-1) == y).double().mean())


def input_gradients(module: Any, head: Any, x: Any, y: Any) -> tuple[gf.numeric.Gradients, np.ndarray]:
    """dL/dx(t) by gf.bptt on gf.from_torch(module) (the readout's gradient as upstream), and torch's own."""
    import torch

    leaf = x.clone().requires_grad_(True)
    output, _ = module(leaf)
    loss = torch.nn.functional.cross_entropy(head(output[-1]), y)
    output_grad = torch.autograd.grad(loss, output, retain_graph=True)[0]  # the readout's part
    (reference,) = torch.autograd.grad(loss, leaf)  # the referee: autograd through the whole module
    cell, params = gf.from_torch(module)
    upstream = gf.numeric.upstream_from_torch(module, output_grad)
    grads = gf.bptt(cell, params, gf.numeric.sequence_from_torch(module, x), upstream)
    return grads, reference.numpy()


def main() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("long_distance_gradient.py trains PyTorch models: pip install torch==2.13.0")
    ex = Example(
        "long_distance_gradient",
        "C7 (seed 000; Linzen et al. 2016, context)",
        "On a synthetic long-distance dependency (report the first of T tokens after the last), trained "
        "PyTorch RNN, LSTM and GRU models are read into gradflow: gf.bptt gives the gradient reaching the "
        "token k steps back, equal to PyTorch's autograd, and shows how much of it reaches the first token.",
    )
    ex.formulas(
        "The gradient reaching a token k steps back: the chain between it and the loss",
        formulas(),
        (LINZEN, GERS),
    )
    torch.set_num_threads(1)

    T, n, steps = ex.size(30, 12), ex.size(32, 16), ex.size(400, 150)
    print(
        f"task: T = {T} tokens of {KINDS} kinds, the class of the first one reported at step T; hidden size {n}"
    )
    print(f"training: {steps} Adam steps (lr 0.01, batches of 32, gradient norm clipped at 1), seed 0")
    print()
    before, after, accuracies, errors = {}, {}, {}, []
    for kind in ("RNN", "GRU", "LSTM"):
        module, head = model(kind, n, seed=0)
        generator = torch.Generator().manual_seed(1)
        x, y = task(torch.Generator().manual_seed(2), 64, T)  # the sequences the gradients are measured on
        grads, reference = input_gradients(module, head, x, y)
        before[kind] = grads
        errors.append(float(np.max(np.abs(grads.inputs["x"] - reference)) / np.max(np.abs(reference))))
        train(module, head, generator, T, steps)
        accuracies[kind] = accuracy(module, head, torch.Generator().manual_seed(3), T)
        grads, reference = input_gradients(module, head, x, y)
        after[kind] = grads
        errors.append(float(np.max(np.abs(grads.inputs["x"] - reference)) / np.max(np.abs(reference))))

    def decades(grads: gf.numeric.Gradients) -> float:
        """log10 of the median ||dL/dx(1)|| over the median ||dL/dx(T)||: the first token against the last."""
        norms = np.median(np.linalg.norm(np.asarray(grads.inputs["x"]), axis=-1), axis=1)
        return float(np.log10(norms[0] / norms[-1]))

    def first(grads: gf.numeric.Gradients) -> float:
        return float(np.median(np.linalg.norm(np.asarray(grads.inputs["x"])[0], axis=-1)))

    print(f"{'':6} {'accuracy':>9} {'first/last token, before':>26} {'after training':>16}")
    for kind in before:
        print(
            f"{kind:6} {accuracies[kind]:9.3f} {decades(before[kind]):+23.2f} dec {decades(after[kind]):+13.2f} dec"
        )
    print()
    ex.check(
        max(errors) < 1e-10,
        f"gradflow's dL/dx(t) for every step, from gf.from_torch and gf.bptt, equals PyTorch's autograd for "
        f"the RNN, GRU and LSTM, before and after training (largest relative error {max(errors):.1e})",
    )
    rnn, gated = decades(before["RNN"]), {kind: decades(before[kind]) for kind in ("GRU", "LSTM")}
    ex.check(
        rnn < -1.5 and all(value > -1 for value in gated.values()),
        f"C7: before training the plain RNN's gradient vanishes over the distance: at the first token, {T - 1} "
        f"steps back, it is 10^{rnn:.1f} of its size at the last token; the GRU and LSTM, whose gates start "
        f"keeping, still carry 10^{gated['GRU']:.1f} and 10^{gated['LSTM']:.1f} of it there: "
        f"{10 ** (gated['GRU'] - rnn):.3g} and {10 ** (gated['LSTM'] - rnn):.3g} times the RNN's share",
    )
    shares = {kind: decades(g) for kind, g in after.items()}
    ex.check(
        all(shares[kind] > shares["RNN"] + 1 for kind in ("GRU", "LSTM")),
        "C7: after training (accuracies "
        + ", ".join(f"{kind} {value:.3f}" for kind, value in accuracies.items())
        + ") the gated cells still send far more of the gradient back to the first token: its share is "
        + ", ".join(f"{kind} 10^{value:.1f}" for kind, value in shares.items())
        + f"; at the largest k the ratio to the plain RNN is {10 ** (shares['GRU'] - shares['RNN']):.3g} (GRU) "
        f"and {10 ** (shares['LSTM'] - shares['RNN']):.3g} (LSTM)",
    )
    if accuracies["RNN"] >= 0.9:
        states = np.asarray(after["RNN"].trajectory["h"])[1:]  # (T, B, n), from gradflow's simulation
        saturated = float(np.mean(np.abs(states) > 0.99))
        print(
            textwrap.fill(
                f"note: the plain RNN solved the task (accuracy {accuracies['RNN']:.3f}) although only 10^"
                f"{shares['RNN']:.1f} of the gradient reaches the first token; {100 * saturated:.0f}% of its "
                "hidden values have |h| > 0.99: storing information robustly in saturated units is what "
                "makes the gradient vanish (Bengio, Simard, Frasconi 1994), so a vanishing gradient makes "
                "such a solution hard to find rather than impossible to hold.",
                100,
            )
        )
        print()

    figure = Figure(figsize=(14.0, 4.8), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    gf.plot.gradient_per_step({f"{kind}": g for kind, g in before.items()}, ax=left, title="before training")
    gf.plot.gradient_per_step(
        {f"{kind} (accuracy {accuracies[kind]:.2f})": g for kind, g in after.items()},
        ax=right,
        title=f"after {steps} training steps",
    )
    figure.suptitle(
        f"Gradient reaching the token k steps back, PyTorch models read by gf.from_torch (T = {T}, n = {n}, "
        "64 sequences; loss at the last step)",
        x=0.01,
        ha="left",
    )
    ex.figure(figure)
    ex.finish()


if __name__ == "__main__":
    main()
