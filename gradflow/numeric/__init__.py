"""The numeric backend: the cell's own equations, lowered to array kernels (NumPy, CuPy).

>>> import numpy as np, gradflow as gf
>>> cell = gf.cells.elman()
>>> params = {"W_h": np.eye(2) * 0.5, "W_x": np.ones((2, 1)), "b": np.zeros(2)}
>>> gf.numeric.simulate(cell, params, np.ones((3, 1, 1)))["h"].shape
(4, 1, 2)
"""

from gradflow.numeric.analysis import BoundComparison, Regime, bound_vs_measured, regime
from gradflow.numeric.backend import namespace
from gradflow.numeric.bptt import Gradients, bptt, clip_by_norm, clip_by_value, global_norm
from gradflow.numeric.chain import ChainResult, jacobian_chain
from gradflow.numeric.check import Check, check_cell
from gradflow.numeric.compiled import CompiledCell, compile, schedule
from gradflow.numeric.descent import Descent, LossSurface, gradient_descent, loss_surface, squared_error
from gradflow.numeric.init import SCHEMES, init_params, parameter_roles
from gradflow.numeric.interop import (
    UnsupportedModuleError,
    final_states,
    from_torch,
    gradients_to_torch,
    initial_from_torch,
    output_to_torch,
    sequence_from_torch,
    states_to_torch,
    upstream_from_torch,
)
from gradflow.numeric.lyapunov import lyapunov_spectrum
from gradflow.numeric.simulate import Trajectory, simulate

__all__ = [
    "SCHEMES",
    "BoundComparison",
    "ChainResult",
    "Check",
    "CompiledCell",
    "Descent",
    "Gradients",
    "LossSurface",
    "Regime",
    "Trajectory",
    "UnsupportedModuleError",
    "bound_vs_measured",
    "bptt",
    "check_cell",
    "clip_by_norm",
    "clip_by_value",
    "compile",
    "final_states",
    "from_torch",
    "global_norm",
    "gradient_descent",
    "gradients_to_torch",
    "init_params",
    "initial_from_torch",
    "jacobian_chain",
    "loss_surface",
    "lyapunov_spectrum",
    "namespace",
    "output_to_torch",
    "parameter_roles",
    "regime",
    "schedule",
    "sequence_from_torch",
    "simulate",
    "squared_error",
    "states_to_torch",
    "upstream_from_torch",
]
