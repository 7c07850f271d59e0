r"""The constant error carousel (CEC) of Hochreiter & Schmidhuber (1997, §3.2), on gradflow's own LSTM.

A unit connected only to itself keeps its error exactly when
:math:`f'_j(\mathrm{net}_j(t))\, w_{jj} = 1` (:func:`cec_condition`); for
every net input that forces a linear activation with :math:`w_{jj} = 1/c`
(:func:`cec_weights`); and along the cell state of the 1997 LSTM the
product of the cell-to-cell step Jacobians is the identity for every number
of steps, or :math:`\operatorname{diag}(f^{(t)}) \cdots` with the forget gate
of Gers et al. (2000) (:func:`cec_path`). The unit-by-unit error flow these
rest on is in :mod:`gradflow.symbolic.hochreiter`, which re-exports the three.

References
----------
S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural Computation
9(8):1735–1780, 1997, §3.2 and §4.
F. A. Gers, J. Schmidhuber, F. Cummins, "Learning to forget: continual
prediction with LSTM", Neural Computation 12(10), 2000.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from gradflow._checks import is_int
from gradflow.cells.activations import Activation, as_activation
from gradflow.cells.cell import Cell
from gradflow.cells.expr import t
from gradflow.errors import GradflowError
from gradflow.symbolic.jacobian import step_jacobian

__all__ = ["cec_condition", "cec_path", "cec_weights"]


def _check_steps(q: Any, caller: str, name: str = "q") -> int:
    if not is_int(q) or q < 1:
        raise GradflowError(f"{caller}: {name}, the number of steps back, must be an int >= 1, got {q!r}")
    return int(q)


#: The net input of :func:`cec_condition`.
_NET = sp.Symbol("net", real=True)


def cec_condition(activation: Any, w: Any = 1, net: sp.Symbol | None = None) -> sp.Eq:
    r"""The CEC condition :math:`f'(\mathrm{net})\, w = 1` of a self-connected unit, unevaluated.

    A unit j connected only to itself keeps its error,
    :math:`\vartheta_j(t) = f'_j(\mathrm{net}_j(t))\, w_{jj}\, \vartheta_j(t+1)
    = \vartheta_j(t+1)`, exactly when this holds; :func:`cec_weights` says
    for which w it holds at *every* net input.

    Parameters
    ----------
    activation : str or Activation
        :math:`f`, e.g. ``"identity"``, ``"tanh"``.
    w : number or sympy expression, default 1
        The self-connection :math:`w_{jj}`.
    net : sympy.Symbol, optional
        The net input (default: a real symbol ``net``).

    Returns
    -------
    sympy.Eq
        Built with ``evaluate=False``; ``.doit()`` decides it when it can.

    Raises
    ------
    CellDefinitionError
        For an unknown activation name.

    Examples
    --------
    >>> cec_condition("tanh", 1)
    Eq(1 - tanh(net)**2, 1)
    >>> cec_condition("identity", 1).doit()
    True

    References
    ----------
    S. Hochreiter, J. Schmidhuber, Neural Computation 9(8), 1997, §3.2.
    """
    slope = as_activation(activation).derivative
    return sp.Eq(slope(_NET if net is None else net) * sp.sympify(w), 1, evaluate=False)


def cec_weights(activation: Any) -> sp.Set:
    r"""The self-weights w for which :math:`f'(\mathrm{net})\, w = 1` holds for every net input.

    If it holds for every net, :math:`f' = 1/w` is constant, so
    :math:`f(\mathrm{net}) = \mathrm{net}/w + c` is linear (Hochreiter &
    Schmidhuber 1997, §3.2); they choose the identity and :math:`w_{jj} = 1`.
    A derivative that differs at two net inputs (found among a few exact
    sample points) admits no w; a constant derivative c admits only 1/c.
    In the catalogue only the identity qualifies, with w = 1.

    Parameters
    ----------
    activation : str or Activation

    Returns
    -------
    sympy.Set
        ``FiniteSet(1/c)`` or ``EmptySet``.

    Raises
    ------
    CellDefinitionError
        For an unknown activation name.
    GradflowError
        For a generic (undefined) activation, or a derivative that is
        constant at the sample points but not provably constant.

    Examples
    --------
    >>> cec_weights("identity"), cec_weights("tanh"), cec_weights("relu")
    ({1}, EmptySet, EmptySet)

    References
    ----------
    S. Hochreiter, J. Schmidhuber, Neural Computation 9(8), 1997, §3.2.
    """
    function: Activation = as_activation(activation)
    if function.is_generic:
        raise GradflowError(
            f"cec_weights: activation {function.name!r} is undefined; give a concrete activation"
        )
    slope = function.derivative
    samples = [sp.Rational(k, 2) for k in range(-6, 7)]
    values = [sp.sympify(slope(s)) for s in samples]
    first = values[0]
    if any(abs(sp.N(value - first, 30)) > sp.Float("1e-20") for value in values[1:]):
        return sp.S.EmptySet
    if sp.simplify(slope.expression - first) != 0:
        raise GradflowError(
            f"cec_weights: the derivative {slope.expression} of {function.name!r} takes the value "
            f"{first} at every sample point but is not provably constant"
        )
    return sp.S.EmptySet if first == 0 else sp.FiniteSet(1 / first)


def cec_path(cell: Cell, q: int, state: str = "c") -> sp.Basic:
    r"""The product of q cell-to-cell step Jacobians, :math:`\prod_{k=0}^{q-1} \partial s^{(t-k)} / \partial s^{(t-k-1)}`.

    Along the constant error carousel of the 1997 LSTM
    (``lstm(forget_gate=False)``), :math:`\partial c^{(t)} / \partial
    c^{(t-1)} = I`, so the product is the identity for every q: the error
    is carried back unchanged (:math:`s_c(t) = s_c(t-1) + g\, y^{in}`). With
    the forget gate (Gers et al. 2000) it is
    :math:`\operatorname{diag}(f^{(t)}) \cdots \operatorname{diag}(f^{(t-q+1)})`.
    These are the direct state-to-state Jacobians (other states held fixed),
    not the total :math:`\partial c^{(t)} / \partial c^{(t-q)}`, which also
    runs through h. The error flows back with the transpose, the same
    matrix when the factors are diagonal.

    Parameters
    ----------
    cell : Cell
        Any cell; sizes may be symbolic.
    q : int
        Steps, ``q >= 1``.
    state : str, default "c"
        The carousel state.

    Returns
    -------
    sympy matrix expression
        ``Identity`` when every factor is; otherwise the single factor or an
        unevaluated ``MatMul``, newest step first, identity factors dropped.

    Raises
    ------
    CellDefinitionError
        For a state the cell lacks.
    GradflowError
        If q < 1.

    Examples
    --------
    >>> import gradflow as gf
    >>> cec_path(gf.cells.lstm(forget_gate=False), 5)
    I
    >>> print(cec_path(gf.cells.lstm(), 3))
    diag(f[t])*diag(f[t - 1])*diag(f[t - 2])

    References
    ----------
    S. Hochreiter, J. Schmidhuber, Neural Computation 9(8), 1997, §3.2 and §4.
    F. A. Gers, J. Schmidhuber, F. Cummins, "Learning to forget: continual
    prediction with LSTM", Neural Computation 12(10), 2000.
    """
    q = _check_steps(q, "cec_path")
    jacobian = step_jacobian(cell, state)
    direction = 1 if state in cell.backward else -1
    factors = [jacobian.xreplace({t: t + direction * k}) for k in range(q)]
    kept = [factor for factor in factors if not isinstance(factor, sp.Identity)]
    if not kept:
        return jacobian
    return kept[0] if len(kept) == 1 else sp.MatMul(*kept)
