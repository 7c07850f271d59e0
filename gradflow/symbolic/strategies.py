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

import numbers
from dataclasses import dataclass
from typing import Any

import sympy as sp

from gradflow._checks import is_int
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
        integer symbol for formulas); a NumPy integer is stored as an int.
        Over a sequence of length ``T``, ``tau >= T - 1`` already gives the
        full gradients of the parameters and the inputs; the gradient of an
        initial state read ``d`` steps back (``d = 1`` for :math:`h^{(t-1)}`)
        needs ``tau >= T + d - 1`` for its oldest slot (``tau >= T`` for a
        state read one step back).

    Raises
    ------
    StrategyError
        If ``tau`` is not an int >= 1 (a bool is not an int here) or a
        positive integer sympy symbol.
    """

    tau: Any

    def __post_init__(self) -> None:
        if isinstance(self.tau, sp.Symbol) and self.tau.is_integer and self.tau.is_positive:
            return
        if is_int(self.tau) and self.tau >= 1:
            object.__setattr__(self, "tau", int(self.tau))
            return
        raise StrategyError(
            f"Truncated(tau) needs an int tau >= 1 (or a positive integer sympy symbol), got {self.tau!r}; "
            "tau is the number of steps a gradient may travel back, e.g. Truncated(5)"
        )

    def __str__(self) -> str:
        return f"truncated(tau={self.tau})"


@dataclass(frozen=True)
class Randomized:
    r"""Randomized truncation with reweighting, unbiased (Tallec & Ollivier 2017; d2l §9.7.1.3).

    Parameters
    ----------
    pi : float or sympy expression, default symbolic :math:`\pi`
        The probability that a step passes the gradient on, in (0, 1]: a
        Python or NumPy real number (a 0-d NumPy array is read as its number),
        a sympy number, or a sympy expression for formulas (the numeric
        backend needs a number). Stored as a sympy expression.
    seed : int or None
        For the numeric backend's draws of :math:`\xi`: a non-negative int (a
        NumPy integer is stored as an int), or None for fresh entropy.

    Raises
    ------
    StrategyError
        If ``pi`` is a bool, a complex number, NaN, an array with more than
        one entry, something sympy cannot read, or a number outside (0, 1];
        or if ``seed`` is not None or a non-negative int.

    References
    ----------
    C. Tallec, Y. Ollivier, "Unbiasing truncated backpropagation through
    time", arXiv:1705.08209, 2017.
    """

    pi: Any = None
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pi", _probability(self.pi))
        if self.seed is not None:
            if not (is_int(self.seed) and self.seed >= 0):
                raise StrategyError(
                    f"Randomized(pi, seed) needs seed None or a non-negative int, got {self.seed!r}; "
                    "e.g. Randomized(0.5, seed=0)"
                )
            object.__setattr__(self, "seed", int(self.seed))

    def __str__(self) -> str:
        return f"randomized(pi={self.pi})"


def _is_boolean(value: Any) -> bool:
    """A Python or NumPy bool (or a 0-d array of them)."""
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b"


def _probability(value: Any) -> sp.Expr:
    """``Randomized``'s ``pi`` as a sympy expression; a number must be real and in (0, 1]."""
    if value is None:
        return sp.Symbol("pi_xi", positive=True)
    given = repr(value)  # named in the messages as the caller wrote it
    expected = "a real number in (0, 1] (e.g. Randomized(0.5)) or a sympy expression"
    if _is_boolean(value):
        raise StrategyError(f"Randomized(pi) needs {expected}, got the bool {given}")
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, sp.Basic):
        if tuple(shape) != ():
            raise StrategyError(
                f"Randomized(pi) needs a single probability, got an array of shape {tuple(shape)}; "
                f"pass {expected}"
            )
        value = value.item() if hasattr(value, "item") else value  # a Python number
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise StrategyError(f"Randomized(pi) needs {expected}, got the complex number {given}")
    try:
        pi = sp.sympify(value)
    except (sp.SympifyError, TypeError, ValueError, SyntaxError) as err:
        raise StrategyError(f"Randomized(pi) needs {expected}, got {given}") from err
    if not isinstance(pi, sp.Expr):
        raise StrategyError(f"Randomized(pi) needs {expected}, got {given}")
    if pi.is_number:
        if pi.is_extended_real is not True or pi is sp.nan:
            raise StrategyError(f"Randomized(pi) needs {expected}, got {given}, which is not a real number")
        inside = bool(pi > 0) and bool(pi <= 1)
        if not inside:
            raise StrategyError(
                f"Randomized(pi) needs 0 < pi <= 1, got {given}; pi is the probability that a step "
                "passes the gradient on"
            )
    return pi


Strategy = Full | Truncated | Randomized


def as_strategy(value: Any) -> Strategy:
    """``None`` → :class:`Full`; a strategy as is; an int τ (or a NumPy integer) → :class:`Truncated`.

    Raises
    ------
    StrategyError
        For anything else, or an int below 1.
    """
    if value is None:
        return Full()
    if isinstance(value, Full | Truncated | Randomized):
        return value
    if is_int(value):
        return Truncated(value)
    raise StrategyError(
        f"truncation must be None, Full(), Truncated(tau), Randomized(pi) or an int tau; got {value!r}"
    )
