"""The export layer: printers of cells, Jacobians and derivations.

>>> import gradflow as gf
>>> print(gf.export.to_text(gf.symbolic.step_jacobian(gf.cells.elman(), "h")))
diag(tanh'(W_h h^(t-1) + W_x x^(t) + b)) W_h
"""

from gradflow.export.text import TextPrinter, derivation_to_text, relation_to_text, to_text

__all__ = ["TextPrinter", "derivation_to_text", "relation_to_text", "to_text"]
