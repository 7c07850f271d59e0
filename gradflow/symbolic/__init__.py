"""The symbolic layer: structured Jacobians in numerator layout, explicit mode.

>>> import gradflow as gf
>>> print(gf.symbolic.step_jacobian(gf.cells.indrnn(), "h"))
diag(relu'(HadamardProduct(u, h[t - 1]) + W_x*x[t] + b))*diag(u)
"""

from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.jacobian import Diag, local_jacobian, step_jacobian, total_jacobians

__all__ = ["Diag", "explicit", "explicit_step", "local_jacobian", "step_jacobian", "total_jacobians"]
