"""Figures of vanishing and exploding gradients, drawn from gradflow's own results (matplotlib).

Every function takes the results gradflow computed -- chains, bound
comparisons, regimes, sweep records, trajectories, gradients, Lyapunov
spectra -- and returns a :class:`matplotlib.figure.Figure` (or draws into the
axes given as ``ax=``); nothing is recomputed inside a plot. :func:`save`
writes PNG, SVG or PDF atomically. matplotlib is imported only when a figure
is drawn, and no display is needed.

>>> import numpy as np, gradflow as gf
>>> params = {"W_h": 0.5 * np.eye(2), "W_x": np.ones((2, 1)), "b": np.zeros(2)}
>>> chain = gf.jacobian_chain(gf.cells.elman(), params, np.zeros((5, 1, 1)))
>>> type(gf.plot.chain_norms(chain)).__name__
'Figure'
"""

from gradflow.plot._style import PALETTE, save
from gradflow.plot.chain import chain_norms
from gradflow.plot.cliff import cliff
from gradflow.plot.gates import gates
from gradflow.plot.gradients import gradient_per_step, truncation
from gradflow.plot.regime import regime_map
from gradflow.plot.spectra import lyapunov, lyapunov_vs_gain, singular_spectrum

__all__ = [
    "PALETTE",
    "chain_norms",
    "cliff",
    "gates",
    "gradient_per_step",
    "lyapunov",
    "lyapunov_vs_gain",
    "regime_map",
    "save",
    "singular_spectrum",
    "truncation",
]
