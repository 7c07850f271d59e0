r"""Loss surfaces over two parameters, and gradient descent on them with and without clipping.

The loss is half the squared error of a state at the last step, averaged over the batch,

.. math::
    L = \frac{1}{2B} \sum_{b=1}^{B} \bigl\lVert s_b^{(T)} - y_b \bigr\rVert_2^2,
    \qquad \frac{\partial L}{\partial s_b^{(T)}} = \frac{s_b^{(T)} - y_b}{B},

the setting of Pascanu, Mikolov and Bengio's cliff (a one-unit network
:math:`x_t = w\,\sigma(x_{t-1}) + b` trained so that :math:`x_{50} = 0.7`): :func:`loss_surface`
evaluates :math:`L` on a grid of two parameters, :func:`gradient_descent` follows
:math:`\theta \leftarrow \theta - \eta\,\partial L/\partial\theta` with the gradients of
:func:`gradflow.bptt`, optionally rescaled by its ``clip_norm`` (their algorithm 1). Near a cliff
one unclipped step can throw the parameters far away; a clipped step cannot be longer than
:math:`\eta\theta_{\text{clip}}`.

References
----------
R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent neural networks",
ICML 2013, §3 and fig. 6. I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, §10.11.1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gradflow._checks import is_int
from gradflow.cells.cell import Cell
from gradflow.errors import GradflowError, NonFiniteError, ShapeError
from gradflow.numeric.backend import namespace
from gradflow.numeric.bptt import bptt
from gradflow.numeric.simulate import Trajectory, simulate

__all__ = ["Descent", "LossSurface", "gradient_descent", "loss_surface", "squared_error"]


@dataclass(frozen=True)
class LossSurface:
    """The loss on a grid of two parameters.

    Attributes
    ----------
    names : (str, str)
        The parameters varied: along the columns, and along the rows.
    x, y : arrays (X,) and (Y,)
        Their values.
    loss : array (Y, X)
        :math:`L` at each pair (``loss[j, i]`` at ``x[i]``, ``y[j]``); ``inf`` where the
        simulation overflowed.
    state : str
        The state the loss reads at the last step.
    T : int
    """

    names: tuple[str, str]
    x: Any
    y: Any
    loss: Any
    state: str
    T: int


@dataclass(frozen=True)
class Descent:
    r"""A path of gradient descent.

    Attributes
    ----------
    names : tuple of str
        The parameters trained (the others stay fixed).
    params : array (steps + 1, P)
        Their values before each step and after the last, one column per entry of the trained
        parameters in order (one column each for one-entry parameters).
    loss : array (steps + 1,)
        :math:`L` at each of those points.
    gradient_norm : array (steps,)
        The global norm of the parameter gradients at each step, before clipping.
    clipped : array (steps,) of bool
        Whether clipping rescaled the step.
    learning_rate : float
    clip_norm : float or None
    """

    names: tuple[str, ...]
    params: Any
    loss: Any
    gradient_norm: Any
    clipped: Any
    learning_rate: float
    clip_norm: float | None


def _state(cell: Cell, state: str | None) -> str:
    if state is None:
        if len(cell.states) != 1:
            raise GradflowError(
                f"cell {cell.name!r} has states {', '.join(cell.states)}; choose the one the loss reads with state="
            )
        return next(iter(cell.states))
    if state not in cell.states:
        raise GradflowError(f"cell {cell.name!r} has no state {state!r}; it has {', '.join(cell.states)}")
    return state


def squared_error(trajectory: Trajectory, state: str, target: Any) -> tuple[float, Any]:
    r"""Half the squared error of ``state`` at the last step, averaged over the batch, and its gradient.

    Returns
    -------
    (float, array (B, n))
        :math:`L` and :math:`\partial L/\partial s^{(T)}`.

    Raises
    ------
    ShapeError
        For a target that does not broadcast to (B, n), or holds NaN or infinite entries.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": np.zeros((1, 1)), "W_x": np.ones((1, 1)), "b": np.zeros(1)}
    >>> trajectory = gf.simulate(gf.cells.elman("identity"), params, np.ones((2, 1, 1)))
    >>> squared_error(trajectory, "h", 0.0)[0]
    0.5
    """
    series = trajectory[state]
    xp = namespace(series)
    last = series[0 if state in trajectory.cell.backward else -1, ...]
    try:
        goal = xp.broadcast_to(xp.asarray(target, dtype=last.dtype), last.shape)
    except (ValueError, TypeError) as err:
        raise ShapeError(
            f"target must be a number or an array that broadcasts to (B, n) = {tuple(last.shape)} "
            f"of state {state!r}; got {target!r}"
        ) from err
    if not bool(xp.all(xp.isfinite(goal))):
        raise ShapeError("target holds NaN or infinite entries")
    error = last - goal
    B = int(last.shape[0])
    return float(xp.sum(error * error)) / (2 * B), error / B


def _one_entry(cell: Cell, params: Mapping[str, Any], name: str) -> tuple[int, ...]:
    """The shape of a parameter with one entry (a scalar, or a (1, 1) matrix)."""
    if name not in cell.params:
        raise GradflowError(f"cell {cell.name!r} has no parameter {name!r}; it has {', '.join(cell.params)}")
    if name not in params:
        raise ShapeError(f"params has no value for {name!r}")
    shape = tuple(int(d) for d in getattr(params[name], "shape", ()))
    if math.prod(shape) != 1:
        raise ShapeError(
            f"parameter {name!r} has shape {shape}; a loss surface varies parameters with one entry "
            "(a one-unit network's w and b: a scalar, or a (1, 1) matrix)"
        )
    return shape


def _namespace(backend: Any, value: Any) -> Any:
    """The backend asked for, else the namespace of a parameter's array (NumPy for numbers and lists)."""
    if backend is not None or not hasattr(value, "shape"):
        return namespace(backend)
    return namespace(value)


def _grid_values(name: str, values: Any) -> list[float]:
    try:
        numbers_ = [float(v) for v in values]
    except (TypeError, ValueError):
        numbers_ = []
    if len(numbers_) < 2 or not all(math.isfinite(v) for v in numbers_):
        raise GradflowError(
            f"the values of {name!r} must be a list of at least 2 finite numbers, got {values!r}"
        )
    return numbers_


def loss_surface(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    target: Any,
    vary: Mapping[str, Sequence[float]],
    *,
    state: str | None = None,
    initial: Mapping[str, Any] | None = None,
    backend: Any = None,
) -> LossSurface:
    r"""Evaluate the loss (see the module) on a grid of two one-entry parameters.

    Parameters
    ----------
    cell, params, inputs, initial, backend
        As for :func:`gradflow.simulate`; ``params`` gives the values of every parameter that
        is not varied.
    target : array or number
        :math:`y`, broadcast to (B, n).
    vary : dict of two names -> values
        The parameters and their values: the first along the columns (x), the second along the
        rows (y). Each must have one entry (a scalar or a (1, 1) matrix).
    state : str, optional
        The state the loss reads (default the cell's only state).

    Returns
    -------
    LossSurface
        A point whose simulation overflows gets a loss of ``inf``.

    Raises
    ------
    GradflowError
        For ``vary`` without exactly two parameters, unknown names, values that are not at
        least two finite numbers, or an unknown ``state``.
    ShapeError
        For a varied parameter with more than one entry, or a bad target.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": np.ones((1, 1)), "W_x": np.zeros((1, 1)), "b": np.zeros(1)}
    >>> surface = loss_surface(gf.cells.elman(), params, np.zeros((10, 1, 1)), 0.5,
    ...                        {"W_h": [0.5, 1.5], "b": [-1.0, 0.0, 1.0]}, initial={"h": np.full(1, 0.5)})
    >>> surface.loss.shape
    (3, 2)
    """
    if not isinstance(vary, Mapping) or len(vary) != 2:
        raise GradflowError(f"vary must name exactly two parameters with their values, got {vary!r}")
    chosen = _state(cell, state)
    (first, xs), (second, ys) = ((name, _grid_values(name, values)) for name, values in vary.items())
    shapes = {name: _one_entry(cell, params, name) for name in (first, second)}
    xp = _namespace(backend, params[first])
    rows = []
    T = 0
    for b in ys:
        row = []
        for a in xs:
            point = {**params, first: xp.full(shapes[first], a), second: xp.full(shapes[second], b)}
            try:
                trajectory = simulate(cell, point, inputs, initial, backend=backend)
            except NonFiniteError:
                row.append(math.inf)
                continue
            T = trajectory.T
            row.append(squared_error(trajectory, chosen, target)[0])
        rows.append(row)
    return LossSurface((first, second), xp.asarray(xs), xp.asarray(ys), xp.asarray(rows), chosen, T)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < math.inf:
        raise GradflowError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def gradient_descent(
    cell: Cell,
    params: Mapping[str, Any],
    inputs: Any,
    target: Any,
    *,
    train: Sequence[str],
    learning_rate: float,
    steps: int,
    clip_norm: float | None = None,
    state: str | None = None,
    initial: Mapping[str, Any] | None = None,
    backend: Any = None,
) -> Descent:
    r"""Follow gradient descent on the loss (see the module), the gradients from :func:`gradflow.bptt`.

    Parameters
    ----------
    cell, params, inputs, initial, backend
        As for :func:`gradflow.bptt`; ``params`` is the starting point.
    target : array or number
        :math:`y`, broadcast to (B, n).
    train : sequence of str
        The parameters that move; the others stay as given.
    learning_rate : float
        :math:`\eta`.
    steps : int
    clip_norm : float, optional
        Passed to :func:`gradflow.bptt`: the parameter gradients are rescaled to this global norm
        when they exceed it (the norm is over every parameter's gradient; with inputs of zero,
        as in the cliff, the untrained input weights have none).
    state : str, optional
        The state the loss reads (default the cell's only state).

    Returns
    -------
    Descent

    Raises
    ------
    GradflowError
        For an empty or unknown ``train``, a non-positive ``learning_rate``, ``steps`` that is
        not a positive int, or a step that leaves the floating-point range (the message names
        the step: clip the gradients or lower the learning rate).

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": np.ones((1, 1)), "W_x": np.zeros((1, 1)), "b": np.zeros(1)}
    >>> path = gradient_descent(gf.cells.elman(), params, np.zeros((10, 1, 1)), 0.5, train=["W_h", "b"],
    ...                         learning_rate=0.5, steps=20, initial={"h": np.full(1, 0.5)})
    >>> bool(path.loss[-1] < path.loss[0])
    True
    """
    if isinstance(train, str) or not isinstance(train, Sequence) or not train:
        raise GradflowError(f"train must be a non-empty list of parameter names, got {train!r}")
    for name in train:
        if name not in cell.params:
            raise GradflowError(
                f"cell {cell.name!r} has no parameter {name!r}; it has {', '.join(cell.params)}"
            )
    rate = _positive("learning_rate", learning_rate)
    if not is_int(steps) or steps < 1:
        raise GradflowError(f"steps must be a positive int, got {steps!r}")
    threshold = None if clip_norm is None else _positive("clip_norm", clip_norm)
    chosen = _state(cell, state)
    for name in train:
        if name not in params:
            raise ShapeError(f"params has no value for {name!r}")
    xp = _namespace(backend, params[train[0]])
    current = dict(params)
    path, losses, norms, clipped = [], [], [], []
    for step in range(int(steps) + 1):
        path.append([float(v) for name in train for v in xp.reshape(xp.asarray(current[name]), (-1,))])
        try:
            trajectory = simulate(cell, current, inputs, initial, backend=backend)
            loss, gradient_last = squared_error(trajectory, chosen, target)
        except NonFiniteError as err:
            raise GradflowError(
                f"gradient descent left the floating-point range before step {step + 1}: {err}; "
                "clip the gradients (clip_norm=) or lower the learning rate"
            ) from err
        losses.append(loss)
        if step == steps:
            break
        zero = xp.zeros_like(gradient_last)
        series = [zero] * (trajectory.T - 1)
        series = [gradient_last, *series] if chosen in cell.backward else [*series, gradient_last]
        grads = bptt(
            cell,
            current,
            inputs,
            {chosen: xp.stack(series)},
            initial=initial,
            clip_norm=threshold,
            backend=backend,
        )
        norms.append(grads.norm)
        clipped.append(grads.clipped)
        for name in train:
            current[name] = xp.asarray(current[name], dtype=grads[name].dtype) - rate * grads[name]
            if not bool(xp.all(xp.isfinite(current[name]))):
                raise GradflowError(
                    f"gradient descent left the floating-point range at step {step + 1} ({name!r}); "
                    "clip the gradients (clip_norm=) or lower the learning rate"
                )
    return Descent(
        tuple(train),
        xp.asarray(path),
        xp.asarray(losses),
        xp.asarray(norms),
        xp.asarray(clipped, dtype=xp.bool),
        rate,
        threshold,
    )
