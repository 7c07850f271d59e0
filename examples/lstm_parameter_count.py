r"""An LSTM has four times the parameters of a plain RNN; PyTorch's shapes (seed 004, claim C23).

The Datawhale notes (seed 004) count an LSTM's parameters: each of its four blocks -- the forget,
input and output gates and the candidate -- has a recurrent matrix :math:`W_g` (:math:`n \times n`),
an input matrix :math:`U_g` (:math:`n \times m`) and a bias :math:`b_g` (:math:`n`), as many as a whole
Elman RNN, so

.. math::
    P_{\mathrm{LSTM}} = 4\,n(n + m + 1) = 4\,P_{\mathrm{RNN}}, \qquad P_{\mathrm{GRU}} = 3\,n(n + m + 1).

PyTorch keeps two bias vectors per block (``bias_ih`` and ``bias_hh``), so its modules hold
:math:`4n(n + m + 2)` and :math:`n(n + m + 2)` -- the same ratio. The notes also give the shapes of
``torch.nn.RNN``/``LSTM``: the input is :math:`(L, N, H_{in})` (sequence length, batch, features),
the output :math:`(L, N, D \cdot H_{out})` and the final states :math:`(D \cdot \text{num\_layers}, N,
H_{out})`, with :math:`D = 2` for a bidirectional module.

gradflow counts the parameters from its cells' own shapes (symbolic :math:`n, m`), reads real
PyTorch modules with ``gf.from_torch`` (which folds the two biases into one), runs them with
``gf.simulate`` and converts the results back with the interop converters. It needs PyTorch
(``pip install torch==2.13.0``).

Run it::

    python examples/lstm_parameter_count.py            # H_in = 64, H_out = 128
    python examples/lstm_parameter_count.py --quick    # H_in = 8, H_out = 16
"""

from __future__ import annotations

import sys

import numpy as np
import sympy as sp
from _example import Example, Step
from matplotlib.figure import Figure

import gradflow as gf

DATAWHALE = "Datawhale notes on RNN and LSTM (seed 004)."
PYTORCH = "PyTorch documentation, torch.nn.RNN, torch.nn.LSTM and torch.nn.GRU."


def count(cell: gf.Cell) -> sp.Expr:
    """The number of parameters of a cell: the sum of the products of its parameters' shapes."""
    return sp.factor(sp.Add(*(sp.Mul(*shape) for shape in cell.params.values())))


def biases(cell: gf.Cell) -> int:
    """How many bias vectors (one per gate or block) the cell has."""
    return sum(
        1 for name in cell.params if name.split(".")[-1].startswith("b_") or name.split(".")[-1] == "b"
    )


def formulas(cells: dict[str, gf.Cell]) -> list[Step]:
    """Each cell's count from its shapes, the LSTM/RNN ratio, and PyTorch's count with a second bias."""
    n = cells["RNN"].states["h"]
    steps = []
    for label, cell in cells.items():
        steps.append(
            Step(
                "Parameters",
                sp.Eq(sp.Symbol(f"P_{{\\mathrm{{{label}}}}}"), count(cell), evaluate=False),
                f"gradflow's {cell.name} cell: the sum of the sizes of its {len(cell.params)} parameters "
                "(matrices n × n and n × m, vectors n).",
                DATAWHALE,
            )
        )
    ratio = sp.simplify(count(cells["LSTM"]) / count(cells["RNN"]))
    steps.append(
        Step(
            "Parameters",
            sp.Eq(sp.Symbol(r"P_{\mathrm{LSTM}} / P_{\mathrm{RNN}}"), ratio, evaluate=False),
            "Four blocks, each the size of a whole plain RNN.",
            DATAWHALE,
        )
    )
    lstm = cells["LSTM"]
    steps.append(
        Step(
            "PyTorch",
            sp.Eq(
                sp.Symbol(r"P_{\mathrm{nn.LSTM}}"),
                sp.factor(count(lstm) + biases(lstm) * n),
                evaluate=False,
            ),
            "PyTorch keeps two bias vectors for every block, one with the input matrix and one with the "
            "recurrent matrix: one more n-vector per block (gf.from_torch adds them into the cell's one bias).",
            PYTORCH,
        )
    )
    return steps


def main() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("lstm_parameter_count.py compares against PyTorch modules: pip install torch==2.13.0")
    ex = Example(
        "lstm_parameter_count",
        "C23 (seed 004, Datawhale notes)",
        "An LSTM has four times the parameters of a plain RNN of the same sizes, 4n(n + m + 1) against "
        "n(n + m + 1); PyTorch's modules (two biases per block) keep the ratio, and their tensors have "
        "the shapes (L, N, H_in), (L, N, D H_out), (D num_layers, N, H_out).",
    )
    cells = {
        "RNN": gf.cells.elman(),
        "GRU": gf.cells.gru(),
        "LSTM": gf.cells.lstm(),
        "LSTM, peepholes": gf.cells.lstm(peephole=True),
    }
    ex.formulas(
        "Parameters of the RNN, GRU and LSTM cells, and of PyTorch's modules",
        formulas(cells),
        (DATAWHALE, PYTORCH),
    )

    n, m = cells["RNN"].states["h"], cells["RNN"].inputs["x"]
    expected = {
        "RNN": n * (n + m + 1),
        "GRU": 3 * n * (n + m + 1),
        "LSTM": 4 * n * (n + m + 1),
        "LSTM, peepholes": 4 * n * (n + m + 1) + 3 * n,
    }
    ex.check(
        all(sp.expand(count(cell) - expected[label]) == 0 for label, cell in cells.items())
        and sp.simplify(count(cells["LSTM"]) / count(cells["RNN"])) == 4,
        "C23: from the cells' own shapes, P_LSTM = "
        f"{count(cells['LSTM'])} = 4 P_RNN (P_RNN = {count(cells['RNN'])}); P_GRU = {count(cells['GRU'])}; "
        f"peepholes add 3n: {count(cells['LSTM, peepholes'])}",
    )

    H_in, H_out, L, N = ex.size(64, 8), ex.size(128, 16), ex.size(50, 7), ex.size(8, 3)
    torch.manual_seed(0)
    modules = {"RNN": torch.nn.RNN, "GRU": torch.nn.GRU, "LSTM": torch.nn.LSTM}
    counts, consistent = {}, True
    for label, kind in modules.items():
        module = kind(H_in, H_out).double()
        cell, params = gf.from_torch(module)
        ours = sum(int(np.prod(value.shape)) for value in params.values())
        theirs = sum(p.numel() for p in module.parameters())
        folded = {"RNN": 1, "GRU": 2, "LSTM": 4}[label]  # bias_hh vectors added into gradflow's biases
        formula = int(
            count(cells[label] if label != "GRU" else gf.cells.gru(reset_after=True)).subs(
                {n: H_out, m: H_in}
            )
        )
        consistent = consistent and ours == formula and theirs == ours + folded * H_out
        counts[label] = (ours, theirs)
    # a 2-layer bidirectional LSTM: layer 2 reads both directions of layer 1 (m = 2 H_out)
    deep = torch.nn.LSTM(H_in, H_out, num_layers=2, bidirectional=True)
    _, deep_params = gf.from_torch(deep)
    lstm_count = count(cells["LSTM"])
    layered = 2 * lstm_count.subs({n: H_out, m: H_in}) + 2 * lstm_count.subs({n: H_out, m: 2 * H_out})
    deep_counts = (
        sum(int(np.prod(v.shape)) for v in deep_params.values()),
        sum(p.numel() for p in deep.parameters()),
    )
    consistent = consistent and deep_counts[0] == layered and deep_counts[1] == layered + 2 * 2 * 4 * H_out
    ex.check(
        consistent
        and counts["LSTM"][0] == 4 * counts["RNN"][0]
        and counts["LSTM"][1] == 4 * counts["RNN"][1],
        f"C23: real modules with H_in = {H_in}, H_out = {H_out}: nn.LSTM holds {counts['LSTM'][1]} "
        f"parameters = 4 x nn.RNN's {counts['RNN'][1]} (4 H(H + H_in + 2), two biases per block); "
        f"gf.from_torch's cells hold {counts['LSTM'][0]} = 4 x {counts['RNN'][0]}, the cells' formula, one "
        f"bias per block (nn.GRU: {counts['GRU'][1]}, its cell {counts['GRU'][0]}: the candidate keeps both biases); "
        f"a 2-layer bidirectional nn.LSTM holds {deep_counts[1]}, its cell {deep_counts[0]} = 2 P_LSTM(H_out, "
        "H_in) + 2 P_LSTM(H_out, 2 H_out)",
    )

    # shapes and values through gf.from_torch and the converters, against the modules' own forward pass
    worst, shapes_ok, lines = 0.0, True, []
    for label, kind in modules.items():
        for layers, directions, batch_first in ((1, 1, False), (2, 2, False), (2, 1, True)):
            module = kind(
                H_in, H_out, num_layers=layers, bidirectional=directions == 2, batch_first=batch_first
            ).double()
            x = (
                torch.randn(N, L, H_in, dtype=torch.float64)
                if batch_first
                else torch.randn(L, N, H_in, dtype=torch.float64)
            )
            output, final = module(x)
            h_n, c_n = final if isinstance(final, tuple) else (final, None)
            cell, params = gf.from_torch(module)
            inputs = gf.numeric.sequence_from_torch(module, x)
            trajectory = gf.simulate(cell, params, inputs)
            out = gf.numeric.output_to_torch(module, trajectory)
            h, c = gf.numeric.states_to_torch(module, gf.numeric.final_states(trajectory))
            want = {
                "input": (N, L, H_in) if batch_first else (L, N, H_in),
                "output": (N, L, directions * H_out) if batch_first else (L, N, directions * H_out),
                "h_n": (directions * layers, N, H_out),
            }
            shapes_ok = shapes_ok and (
                tuple(x.shape) == want["input"]
                and inputs.shape == (L, N, H_in)
                and tuple(output.shape) == out.shape == want["output"]
                and tuple(h_n.shape) == h.shape == want["h_n"]
                and (c_n is None or tuple(c_n.shape) == c.shape == want["h_n"])
            )
            pairs = [(out, output), (h, h_n)] + ([(c, c_n)] if c_n is not None else [])
            worst = max(worst, *(float(np.max(np.abs(a - b.detach().numpy()))) for a, b in pairs))
            if layers == 2 and directions == 2:
                lines.append(
                    f"nn.{label}: output {tuple(output.shape)}, h_n {tuple(h_n.shape)}"
                    + (f", c_n {tuple(c_n.shape)}" if c_n is not None else "")
                )
    ex.check(
        shapes_ok and worst < 1e-12,
        f"C23: PyTorch's shapes: input (L, N, H_in) = ({L}, {N}, {H_in}) (batch_first: (N, L, H_in)), read by "
        f"gradflow as (T, B, m); with num_layers = 2, bidirectional: "
        + "; ".join(lines)
        + f" = (L, N, D H_out) and (D num_layers, N, H_out); gf.simulate on gf.from_torch's cell gives the "
        f"modules' output, h_n and c_n to {worst:.1e} (RNN, GRU, LSTM; 1 or 2 layers, 1 or 2 directions)",
    )
    ex.figure(bar_chart(counts, H_in, H_out))
    ex.finish()


def bar_chart(counts: dict[str, tuple[int, int]], H_in: int, H_out: int) -> Figure:
    """Parameter counts of the three cells, gradflow's (one bias per block) beside PyTorch's (two)."""
    figure = Figure(figsize=(8.0, 4.8), layout="constrained")
    ax = figure.subplots()
    labels = list(counts)
    where = np.arange(len(labels))
    width = 0.38
    rnn = counts["RNN"]
    for shift, index, name, colour in (
        (-width / 2, 0, "gradflow cell (gf.from_torch): one bias per block", gf.plot.PALETTE[0]),
        (width / 2, 1, "PyTorch module: bias_ih and bias_hh", gf.plot.PALETTE[1]),
    ):
        values = [counts[label][index] for label in labels]
        bars = ax.bar(where + shift, values, width, label=name, color=colour)
        ax.bar_label(
            bars, labels=[f"{v:,}\n(×{v / rnn[index]:.2f})" for v in values], fontsize="small", padding=2
        )
    ax.set_xticks(
        where,
        [
            f"{label}\n{blocks} block{'s' if blocks > 1 else ''}"
            for label, blocks in zip(labels, (1, 3, 4), strict=True)
        ],
    )
    ax.set_ylabel("parameters")
    ax.set_ylim(0, 1.25 * max(v for pair in counts.values() for v in pair))
    ax.legend(loc="upper left", frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(
        f"Parameters of one recurrent layer, $H_{{in}}$ = {H_in} inputs, $H_{{out}}$ = {H_out} units: "
        "gradflow's cells and PyTorch's modules (×: relative to the plain RNN)",
        loc="left",
        wrap=True,
    )
    return figure


if __name__ == "__main__":
    main()
