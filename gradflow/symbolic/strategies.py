r"""How far back through time a gradient is followed: full, truncated, randomized.

The same objects drive the symbolic formulas and (later) the numeric
backend, with the same meaning (Dive into Deep Learning, §9.7, seed 001):

* :class:`Full` -- every path back to the first step.
* :class:`Truncated` -- chains of at most :math:`\tau` step Jacobians: the
  sum of d2l's (9.7.7) terminated after :math:`\tau` terms.
* :class:`Randomized` -- each step Jacobian multiplied by an independent
  :math:`\xi_k` with :math:`P(\xi_k = 1/\pi) = \pi`, :math:`P(\xi_k = 0) = 1 - \pi`,
  so :math:`E[\xi_k] = 1` and the estimator is unbiased. With a constant
  :math:`\pi` this is Tallec & Ollivier's anticipated reweighting for a
  geometric truncation length: a term reaching :math:`k` steps back survives
  with probability :math:`\pi^k` and is reweighted by :math:`\pi^{-k}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from gradflow.errors import StrategyError

__all__ = ["Full", "Randomized", "Strategy", "Truncated", "as_strategy"]


@dataclass(frozen=True)
class Full:
    """Full backpropagation through time: every path back to the first step."""

    def __str__(self) -> str:
        return "full"


@dataclass(frozen=True)
class Truncated:
    r"""Regular truncation: follow at most ``tau`` steps back (d2l §9.7.1.2; Williams & Peng 1990).

    Parameters
    ----------
    tau : int or sympy symbol
        The longest chain of step Jacobians kept, ``tau >= 1`` (a positive
        integer symbol for formulas); ``tau >= T - 1`` is the full gradient.

    Raises
    ------
    GradflowError
        If ``tau`` is not an int >= 1.
    """

    tau: Any

    def __post_init__(self) -> None:
        if isinstance(self.tau, sp.Symbol) and self.tau.is_integer and self.tau.is_positive:
            return
        if isinstance(self.tau, bool) or not isinstance(self.tau, int) or self.tau < 1:
            raise StrategyError(
                f"Truncated(tau) needs an int tau >= 1 (or a positive integer sympy symbol), got {self.tau!r}"
            )

    def __str__(self) -> str:
        return f"truncated(tau={self.tau})"


@dataclass(frozen=True)
class Randomized:
    r"""Randomized truncation with reweighting, unbiased (Tallec & Ollivier 2017; d2l §9.7.1.3).

    Parameters
    ----------
    pi : float or sympy expression, default symbolic :math:`\pi`
        The probability that a step passes the gradient on, in (0, 1].
    seed : int or None
        For the numeric backend's draws of :math:`\xi`.

    Raises
    ------
    GradflowError
        If a numeric ``pi`` is outside (0, 1].

    References
    ----------
    C. Tallec, Y. Ollivier, "Unbiasing truncated backpropagation through
    time", arXiv:1705.08209, 2017.
    """

    pi: Any = None
    seed: int | None = None

    def __post_init__(self) -> None:
        pi = sp.Symbol("pi_xi", positive=True) if self.pi is None else sp.sympify(self.pi)
        if pi.is_number and not (0 < pi <= 1):
            raise StrategyError(f"Randomized(pi) needs 0 < pi <= 1, got {self.pi!r}")
        object.__setattr__(self, "pi", pi)

    def __str__(self) -> str:
        return f"randomized(pi={self.pi})"


Strategy = Full | Truncated | Randomized


def as_strategy(value: Any) -> Strategy:
    """``None`` → :class:`Full`; a strategy as is; an int τ → :class:`Truncated`.

    Raises
    ------
    GradflowError
        For anything else.
    """
    if value is None:
        return Full()
    if isinstance(value, Full | Truncated | Randomized):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Truncated(value)
    raise StrategyError(
        f"truncation must be None, Full(), Truncated(tau), Randomized(pi) or an int tau; got {value!r}"
    )
