"""The cell language: activations, cells, built-in cells and combinators.

>>> import gradflow as gf
>>> gf.cells.lstm().order[:2]
(('intermediate', 'f'), ('intermediate', 'i'))
"""

from gradflow.cells.activations import CATALOGUE, Activation, as_activation
from gradflow.cells.builtin import ctrnn, elman, gru, indrnn, jordan, leaky, lstm, minimal, skip
from gradflow.cells.cell import Cell, size_symbol
from gradflow.cells.combinators import bidirectional, stack
from gradflow.cells.expr import Concat, Elementwise, Signal, t

__all__ = [
    "CATALOGUE",
    "Activation",
    "Cell",
    "Concat",
    "Elementwise",
    "Signal",
    "as_activation",
    "bidirectional",
    "ctrnn",
    "elman",
    "gru",
    "indrnn",
    "jordan",
    "leaky",
    "lstm",
    "minimal",
    "size_symbol",
    "skip",
    "stack",
    "t",
]
