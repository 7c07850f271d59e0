"""Fixtures of the figure tests: ``rendered`` (PNG through Agg after the layout checks) and shared results."""

from __future__ import annotations

import numpy as np
import pytest

import gradflow as gf
from tests.plot.layout import render


@pytest.fixture
def rendered():
    return render


@pytest.fixture(scope="module")
def elman_runs():
    """An Elman cell at gains 0.5 and 3: chains, bound comparisons and regimes of the same simulations."""
    cell = gf.cells.elman()
    x = 0.3 * np.random.default_rng(0).normal(size=(30, 5, 3))
    runs = {}
    for gain in (0.5, 3.0):
        params = gf.init_params(cell, sizes={"n": 12, "m": 3}, seed=1, scheme="orthogonal", gain=gain)
        chain = gf.jacobian_chain(cell, params, x)
        runs[gain] = (
            chain,
            gf.bound_vs_measured(cell, params, x, chain=chain),
            gf.regime(cell, params, x),
        )
    return runs
