"""The symbolic layer: structured Jacobians, chains, BPTT formulas, bounds, gamma, derivations.

>>> import gradflow as gf
>>> print(gf.symbolic.step_jacobian(gf.cells.indrnn(), "h"))
diag(relu'(HadamardProduct(u, h[t - 1]) + W_x*x[t] + b))*diag(u)
"""

from gradflow.symbolic.bounds import ChainBound, chain_bound, norm_bound
from gradflow.symbolic.bptt import (
    adjoint,
    adjoint_recursion,
    chain,
    direction_groups,
    parameter_gradient,
    state_jacobian,
)
from gradflow.symbolic.derivation import Derivation, Step, derive
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.gamma import Gamma, gamma, gamma_of, gamma_symbol
from gradflow.symbolic.jacobian import Diag, local_jacobian, step_jacobian, total_jacobians
from gradflow.symbolic.strategies import Full, Randomized, Truncated
from gradflow.symbolic.vjp import pullback, step_pullback

__all__ = [
    "ChainBound",
    "Derivation",
    "Diag",
    "Full",
    "Gamma",
    "Randomized",
    "Step",
    "Truncated",
    "adjoint",
    "adjoint_recursion",
    "chain",
    "chain_bound",
    "derive",
    "direction_groups",
    "explicit",
    "explicit_step",
    "gamma",
    "gamma_of",
    "gamma_symbol",
    "local_jacobian",
    "norm_bound",
    "parameter_gradient",
    "pullback",
    "state_jacobian",
    "step_jacobian",
    "step_pullback",
    "total_jacobians",
]
