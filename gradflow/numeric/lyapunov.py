"""Finite-time Lyapunov spectra of a cell's state Jacobian products, by QR (Benettin et al. 1980)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gradflow.cells.cell import Cell
from gradflow.numeric.chain import ChainError, _select, _Stepper
from gradflow.numeric.simulate import prepare, run_forward

__all__ = ["lyapunov_spectrum"]


def lyapunov_spectrum(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    initial: Mapping[str, Any] | None = None,
    *,
    states: Sequence[str] | None = None,
    backend: Any = None,
    dtype: Any = None,
) -> Any:
    r"""Finite-time Lyapunov exponents of the state's Jacobian product, by QR (Benettin et al. 1980).

    With :math:`Q_T = I` and, going back in time, :math:`Q_{\tau} J_\tau = L_\tau Q_{\tau-1}`
    (an LQ factorisation), :math:`\lambda_i = \frac{1}{T}\sum_\tau \log |L_\tau[i, i]|`
    -- the exponents of :math:`J_T \cdots J_1`. Their sum is exactly the mean of
    :math:`\log|\det J_\tau|`; each approaches
    :math:`\frac{1}{T}\log\sigma_i(\partial s^{(T)}/\partial s^{(0)})` as :math:`T` grows
    (Oseledets), and differs from it by :math:`O(1/T)` for a finite :math:`T`.

    Returns
    -------
    array (B, N)
        The exponents per sequence, descending.

    Raises
    ------
    ChainError
        For a cell read more than one step back (its state is not Markov in :math:`s`),
        or an invalid state selection.

    References
    ----------
    G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, "Lyapunov characteristic exponents
    for smooth dynamical systems", Meccanica 15, 1980.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": np.diag([0.5, 0.25]), "W_x": np.zeros((2, 1)), "b": np.zeros(2)}
    >>> spectrum = lyapunov_spectrum(gf.cells.elman(), params, np.zeros((4, 1, 1)))
    >>> [round(float(v), 6) for v in np.exp(spectrum[0])]
    [0.5, 0.25]
    """
    problem = prepare(cell, params, inputs, initial, backend=backend, dtype=dtype)
    values = run_forward(problem)
    chosen = _select(problem.cell, states)
    stepper = _Stepper(problem, values, chosen)
    if stepper.lags != [1]:
        raise ChainError(
            f"cell {cell.name!r} reads its state {max(stepper.lags)} steps back; the Lyapunov spectrum "
            "by QR needs a state read one step back"
        )
    xp, T, B, N = problem.xp, problem.T, problem.B, stepper.N
    Q = xp.broadcast_to(xp.eye(N, dtype=problem.compiled.dtype), (B, N, N))
    total = xp.zeros((B, N), dtype=problem.compiled.dtype)
    steps = range(1, T + 1) if stepper.sign < 0 else range(T, 0, -1)
    for step in steps:
        Z = stepper.apply(Q, 1, step)
        if Z is None:
            raise ChainError(f"the step Jacobian of cell {cell.name!r} is zero: every exponent is -inf")
        q, r = xp.linalg.qr(xp.matrix_transpose(Z))
        diagonal = xp.abs(xp.linalg.diagonal(r))
        positive = diagonal > 0
        total = total + xp.where(positive, xp.log(xp.where(positive, diagonal, 1.0)), -math.inf)
        Q = xp.matrix_transpose(q)
    exponents = total / T
    return -xp.sort(-exponents, axis=-1)
