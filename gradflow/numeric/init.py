r"""Initial parameters of a cell: the schemes the literature compares.

``init_params(cell, seed=...)`` returns one array per parameter of the cell.
What each parameter *is* comes from the cell's own equations
(:func:`parameter_roles`), never from its name:

* a **recurrent** matrix is a square matrix parameter that multiplies a state
  read at a nonzero lag (:math:`W_h h^{(t-1)}`, :math:`W_d h^{(t-d)}`, a
  backward state's :math:`h^{(t+1)}`), directly or through the step's own
  intermediates (:math:`W_h (r \circ h^{(t-1)})` in a GRU,
  :math:`W_h \sigma(h^{(t-1)})` in a CTRNN);
* any other matrix is an **input** matrix (a stacked layer's :math:`W_x`
  reads the layer below at time :math:`t`, so it is one);
* a vector parameter that multiplies elementwise is a **diagonal** weight --
  **recurrent** diagonal when its partner reads a past state (IndRNN's
  :math:`u \circ h^{(t-1)}`, the peepholes :math:`p_f \circ c^{(t-1)}`);
* any other vector is a **bias**; a parameter of shape () is a **scalar**.

Random numbers are drawn with NumPy from one seed, one independent stream per
parameter name, so a parameter's value depends only on the seed, the scheme
and its own shape; the arrays are then moved to the requested backend.
"""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal
from gradflow.errors import CellDefinitionError, GradflowError, ShapeError
from gradflow.numeric.backend import dtype_of, namespace, to_numpy

__all__ = ["IRNN_INPUT_STD", "SCALAR_DEFAULTS", "SCHEMES", "init_params", "parameter_roles"]

#: The initialisation schemes :func:`init_params` knows.
SCHEMES = ("gaussian", "orthogonal", "identity", "indrnn")

#: Values of scalar parameters, by the last part of their name (``"layer1.alpha"`` -> ``"alpha"``):
#: a leak of one half, and a forward-Euler step of a tenth of the time constant.
SCALAR_DEFAULTS: dict[str, float] = {"alpha": 0.5, "tau": 1.0, "dt": 0.1}

#: Standard deviation of the non-recurrent weights of the identity (IRNN) scheme (Le et al. 2015).
IRNN_INPUT_STD = 1e-3

_ROLES = ("recurrent", "input", "recurrent_diagonal", "diagonal", "bias", "scalar")


def _reads_past(expr: sp.Basic, past: Mapping[str, bool]) -> bool:
    """Whether ``expr`` reads a state at a nonzero lag, or an intermediate of this step that does."""
    for signal in expr.atoms(Signal):
        if signal.role == "state" and signal.lag != 0:
            return True
        if signal.role == "intermediate" and signal.lag == 0 and past.get(signal.name, False):
            return True
    return False


def parameter_roles(cell: Cell) -> dict[str, str]:
    r"""What each parameter of ``cell`` does, read from its equations.

    Parameters
    ----------
    cell : Cell
        Symbolic or concrete. Squareness is judged on the sizes the cell has:
        Jordan's :math:`W_h` (:math:`n \times k`) is recurrent only once
        :math:`k = n`.

    Returns
    -------
    dict of str to str
        Parameter name -> one of ``"recurrent"`` (a square matrix multiplying
        a past state), ``"input"`` (any other matrix), ``"recurrent_diagonal"``,
        ``"diagonal"`` (vectors multiplying elementwise), ``"bias"`` (other
        vectors), ``"scalar"``; in the order of ``cell.params``.

    Examples
    --------
    >>> import gradflow as gf
    >>> parameter_roles(gf.cells.elman())
    {'W_h': 'recurrent', 'W_x': 'input', 'b': 'bias'}
    >>> parameter_roles(gf.cells.indrnn())["u"]
    'recurrent_diagonal'
    """
    past: dict[str, bool] = {}
    for kind, name in cell.order:
        if kind == "intermediate":
            past[name] = _reads_past(cell.expression(kind, name), past)
    multiplies_past: set[str] = set()
    elementwise: dict[str, bool] = {}
    names = set(cell.params)
    for kind, name in cell.order:
        for node in sp.preorder_traversal(cell.expression(kind, name)):
            if isinstance(node, sp.MatMul):
                factors = [a for a in node.args if isinstance(a, sp.MatrixExpr)]
                for k, factor in enumerate(factors[:-1]):
                    parameter = isinstance(factor, sp.MatrixSymbol) and factor.name in names
                    if parameter and any(_reads_past(right, past) for right in factors[k + 1 :]):
                        multiplies_past.add(factor.name)
            elif isinstance(node, sp.HadamardProduct):
                for k, factor in enumerate(node.args):
                    if isinstance(factor, sp.MatrixSymbol) and factor.name in names:
                        others = node.args[:k] + node.args[k + 1 :]
                        recurrent = any(_reads_past(other, past) for other in others)
                        elementwise[factor.name] = elementwise.get(factor.name, False) or recurrent
    roles: dict[str, str] = {}
    for name, shape in cell.params.items():
        if len(shape) == 0:
            roles[name] = "scalar"
        elif len(shape) == 2:
            square = sp.simplify(shape[0] - shape[1]) == 0
            roles[name] = "recurrent" if square and name in multiplies_past else "input"
        elif name in elementwise:
            roles[name] = "recurrent_diagonal" if elementwise[name] else "diagonal"
        else:
            roles[name] = "bias"
    return roles


def _real(value: Any) -> bool:
    """A Python or NumPy real number, but not a bool."""
    return not isinstance(value, bool | np.bool_) and isinstance(
        value, int | float | np.floating | np.integer
    )


def _positive(value: Any, what: str) -> float:
    if not _real(value):
        raise GradflowError(f"{what} must be a positive number, got {value!r}")
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise GradflowError(f"{what} must be a positive finite number, got {value!r}")
    return number


def _root(seed: Any) -> np.random.SeedSequence:
    if seed is None:
        return np.random.SeedSequence()
    try:
        if isinstance(seed, bool):
            raise TypeError
        value = operator.index(seed)
        if value < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise GradflowError(f"seed must be None or a non-negative int, got {seed!r}") from None
    return np.random.SeedSequence(value)


def _stream(root: np.random.SeedSequence, name: str) -> np.random.Generator:
    """An independent generator for one parameter: the seed's entropy, keyed by the name."""
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(key,)))


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A Haar-random (semi-)orthogonal matrix: QR of a Gaussian, signs fixed by R's diagonal."""
    tall = rows >= cols
    gaussian = rng.standard_normal((rows, cols) if tall else (cols, rows))
    q, r = np.linalg.qr(gaussian)
    signs = np.sign(np.diag(r))
    q = q * np.where(signs == 0, 1.0, signs)
    return q if tall else q.T


def _draw(
    role: str, shape: tuple[int, ...], scheme: str, gain: float, rng: np.random.Generator
) -> np.ndarray:
    """One parameter's value under ``scheme`` (biases and scalars are set elsewhere)."""
    matrix = role in ("recurrent", "input")
    fan_in = shape[1] if matrix else 1
    if scheme == "identity":
        if role == "recurrent":
            return gain * np.eye(shape[0])
        if role == "recurrent_diagonal":
            return np.full(shape, gain)
        return IRNN_INPUT_STD * rng.standard_normal(shape)
    if scheme == "indrnn":
        if role == "recurrent_diagonal":
            return rng.uniform(0.0, gain, size=shape)
        return rng.standard_normal(shape) / math.sqrt(fan_in)
    if scheme == "orthogonal":
        if matrix:
            return gain * _orthogonal(rng, shape[0], shape[1])
        return gain * np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return rng.standard_normal(shape) * (gain / math.sqrt(fan_in))


def _rescale(name: str, matrix: np.ndarray, radius: float | None, norm: float) -> np.ndarray:
    """``matrix`` scaled to spectral radius ``radius`` if given, else to spectral norm ``norm``."""
    if radius is not None:
        current, what, target = float(np.max(np.abs(np.linalg.eigvals(matrix)))), "spectral radius", radius
    else:
        current, what, target = float(np.linalg.norm(matrix, 2)), "spectral norm", norm
    if not current > 0:
        raise GradflowError(
            f"recurrent matrix {name!r} has {what} 0, so it cannot be rescaled to {target}; "
            "use another scheme or pass its value in values="
        )
    return matrix * (target / current)


def _concrete(cell: Cell, sizes: Mapping[str, int] | None) -> Cell:
    if not isinstance(cell, Cell):
        raise GradflowError(f"init_params needs a Cell, got {type(cell).__name__}")
    if sizes:
        cell = cell.with_sizes(**dict(sizes))
    if not cell.is_concrete:
        missing = [s.name for s in cell.size_symbols]
        example = ", ".join(f"{s!r}: 4" for s in missing)
        raise CellDefinitionError(
            f"cell {cell.name!r} has symbolic sizes {', '.join(missing)}; give them, "
            f"e.g. init_params(cell, sizes={{{example}}})"
        )
    return cell


def _scalar_default(name: str, cell: Cell) -> float:
    short = name.rsplit(".", 1)[-1]
    if short not in SCALAR_DEFAULTS:
        known = ", ".join(f"{k}={v}" for k, v in SCALAR_DEFAULTS.items())
        raise GradflowError(
            f"scalar parameter {name!r} of cell {cell.name!r} has no default (defaults: {known}); "
            f"pass it, e.g. init_params(cell, values={{{name!r}: 0.5}})"
        )
    return SCALAR_DEFAULTS[short]


def _override(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A value given in ``values=``: the parameter's exact shape, or a number broadcast to it."""
    try:
        array = np.asarray(to_numpy(value) if hasattr(value, "shape") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeError(f"values[{name!r}] must be a number or an array of numbers, got {value!r}") from None
    if array.ndim != 0 and array.shape != shape:
        raise ShapeError(
            f"values[{name!r}] has shape {array.shape} but parameter {name!r} has shape {shape}; "
            "give an array of that shape, or a number for every entry"
        )
    if not np.all(np.isfinite(array)):
        raise ShapeError(
            f"values[{name!r}] holds NaN or infinite entries; parameter {name!r} needs finite numbers"
        )
    return np.array(np.broadcast_to(array, shape))


def _check_range(name: str, value: np.ndarray, source: str, largest: float, dtype: str) -> None:
    """Raise if ``value`` holds an entry that is not finite or above ``largest``, the top of ``dtype``."""
    if value.size and not float(np.max(np.abs(value))) <= largest:
        option = source.split("=", 1)[0]
        fix = (
            f"give smaller numbers in {source}"
            if source.startswith("values[")
            else f"give a smaller {option}"
        )
        raise GradflowError(
            f"{source} makes parameter {name!r} overflow: its entries would exceed {largest:.4g}, the "
            f"largest {dtype} number; {fix}"
        )


def init_params(
    cell: Cell,
    *,
    seed: int | None = None,
    sizes: Mapping[str, int] | None = None,
    scheme: str = "gaussian",
    gain: float = 1.0,
    spectral_radius: float | None = None,
    spectral_norm: float | None = None,
    bias: float = 0.0,
    values: Mapping[str, Any] | None = None,
    backend: Any = None,
    dtype: Any = None,
) -> dict[str, Any]:
    r"""Initial values of every parameter of ``cell``, by a scheme of the literature.

    Parameters
    ----------
    cell : Cell
    seed : int, optional
        Seed of the random draws (fresh entropy when None). Each parameter has
        its own stream keyed by its name, so the same seed gives the same
        ``W_h`` whatever else the cell holds.
    sizes : dict of str to int, optional
        Values of the cell's symbolic sizes (``{"n": 4, "m": 3}``); required
        unless the cell is concrete.
    scheme : {"gaussian", "orthogonal", "identity", "indrnn"}
        How matrices and diagonal weights are drawn (roles as in
        :func:`parameter_roles`):

        * ``"gaussian"`` -- entries :math:`\mathcal{N}(0, \text{gain}^2/\text{fan\_in})`,
          fan_in the number of columns (1 for a diagonal weight), so a
          recurrent matrix has spectral radius near ``gain``;
        * ``"orthogonal"`` -- ``gain`` times a Haar-random orthogonal matrix
          (semi-orthogonal when not square; QR of a Gaussian with the signs
          fixed by R's diagonal); diagonal weights :math:`\pm\text{gain}`;
        * ``"identity"`` -- IRNN: recurrent matrices :math:`\text{gain}\,I`,
          recurrent diagonal weights ``gain``, the other matrices and diagonal
          weights :math:`\mathcal{N}(0, 10^{-6})` (:data:`IRNN_INPUT_STD`);
        * ``"indrnn"`` -- recurrent diagonal weights uniform in
          :math:`(0, u_{\max})` with :math:`u_{\max}` = ``gain``; everything
          else as ``"gaussian"`` with gain 1. The cell needs a recurrent
          diagonal weight (IndRNN's :math:`u`).
    gain : float, default 1.0
        See ``scheme``.
    spectral_radius, spectral_norm : float, optional
        Rescale every recurrent matrix so that its largest :math:`|\lambda|`
        (resp. its largest singular value) equals this number. At most one.
    bias : float, default 0.0
        The value of every bias entry.
    values : dict, optional
        Values that replace the drawn ones: an array of the parameter's shape,
        or a number for every entry; used as given, not rescaled. Scalar parameters
        take them, else :data:`SCALAR_DEFAULTS` (``alpha`` 0.5, ``tau`` 1,
        ``dt`` 0.1).
    backend : None, str or namespace
        Where the arrays live (NumPy by default); see
        :func:`gradflow.numeric.backend.namespace`.
    dtype : None, "float32" or "float64"
        float64 by default.

    Returns
    -------
    dict of str to array
        Parameter name -> array of the parameter's shape; 0-d arrays for scalars.

    Raises
    ------
    CellDefinitionError
        When the cell has symbolic sizes and ``sizes`` does not give them all,
        or ``sizes`` names a size the cell does not have.
    ShapeError
        For a ``values`` entry the cell lacks, one of the wrong shape, or one
        holding NaN or infinite entries (the message names the parameter).
    GradflowError
        For an unknown scheme, a gain or spectral target that is not a positive
        finite real number, a bias that is not a finite real number (Python or
        NumPy numbers are accepted, bools are not), both spectral targets at
        once, a spectral target for a cell without a recurrent matrix,
        ``scheme="indrnn"`` on a cell without a recurrent diagonal weight, a
        scalar parameter without a default value, or a bad seed; and when
        ``gain``, ``spectral_radius``, ``spectral_norm``, ``bias`` or a
        ``values`` entry is so large that a parameter overflows ``dtype``
        (the message names the option and the parameter).

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> from gradflow.numeric.init import init_params
    >>> params = init_params(gf.cells.elman(), seed=0, sizes={"n": 4, "m": 3}, spectral_radius=0.9)
    >>> {name: value.shape for name, value in params.items()}
    {'W_h': (4, 4), 'W_x': (4, 3), 'b': (4,)}
    >>> round(float(np.max(np.abs(np.linalg.eigvals(params["W_h"])))), 12)
    0.9
    >>> u = init_params(gf.cells.indrnn(n=3, m=2), seed=0, scheme="indrnn", gain=0.5)["u"]
    >>> bool(np.all((0 < u) & (u < 0.5)))
    True

    References
    ----------
    A. M. Saxe, J. L. McClelland, S. Ganguli, "Exact solutions to the
    nonlinear dynamics of learning in deep linear neural networks", ICLR 2014
    (orthogonal initialisation). Q. V. Le, N. Jaitly, G. E. Hinton, "A simple
    way to initialize recurrent networks of rectified linear units", 2015
    (IRNN). S. Li, W. Li, C. Cook, C. Zhu, Y. Gao, "Independently recurrent
    neural network (IndRNN)", CVPR 2018. H. Jaeger, "The echo state approach
    to analysing and training recurrent neural networks", GMD report 148,
    2001 (scaling to a spectral radius).
    """
    if scheme not in SCHEMES:
        raise GradflowError(f"unknown initialisation scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    gain = _positive(gain, "gain")
    if spectral_radius is not None and spectral_norm is not None:
        raise GradflowError(
            "give spectral_radius or spectral_norm, not both: each alone fixes the scale of the "
            "recurrent matrices"
        )
    radius = None if spectral_radius is None else _positive(spectral_radius, "spectral_radius")
    norm = None if spectral_norm is None else _positive(spectral_norm, "spectral_norm")
    if not _real(bias) or not math.isfinite(float(bias)):
        raise GradflowError(
            f"bias must be a finite number (a real Python or NumPy number), got {bias!r}; e.g. bias=0.0"
        )
    concrete = _concrete(cell, sizes)
    roles = parameter_roles(concrete)
    overrides = dict(values or {})
    unknown = sorted(set(overrides) - set(roles))
    if unknown:
        raise ShapeError(
            f"values for {', '.join(map(repr, unknown))}, which cell {concrete.name!r} does not have; "
            f"its parameters are {', '.join(roles)}"
        )
    if scheme == "indrnn" and "recurrent_diagonal" not in roles.values():
        raise GradflowError(
            f"scheme 'indrnn' draws elementwise recurrent weights (u in u * h), and cell {concrete.name!r} "
            "has none; use scheme 'identity', 'orthogonal' or 'gaussian'"
        )
    if (radius is not None or norm is not None) and "recurrent" not in roles.values():
        raise GradflowError(
            f"cell {concrete.name!r} has no recurrent matrix (a square matrix parameter multiplying a past "
            "state) to rescale; drop spectral_radius/spectral_norm"
            + (", or use scheme='indrnn' with gain=u_max" if "recurrent_diagonal" in roles.values() else "")
        )
    root = _root(seed)
    xp = namespace(backend)
    real = dtype_of(xp, dtype)
    largest, real_name = float(xp.finfo(real).max), "float32" if real == xp.float32 else "float64"
    arrays: dict[str, np.ndarray] = {}
    for name, role in roles.items():
        shape = tuple(int(d) for d in concrete.params[name])
        if name in overrides:
            value, source = _override(name, overrides[name], shape), f"values[{name!r}]"
        elif role == "scalar":
            value, source = np.asarray(_scalar_default(name, concrete)), f"the default of {name!r}"
        elif role == "bias":
            value, source = np.full(shape, float(bias)), f"bias={bias!r}"
        else:
            # an overflow is reported below, naming the option, rather than as NumPy's warning
            with np.errstate(over="ignore", invalid="ignore"):
                value, source = _draw(role, shape, scheme, gain, _stream(root, name)), f"gain={gain!r}"
                if role == "recurrent" and (radius is not None or norm is not None):
                    _check_range(name, value, source, np.finfo(np.float64).max, "float64")
                    value = _rescale(name, value, radius, norm or 0.0)
                    source = (
                        f"spectral_radius={radius!r}" if radius is not None else f"spectral_norm={norm!r}"
                    )
        _check_range(name, value, source, largest, real_name)
        arrays[name] = value
    return {name: xp.asarray(value, dtype=real) for name, value in arrays.items()}
