"""gradflow: why recurrent networks' gradients vanish or explode, derived and measured.

The public API is re-exported here by name (the README shows it; docs/architecture.md maps the layers).

>>> import gradflow as gf
>>> cell = gf.cells.elman()
>>> print(cell.updates["h"])
tanh(W_h*h[t - 1] + W_x*x[t] + b)
"""

from gradflow import cells, export, graph, numeric, plot, symbolic
from gradflow._version import __version__
from gradflow.cells import Activation, Cell, as_activation
from gradflow.errors import (
    BackendUnavailableError,
    CellDefinitionError,
    CellShapeError,
    GradflowError,
    GraphError,
    NonFiniteError,
    NotDifferentiableError,
    PlotError,
    ShapeError,
    SweepError,
    UnsupportedCellError,
)
from gradflow.graph import UnrolledGraph, unroll
from gradflow.numeric import (
    bound_vs_measured,
    bptt,
    from_torch,
    init_params,
    jacobian_chain,
    lyapunov_spectrum,
    regime,
    simulate,
)
from gradflow.report.model import analyze
from gradflow.sweep import sweep
from gradflow.symbolic import Derivation, Full, Randomized, Truncated, derive, gamma

__all__ = [
    "Activation",
    "BackendUnavailableError",
    "Cell",
    "CellDefinitionError",
    "CellShapeError",
    "Derivation",
    "Full",
    "GradflowError",
    "GraphError",
    "NonFiniteError",
    "NotDifferentiableError",
    "PlotError",
    "Randomized",
    "ShapeError",
    "SweepError",
    "Truncated",
    "UnrolledGraph",
    "UnsupportedCellError",
    "__version__",
    "analyze",
    "as_activation",
    "bound_vs_measured",
    "bptt",
    "cells",
    "derive",
    "export",
    "from_torch",
    "gamma",
    "graph",
    "init_params",
    "jacobian_chain",
    "lyapunov_spectrum",
    "numeric",
    "plot",
    "regime",
    "simulate",
    "sweep",
    "symbolic",
    "unroll",
]
