r"""The hand-set LSTM memory cell of the Datawhale notes (seed 004, claim C22).

A one-unit LSTM with input :math:`x = (x_1, x_2, x_3)` and hand-chosen
weights behaves like a memory register:

* :math:`x_2 = 1` opens the input gate and writes :math:`x_1` into the cell
  (the forget gate stays open, so the new value is *added*);
* :math:`x_2 = -1` closes the forget gate: the cell is reset to 0;
* :math:`x_3 = 1` opens the output gate: the cell is read out.

The input and output gates are normally closed (bias -10), the forget gate
normally open (bias +10); the candidate and the cell output are the identity,
so :math:`\tilde c = x_1` and :math:`h = o \circ c`.

Nothing below restates the LSTM equations. :func:`run_memory_example`
evaluates the cell's own sympy equations (``cell.order``, ``cell.expression``),
expanded into components, with sympy in 30 digits: every gate value of the
table, even a saturated gate's :math:`\sigma(-90) \approx 10^{-39}`, is the
exact one. :func:`simulate_memory_example` runs the same cell with
:func:`gradflow.simulate` -- kernels lowered from those equations, on NumPy in
float64 -- and the script prints how closely the two agree.

Run it::

    python examples/hand_set_lstm_memory.py
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

import gradflow as gf
from gradflow.cells import Signal, t

__all__ = ["INPUTS", "PARAMS", "build_cell", "evaluate_step", "run_memory_example", "simulate_memory_example"]

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


def evaluate_step(
    cell: gf.Cell,
    params: Mapping[str, Any],
    previous: Mapping[str, Any],
    inputs: Mapping[str, Any],
    digits: int = 30,
) -> dict[str, sp.Matrix]:
    """One step of ``cell``, evaluated from its own sympy equations.

    Each equation of :attr:`Cell.order` is expanded into components
    (``as_explicit``); every matrix entry of a parameter, of a state at
    ``t - 1``, of an input at ``t`` or of a value already computed this step
    is replaced by its number, and the result is evaluated with ``evalf``.

    Parameters
    ----------
    cell : Cell
        A cell with concrete sizes and forward states.
    params : mapping of str to array-like
        Parameter values: a number for a scalar, a list for a vector, a list
        of rows for a matrix.
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
    """
    arrays: dict[sp.Basic, sp.Matrix] = {}
    scalars: dict[sp.Basic, sp.Expr] = {}
    for name, value in params.items():
        symbol = cell.parameter(name)
        if isinstance(symbol, sp.MatrixSymbol):
            matrix = sp.Matrix(value)
            arrays[symbol] = matrix.reshape(*symbol.shape)
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


def run_memory_example(
    inputs: Sequence[Sequence[float]] = INPUTS, params: Mapping[str, Any] | None = None
) -> tuple[list[float], list[float]]:
    """Run the memory LSTM over ``inputs`` from zero states.

    Returns
    -------
    memory, output : list of float
        The cell state :math:`c^{(t)}` and the output :math:`h^{(t)}` after
        each step.
    """
    cell = build_cell()
    params = PARAMS if params is None else params
    states = {name: [0] * int(size) for name, size in cell.states.items()}
    memory: list[float] = []
    output: list[float] = []
    for x in inputs:
        values = evaluate_step(cell, params, states, {"x": list(x)})
        states = {name: list(values[name]) for name in cell.states}
        memory.append(float(values["c"][0]))
        output.append(float(values["h"][0]))
    return memory, output


def simulate_memory_example(
    inputs: Sequence[Sequence[float]] = INPUTS, params: Mapping[str, Any] | None = None
) -> tuple[list[float], list[float]]:
    """:func:`run_memory_example` on gradflow's numeric backend (:func:`gradflow.simulate`, float64)."""
    import numpy as np

    params = PARAMS if params is None else params
    arrays = {name: np.asarray(value, dtype=float) for name, value in params.items()}
    trajectory = gf.simulate(build_cell(), arrays, np.asarray(inputs, dtype=float)[:, None, :])
    return [float(c) for c in trajectory["c"][1:, 0, 0]], [float(h) for h in trajectory["h"][1:, 0, 0]]


def main() -> None:
    """Print the table of the notes (input, memory and output per step), then the numeric check."""
    memory, output = run_memory_example()
    print(f"{'t':>2}  {'x = (x1, x2, x3)':<18}{'memory c':>10}{'output h':>10}")
    for step, (x, c, h) in enumerate(zip(INPUTS, memory, output, strict=True), start=1):
        print(f"{step:>2}  {x!s:<18}{c:>10.4f}{h:>10.4f}")
    numeric = simulate_memory_example()
    pairs = zip([*memory, *output], [*numeric[0], *numeric[1]], strict=True)
    worst = max(abs(exact - float64) for exact, float64 in pairs)
    print(f"gf.simulate (NumPy, float64) gives the same memory and output to {worst:.1e}")


if __name__ == "__main__":
    main()
