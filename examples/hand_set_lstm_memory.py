r"""The hand-set LSTM memory cell of the Datawhale notes (seed 004, claim C22).

A one-unit LSTM with input :math:`x = (x_1, x_2, x_3)` and hand-chosen weights behaves like a
memory register:

* :math:`x_2 = 1` opens the input gate and writes :math:`x_1` into the cell (the forget gate
  stays open, so the new value is *added*);
* :math:`x_2 = -1` closes the forget gate: the cell is reset to 0;
* :math:`x_3 = 1` opens the output gate: the cell is read out.

The input and output gates are normally closed (bias -10), the forget gate normally open (bias
+10); the candidate and the cell output are the identity, so :math:`\tilde c = x_1` and
:math:`h = o \circ c`. On the notes' input sequence the memory holds 3, 7, 7, 7, 0, 6, 6 and the
output is 0, 0, 0, 7, 0, 0, 6.

gradflow runs the built-in ``lstm`` cell with these weights through ``gf.simulate`` (kernels
compiled from the cell's sympy equations); an independent referee evaluates the same equations
with sympy, component by component, in 30 digits (:func:`evaluate_step`). The carousel
:math:`\partial c^{(t)}/\partial c^{(t-1)} = \operatorname{diag}(f^{(t)})` also says where the
memory's gradient flows: back to the last reset, and no further.

Run it::

    python examples/hand_set_lstm_memory.py            # the notes' 7 steps
    python examples/hand_set_lstm_memory.py --quick    # the same (it takes no time)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp
from _example import Example, Step
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells import Signal, t
from gradflow.symbolic.nodes import Partial

__all__ = [
    "INPUTS",
    "MEMORY",
    "OUTPUT",
    "PARAMS",
    "build_cell",
    "evaluate_step",
    "referee_memory_example",
    "run_memory_example",
    "simulate_memory_example",
]

DATAWHALE = "Datawhale notes on RNN and LSTM (seed 004): the hand-set LSTM memory example."

#: The input sequence (x1, x2, x3) of the notes.
INPUTS: tuple[tuple[int, int, int], ...] = (
    (3, 1, 0),
    (4, 1, 0),
    (2, 0, 0),
    (1, 0, 1),
    (3, -1, 0),
    (6, 1, 0),
    (1, 0, 1),
)

#: The memory c and the output h after each step, as the notes give them.
MEMORY: tuple[float, ...] = (3, 7, 7, 7, 0, 6, 6)
OUTPUT: tuple[float, ...] = (0, 0, 0, 7, 0, 0, 6)

#: The hand-chosen parameters; every recurrent matrix W_* is 0.
PARAMS: dict[str, Any] = {
    "W_f": [[0]], "U_f": [[0, 100, 0]], "b_f": [10],
    "W_i": [[0]], "U_i": [[0, 100, 0]], "b_i": [-10],
    "W_o": [[0]], "U_o": [[0, 0, 100]], "b_o": [-10],
    "W_c": [[0]], "U_c": [[1, 0, 0]], "b_c": [0],
}  # fmt: skip


def build_cell() -> gf.Cell:
    """The LSTM of the example: one unit, three inputs, identity candidate and cell output."""
    return gf.cells.lstm(n=1, m=3, activation="identity", cell_activation="identity")


def _arrays(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The parameters as float arrays of the cell's shapes ((1, 1), (1, 3), (1,))."""
    cell = build_cell()
    return {
        name: np.asarray(value, dtype=float).reshape(tuple(int(d) for d in cell.params[name]))
        for name, value in params.items()
    }


def simulate_memory_example(
    inputs: Sequence[Sequence[float]] = INPUTS, params: Mapping[str, Any] | None = None
) -> gf.numeric.Trajectory:
    """``gf.simulate`` of the memory LSTM over ``inputs`` (one sequence) from zero states."""
    x = np.asarray(inputs, dtype=float)[:, None, :]  # (T, 1, 3)
    return gf.simulate(build_cell(), _arrays(PARAMS if params is None else params), x)


def run_memory_example(
    inputs: Sequence[Sequence[float]] = INPUTS, params: Mapping[str, Any] | None = None
) -> tuple[list[float], list[float]]:
    """Run the memory LSTM with ``gf.simulate``.

    Returns
    -------
    memory, output : list of float
        The cell state :math:`c^{(t)}` and the output :math:`h^{(t)}` after each step.
    """
    trajectory = simulate_memory_example(inputs, params)
    return (
        [float(v) for v in np.asarray(trajectory["c"])[1:, 0, 0]],
        [float(v) for v in np.asarray(trajectory["h"])[1:, 0, 0]],
    )


def evaluate_step(
    cell: gf.Cell,
    params: Mapping[str, Any],
    previous: Mapping[str, Any],
    inputs: Mapping[str, Any],
    digits: int = 30,
) -> dict[str, sp.Matrix]:
    """One step of ``cell``, evaluated from its own sympy equations (the referee of ``gf.simulate``).

    Each equation of :attr:`Cell.order` is expanded into components (``as_explicit``); every
    matrix entry of a parameter, of a state at ``t - 1``, of an input at ``t`` or of a value
    already computed this step is replaced by its number, and the result is evaluated with
    ``evalf``.

    Parameters
    ----------
    cell : Cell
        A cell with concrete sizes and forward states.
    params : mapping of str to array-like
        Parameter values: a number for a scalar, a list for a vector, a list of rows for a matrix.
    previous : mapping of str to list
        The states at ``t - 1``.
    inputs : mapping of str to list
        The inputs at ``t``.
    digits : int
        Precision of ``evalf``.

    Returns
    -------
    dict of str to sympy.Matrix
        The new value of every intermediate, state and output (columns).

    Raises
    ------
    KeyError
        When a value the equations need is missing (named in the message).
    """
    arrays: dict[sp.Basic, sp.Matrix] = {}
    scalars: dict[sp.Basic, sp.Expr] = {}
    for name, value in params.items():
        symbol = cell.parameter(name)
        if isinstance(symbol, sp.MatrixSymbol):
            arrays[symbol] = sp.Matrix(value).reshape(*symbol.shape)
        else:
            scalars[symbol] = sp.nsimplify(value)
    for name, value in previous.items():
        arrays[cell.signal(name, t - 1)] = sp.Matrix(value)
    for name, value in inputs.items():
        arrays[cell.signal(name, t)] = sp.Matrix(value)

    computed: dict[str, sp.Matrix] = {}
    for kind, name in cell.order:
        explicit = sp.Matrix(cell.expression(kind, name).as_explicit())
        entries = {}
        for element in explicit.atoms(MatrixElement):
            parent = element.parent
            if parent not in arrays:
                what = parent.name if isinstance(parent, Signal | sp.MatrixSymbol) else parent
                raise KeyError(f"no value for {what} (needed by {kind} {name!r})")
            entries[element] = arrays[parent][int(element.i), int(element.j)]
        value = explicit.xreplace(entries).xreplace(scalars).evalf(digits)
        arrays[cell.signal(name, t)] = value
        computed[name] = value
    return computed


def referee_memory_example(
    inputs: Sequence[Sequence[float]] = INPUTS, params: Mapping[str, Any] | None = None
) -> list[dict[str, float]]:
    """Every signal after each step, from :func:`evaluate_step` (sympy, 30 digits), from zero states."""
    cell = build_cell()
    params = PARAMS if params is None else params
    states = {name: [0] * int(size) for name, size in cell.states.items()}
    steps = []
    for x in inputs:
        values = evaluate_step(cell, params, states, {"x": list(x)})
        states = {name: list(values[name]) for name in cell.states}
        steps.append({name: float(value[0]) for name, value in values.items()})
    return steps


def formulas(cell: gf.Cell) -> list[Step]:
    """The cell's equations, the hand-set weights, and the carousel's Jacobian."""
    meaning = {
        "f": "The forget gate (gf.cells.lstm with an identity candidate and cell output).",
        "i": "The input gate.",
        "o": "The output gate.",
        "c_tilde": "The candidate: the identity here.",
        "c": "The cell keeps f ∘ c and adds i ∘ c̃.",
        "h": "The output reads the cell through the output gate (identity cell output).",
    }
    steps = [
        Step(
            "LSTM",
            sp.Eq(cell.signal(name, t), cell.expression(kind, name), evaluate=False),
            meaning[name],
            DATAWHALE,
        )
        for kind, name in cell.order
    ]
    roles = {
        "f": "forget gate: open (bias +10) unless x2 = −1",
        "i": "input gate: closed (bias −10) unless x2 = 1",
        "o": "output gate: closed (bias −10) unless x3 = 1",
        "c": "candidate: x1",
    }
    for gate, role in roles.items():
        values = [
            sp.Eq(cell.parameter(f"{p}_{gate}"), sp.Matrix(PARAMS[f"{p}_{gate}"]), evaluate=False)
            for p in ("U", "b")
        ]
        steps.append(
            Step("Hand-set weights", values[0], f"The {role} (every recurrent W is 0) ...", DATAWHALE)
        )
        steps.append(Step("Hand-set weights", values[1], "... and its bias.", DATAWHALE))
    steps.append(
        Step(
            "Memory and gradient",
            sp.Eq(
                Partial(cell.signal("c", t), cell.signal("c", t - 1)),
                gf.symbolic.step_jacobian(cell, "c"),
                evaluate=False,
            ),
            "The memory is the carousel: each step multiplies the gradient along c by the forget gate, "
            "≈ 1 while the cell keeps and ≈ 0 at a reset.",
            DATAWHALE,
        )
    )
    return steps


def main() -> None:
    ex = Example(
        "hand_set_lstm_memory",
        "C22 (seed 004, Datawhale notes)",
        "A one-unit LSTM with hand-set weights is a memory register: x2 = 1 writes x1 into the cell, "
        "x2 = -1 resets it, x3 = 1 reads it out; gf.simulate reproduces the notes' memory and output.",
    )
    cell = build_cell()
    ex.formulas("The hand-set LSTM memory cell (Datawhale notes)", formulas(cell), references=(DATAWHALE,))

    trajectory = simulate_memory_example()
    memory, output = run_memory_example()
    print(f"{'t':>2}  {'x = (x1, x2, x3)':<18}{'memory c':>10}{'output h':>10}")
    for step, (x, c, h) in enumerate(zip(INPUTS, memory, output, strict=True), start=1):
        print(f"{step:>2}  {x!s:<18}{c:>10.4f}{h:>10.4f}")
    print()

    error_c = max(abs(a - b) for a, b in zip(memory, MEMORY, strict=True))
    error_h = max(abs(a - b) for a, b in zip(output, OUTPUT, strict=True))
    ex.check(
        error_c < 1e-3,
        f"C22: the memory follows the notes, c = {', '.join(f'{v:g}' for v in MEMORY)} (gf.simulate; largest "
        f"difference {error_c:.1e}: the closed gates leak sigmoid(-10) = 4.5e-5 a step)",
    )
    ex.check(
        error_h < 1e-3,
        f"C22: the output follows the notes, h = {', '.join(f'{v:g}' for v in OUTPUT)}: the cell is read out "
        f"only where x3 = 1 (largest difference {error_h:.1e})",
    )
    referee = referee_memory_example()
    disagreement = max(
        abs(
            float(np.asarray(trajectory[name])[step + (1 if name in cell.states else 0), 0, 0]) - values[name]
        )
        for step, values in enumerate(referee)
        for name in values
    )
    ex.check(
        disagreement < 1e-12,
        "gf.simulate's compiled kernels agree with the referee, the cell's sympy equations evaluated "
        f"component by component in 30 digits, on every gate and state of every step ({disagreement:.1e})",
    )

    x = np.asarray(INPUTS, dtype=float)
    gates = {name: np.asarray(trajectory[name])[:, 0, 0] for name in ("f", "i", "o")}
    writes, resets, reads = x[:, 1] == 1, x[:, 1] == -1, x[:, 2] == 1
    ex.check(
        bool(np.all(gates["i"][writes] > 1 - 1e-6) and np.all(gates["i"][~writes] < 1e-4))
        and bool(np.all(gates["f"][resets] < 1e-6) and np.all(gates["f"][~resets] > 1 - 1e-4))
        and bool(np.all(gates["o"][reads] > 1 - 1e-6) and np.all(gates["o"][~reads] < 1e-4)),
        "C22: the gates switch exactly where the notes say: the input gate opens at x2 = 1 (steps "
        f"{', '.join(str(s) for s in np.flatnonzero(writes) + 1)}), the forget gate closes at x2 = -1 "
        f"(step {', '.join(str(s) for s in np.flatnonzero(resets) + 1)}), the output gate opens at x3 = 1 "
        f"(steps {', '.join(str(s) for s in np.flatnonzero(reads) + 1)}); elsewhere each sits within "
        f"{max(float(np.max(gates['i'][~writes])), float(np.max(1 - gates['f'][~resets])), float(np.max(gates['o'][~reads]))):.1e} "
        "of its resting value",
    )

    # where the memory's gradient flows: dc(T)/dc(t) along the carousel
    chain = gf.jacobian_chain(cell, _arrays(PARAMS), x[:, None, :], states=["c"])
    logs = np.asarray(chain.log_spectral)[:, 0]  # lag k = 0..T: dc(T)/dc(T-k)
    T = len(INPUTS)
    reset = int(np.flatnonzero(resets)[-1]) + 1  # the step whose forget gate closes
    kept = logs[: T - reset + 1]  # c(T) back to c(reset), through open forget gates
    lost = logs[T - reset + 1 :]  # back past the reset
    ex.check(
        float(np.max(np.abs(kept))) < 1e-3 and float(np.max(lost)) < -80,
        f"C22: the memory's gradient flows back along the carousel unchanged to the reset at step {reset} "
        f"(|log dc({T})/dc(t)| <= {float(np.max(np.abs(kept))):.1e} for t >= {reset}) and not past it "
        f"(dc({T})/dc(t) <= e^{float(np.max(lost)):.0f} for t < {reset})",
    )

    ex.figure(
        gf.plot.gates(
            trajectory,
            ["i", "f", "o", "c", "h"],
            kind="lines",
            title="The hand-set LSTM memory: x2 = 1 writes x1 (t = 1, 2, 6), x2 = -1 resets (t = 5), "
            "x3 = 1 reads (t = 4, 7)",
        )
    )
    ex.finish()


if __name__ == "__main__":
    main()
