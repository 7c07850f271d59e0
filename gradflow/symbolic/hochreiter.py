r"""Hochreiter's local error flow, unit by unit, in explicit mode (seed 002, C12–C14).

Hochreiter (1991) and Hochreiter & Schmidhuber (1997, §3) follow the error
of a fully recurrent net unit by unit. This module derives their formulas from
a gradflow cell, checks them against gradflow's structured step Jacobians,
and re-exports the constant error carousel (CEC) on gradflow's own 1997 LSTM
from :mod:`gradflow.symbolic.cec`, and the symbols of the error flow
(:class:`ErrorSignal`, :class:`OpaqueDerivative`) and the reading of a
scaling factor (:func:`classify_scaling`) from :mod:`gradflow.symbolic._units`.

Convention
----------
Hochreiter writes :math:`\mathrm{net}_i(t) = \sum_j w_{ij}\, y_j(t-1)`:
:math:`w_{ij}` is the weight on the connection *from unit j to unit i*. For
a cell :math:`h^{(t)} = \sigma(W_h h^{(t-1)} + W_x x^{(t)} + b)` the net input
is :math:`\mathrm{net}^{(t)} = W_h h^{(t-1)} + W_x x^{(t)} + b`, so
:math:`\mathrm{net}_i = \sum_j (W_h)_{ij} h_j^{(t-1)}` and

.. math:: w_{ij} = (W_h)_{ij} \quad \text{(no transpose)}, \qquad f_j = \sigma .

Units are numbered :math:`0, \dots, n-1` like gradflow's components (Hochreiter
counts from 1). :math:`\vartheta_j(t) = \partial E / \partial \mathrm{net}_j(t)`
is the error at unit j's net input (:class:`ErrorSignal`); its recursion

.. math:: \vartheta_j(t) = f'_j(\mathrm{net}_j(t)) \sum_i w_{ij}\, \vartheta_i(t+1),
   \qquad \vartheta(t) = \operatorname{diag}(f'(\mathrm{net}(t)))\, W_h^\top \vartheta(t+1)

sums over the units i that j feeds. Going back q steps,
:math:`\vartheta(t-q) = M_q\, \vartheta(t)` with

.. math:: M_q = \prod_{m=q}^{1} \operatorname{diag}(f'(\mathrm{net}(t-m)))\, W_h^\top
   = \operatorname{diag}(f'(\mathrm{net}(t-q)))
     \Bigl(\frac{\partial h^{(t-1)}}{\partial h^{(t-q)}}\Bigr)^{\!\top} W_h^\top ,

the transpose of the chain of step Jacobians
:math:`\partial h^{(s)} / \partial h^{(s-1)} = \operatorname{diag}(f'(\mathrm{net}(s))) W_h`
(written in net-input space: :math:`M_q = (\partial \mathrm{net}(t) / \partial \mathrm{net}(t-q))^\top`),
and :math:`\partial \vartheta_v(t-q) / \partial \vartheta_u(t) = (M_q)_{vu}`.
Expanding the product gives the sum over paths
:math:`l_0 = u, l_1, \dots, l_q = v`:

.. math:: \frac{\partial \vartheta_v(t-q)}{\partial \vartheta_u(t)}
   = \sum_{l_1=0}^{n-1} \cdots \sum_{l_{q-1}=0}^{n-1} \prod_{m=1}^{q}
     f'_{l_m}(\mathrm{net}_{l_m}(t-m))\, w_{l_{m-1} l_m} .

The weight of step m is :math:`w_{l_{m-1} l_m} = (W_h)_{l_{m-1} l_m}`: the
connection *from* :math:`l_m` *to* :math:`l_{m-1}`, along which the error flows
back. The closed form as restated in seed 002 (after the 1997 paper) writes
:math:`w_{l_m l_{m-1}}`; under the paper's own convention that is the forward
connection, which disagrees with its own q = 1 case
(:math:`f'_v(\mathrm{net}_v(t-1))\, w_{uv}`) and with the recursion as soon as
:math:`W_h` is not symmetric. gradflow follows the recursion; the tests show
the printed subscript order fails for a non-symmetric :math:`W_h`.

References
----------
S. Hochreiter, *Untersuchungen zu dynamischen neuronalen Netzen*, Diploma
thesis, Institut für Informatik, Technische Universität München, 1991.
S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural Computation
9(8):1735–1780, 1997, §3.
"""

from __future__ import annotations

import itertools

import sympy as sp

from gradflow._checks import is_int
from gradflow.cells.cell import Cell
from gradflow.cells.expr import t
from gradflow.errors import GradflowError
from gradflow.symbolic._units import ErrorSignal, OpaqueDerivative, _slopes, _Units, _units, classify_scaling
from gradflow.symbolic.cec import _check_steps, cec_condition, cec_path, cec_weights
from gradflow.symbolic.explicit import explicit, explicit_step
from gradflow.symbolic.jacobian import step_jacobian

__all__ = [
    "ErrorSignal",
    "OpaqueDerivative",
    "cec_condition",
    "cec_path",
    "cec_weights",
    "classify_scaling",
    "error_flow_matrix",
    "error_flow_paths",
    "error_flow_product",
    "error_recursion",
    "scaling_factor",
]


def error_recursion(cell: Cell, *, opaque: bool = False) -> list[sp.Eq]:
    r"""Hochreiter's error recursion, one equation per unit.

    .. math:: \vartheta_j(t) = f'_j(\mathrm{net}_j(t)) \sum_i w_{ij}\, \vartheta_i(t+1),
       \qquad w_{ij} = (W_h)_{ij}

    (connection from j to i; see the module's *Convention*).

    Parameters
    ----------
    cell : Cell
        A single-state cell with integer sizes whose structured step
        Jacobian is :math:`\operatorname{diag}(\sigma'(\mathrm{net})) W`, W a
        square recurrent parameter (Elman) or :math:`\operatorname{diag}(u)`
        (IndRNN).
    opaque : bool, default False
        Write :math:`f'_j(\mathrm{net}_j(t))` as the symbol
        :class:`OpaqueDerivative` ``(j, t)`` instead of the activation's
        derivative at the explicit net input.

    Returns
    -------
    list of sympy.Eq
        Equation j has :class:`ErrorSignal` ``(j, t)`` on the left; zero
        weights (IndRNN's off-diagonal) drop out of the sum.

    Raises
    ------
    CellDefinitionError
        If the cell still has symbolic sizes (use ``cell.with_sizes(n=2, m=1)``).
    GradflowError
        If the cell is not a net of such units (several states, a gated or
        leaky update, a skip connection, a backward state).

    Examples
    --------
    >>> import gradflow as gf
    >>> for eq in error_recursion(gf.cells.elman(n=2, m=1), opaque=True):
    ...     print(eq)
    Eq(vartheta_0(t), (vartheta_0(t + 1)*W_h[0, 0] + vartheta_1(t + 1)*W_h[1, 0])*f'_0(t))
    Eq(vartheta_1(t), (vartheta_0(t + 1)*W_h[0, 1] + vartheta_1(t + 1)*W_h[1, 1])*f'_1(t))

    References
    ----------
    S. Hochreiter, Diploma thesis, TU München, 1991. S. Hochreiter,
    J. Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997, §3.1.1.
    """
    units = _units(cell, "error_recursion")
    step = explicit_step(cell)
    weights = explicit(units.weights, cell, step)
    slopes = _slopes(units, step, 0, opaque)
    n = weights.rows
    return [
        sp.Eq(
            ErrorSignal(j, t),
            slopes[j] * sp.Add(*(weights[i, j] * ErrorSignal(i, t + 1) for i in range(n))),
            evaluate=False,
        )
        for j in range(n)
    ]


def error_flow_paths(cell: Cell, u: int, v: int, q: int, *, opaque: bool = True) -> sp.Expr:
    r"""The error flowing back from unit u at time t to unit v at time t − q, as a sum over paths.

    .. math:: \frac{\partial \vartheta_v(t-q)}{\partial \vartheta_u(t)}
       = \sum_{l_1} \cdots \sum_{l_{q-1}} \prod_{m=1}^{q}
         f'_{l_m}(\mathrm{net}_{l_m}(t-m))\, w_{l_{m-1} l_m},
       \qquad l_0 = u,\ l_q = v,\ w_{ij} = (W_h)_{ij}

    (the weight order follows the recursion; see the module's *Convention*).

    Parameters
    ----------
    cell : Cell
        As for :func:`error_recursion`.
    u, v : int
        Units, ``0 <= u, v < n``.
    q : int
        Steps back, ``q >= 1``.
    opaque : bool, default True
        Derivatives as :class:`OpaqueDerivative` ``(l, t - m)``; ``False``
        expands them at the explicit net inputs.

    Returns
    -------
    sympy.Expr
        An ``Add`` of :math:`n^{q-1}` products, one per path (fewer when
        weights are zero, as for IndRNN); a single product when q = 1.

    Raises
    ------
    CellDefinitionError
        If the cell still has symbolic sizes.
    GradflowError
        For a cell :func:`error_recursion` refuses, q < 1, or a unit out of range.

    Examples
    --------
    >>> import gradflow as gf
    >>> error_flow_paths(gf.cells.elman(n=2, m=1), u=0, v=1, q=1)
    f'_1(t - 1)*W_h[0, 1]
    >>> len(error_flow_paths(gf.cells.elman(n=2, m=1), u=0, v=1, q=3).args)
    4

    References
    ----------
    S. Hochreiter, Diploma thesis, TU München, 1991, pp. 19–21. S. Hochreiter,
    J. Schmidhuber, Neural Computation 9(8), 1997, §3.1.1.
    """
    units = _units(cell, "error_flow_paths")
    q = _check_steps(q, "error_flow_paths")
    step = explicit_step(cell)
    weights = explicit(units.weights, cell, step)
    n = weights.rows
    for name, unit in (("u", u), ("v", v)):
        if not is_int(unit) or not 0 <= unit < n:
            raise GradflowError(
                f"error_flow_paths: unit {name}={unit!r} must be an int in 0..{n - 1} for cell {cell.name!r}"
            )
    u, v = int(u), int(v)
    slopes = {m: _slopes(units, step, m, opaque) for m in range(1, q + 1)}
    terms = []
    for middle in itertools.product(range(n), repeat=q - 1):
        path = (u, *middle, v)
        terms.append(sp.Mul(*(slopes[m][path[m]] * weights[path[m - 1], path[m]] for m in range(1, q + 1))))
    return sp.Add(*terms)  # type: ignore[no-any-return]


def error_flow_product(cell: Cell, q: int) -> sp.MatMul:
    r"""The structured :math:`M_q = \prod_{m=q}^{1} \operatorname{diag}(f'(\mathrm{net}(t-m)))\, W^\top`, unevaluated.

    Each factor is gradflow's structured step Jacobian
    :math:`\operatorname{diag}(f'(\mathrm{net}(t))) W` shifted to
    :math:`t - m` (``xreplace({t: t - m})``), its weight matrix transposed:
    :math:`\vartheta(t-q) = M_q \vartheta(t)`, the leftmost factor is the
    oldest step.

    Parameters
    ----------
    cell : Cell
        A cell :func:`error_recursion` accepts; sizes may be symbolic.
    q : int
        Steps back, ``q >= 1``.

    Returns
    -------
    sympy.MatMul
        2q factors, shape (n, n); ``explicit(M, cell)`` expands it.

    Raises
    ------
    GradflowError
        For a cell :func:`error_recursion` refuses, or q < 1.

    Examples
    --------
    >>> import gradflow as gf
    >>> print(error_flow_product(gf.cells.elman(), 2))
    diag(tanh'(W_h*h[t - 3] + W_x*x[t - 2] + b))*W_h.T*diag(tanh'(W_h*h[t - 2] + W_x*x[t - 1] + b))*W_h.T

    References
    ----------
    S. Hochreiter, J. Schmidhuber, Neural Computation 9(8), 1997, §3.1.1.
    """
    return _product(_units(cell, "error_flow_product"), _check_steps(q, "error_flow_product"))


def _product(units: _Units, q: int) -> sp.MatMul:
    jacobian = step_jacobian(units.cell, units.state)  # diag(f'(net(t))) W, checked by _units
    factors: list[sp.Basic] = []
    for m in range(q, 0, -1):
        diag, weights = jacobian.xreplace({t: t - m}).args
        factors += [diag, sp.Transpose(weights)]
    return sp.MatMul(*factors)


def error_flow_matrix(cell: Cell, q: int, *, opaque: bool = True) -> sp.ImmutableMatrix:
    r"""Every :math:`\partial \vartheta_v(t-q) / \partial \vartheta_u(t)` at once, as entry ``[v, u]``.

    :func:`error_flow_product` expanded by :func:`~gradflow.symbolic.explicit.explicit`;
    with ``opaque`` the derivative columns are expanded as placeholders and
    their entries replaced by :class:`OpaqueDerivative` ``(l, t - m)``, so
    that entry ``[v, u]`` equals ``error_flow_paths(cell, u, v, q)``.

    Parameters
    ----------
    cell : Cell
        As for :func:`error_recursion`.
    q : int
        Steps back, ``q >= 1``.
    opaque : bool, default True
        As for :func:`error_flow_paths`.

    Returns
    -------
    sympy.ImmutableMatrix
        Shape (n, n), rows :math:`\vartheta(t-q)`, columns
        :math:`\vartheta(t)` (numerator layout).

    Raises
    ------
    CellDefinitionError
        If the cell still has symbolic sizes.
    GradflowError
        For a cell :func:`error_recursion` refuses, or q < 1.

    Examples
    --------
    >>> import gradflow as gf
    >>> error_flow_matrix(gf.cells.elman(n=2, m=1), 1)
    Matrix([
    [f'_0(t - 1)*W_h[0, 0], f'_0(t - 1)*W_h[1, 0]],
    [f'_1(t - 1)*W_h[0, 1], f'_1(t - 1)*W_h[1, 1]]])

    References
    ----------
    S. Hochreiter, J. Schmidhuber, Neural Computation 9(8), 1997, §3.1.1.
    """
    units = _units(cell, "error_flow_matrix")
    product = _product(units, _check_steps(q, "error_flow_matrix"))
    step = explicit_step(cell)
    if not opaque:
        return explicit(product, cell, step)
    n = units.cell.states[units.state]
    placeholders = {m: sp.MatrixSymbol(f"fprime__{m}", n, 1) for m in range(1, q + 1)}
    product = product.xreplace({units.derivative.xreplace({t: t - m}): p for m, p in placeholders.items()})
    matrix = explicit(product, cell, step)
    return matrix.xreplace(
        {p[j, 0]: OpaqueDerivative(j, t - m) for m, p in placeholders.items() for j in range(int(n))}
    )


def scaling_factor(cell: Cell, source: int, target: int, m: int = 1, *, opaque: bool = True) -> sp.Expr:
    r"""One step's factor :math:`|f'_{l_m}(\mathrm{net}_{l_m}(t-m))\, w_{l_{m-1} l_m}|` of a path.

    The error flowing back from unit ``source`` (:math:`l_{m-1}`, at
    :math:`t-m+1`) to unit ``target`` (:math:`l_m`, at :math:`t-m`) is scaled
    by this factor; :func:`classify_scaling` reads it.

    Parameters
    ----------
    cell : Cell
        As for :func:`error_recursion`.
    source, target : int
        Units :math:`l_{m-1}` and :math:`l_m`.
    m : int, default 1
        The step: the factor sits at time :math:`t - m`.
    opaque : bool, default True
        As for :func:`error_flow_paths`.

    Returns
    -------
    sympy.Expr
        An ``Abs``, a number once values are substituted.

    Raises
    ------
    CellDefinitionError
        If the cell still has symbolic sizes.
    GradflowError
        As for :func:`error_flow_paths` (m < 1, a unit out of range).

    Examples
    --------
    >>> import gradflow as gf
    >>> import sympy as sp
    >>> cell = gf.cells.elman(n=2, m=1)
    >>> factor = scaling_factor(cell, source=0, target=1, m=2)
    >>> factor
    Abs(f'_1(t - 2)*W_h[0, 1])
    >>> w, slope = cell.parameter("W_h")[0, 1], OpaqueDerivative(1, gf.cells.t - 2)
    >>> classify_scaling(factor.subs({w: 3, slope: sp.Rational(1, 2)}))
    'exploding'

    References
    ----------
    S. Hochreiter, J. Schmidhuber, Neural Computation 9(8), 1997, §3.1.1.
    """
    m = _check_steps(m, "scaling_factor", "m")
    one_step = error_flow_paths(cell, source, target, 1, opaque=opaque)  # at t - 1
    return sp.Abs(one_step.xreplace({t: t - (m - 1)}))
