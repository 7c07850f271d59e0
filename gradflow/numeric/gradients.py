"""The result of :func:`gradflow.numeric.bptt.bptt`, and gradient clipping (Pascanu et al. 2013)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gradflow.errors import GradflowError, ShapeError
from gradflow.numeric.simulate import Trajectory

__all__ = ["Gradients", "clip_by_norm", "clip_by_value", "global_norm"]


class Gradients(Mapping[str, Any]):
    r"""Gradients of the loss: a mapping parameter name -> array shaped like the parameter.

    Attributes
    ----------
    inputs : dict of str to array
        :math:`\\partial L/\\partial x^{(t)}`, laid out like the inputs (T, B, m); computed
        on first access (a caller who wants only the weights' gradients never pays for it).
    initial : dict of str to array
        :math:`\\partial L/\\partial s^{(0)}` per state, (B, n) (or (d, B, n),
        oldest first, for a state read d > 1 steps back).
    trajectory : Trajectory
        The forward pass the gradients were computed on.
    norm : float
        The global norm of the parameter gradients before any clipping.
    clipped : bool
        Whether clipping changed them.
    strategy : Full, Truncated or Randomized
        The truncation strategy they were computed with.
    """

    def __init__(
        self,
        params: dict[str, Any],
        inputs: dict[str, Any] | Callable[[], dict[str, Any]],
        initial: dict[str, Any],
        trajectory: Trajectory,
        strategy: Any = None,
    ) -> None:
        self._params = params
        self._inputs = inputs
        self.initial = initial
        self.trajectory = trajectory
        self.norm = global_norm(params)
        self.clipped = False
        self.strategy = strategy

    @property
    def inputs(self) -> dict[str, Any]:
        r""":math:`\partial L/\partial x^{(t)}` per input, (T, B, m); formed on first access (one product per matrix)."""
        if callable(self._inputs):
            self._inputs = self._inputs()
        return self._inputs

    def __getitem__(self, name: str) -> Any:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Gradients({', '.join(self._params)}; norm={self.norm:.6g})"


def global_norm(grads: Mapping[str, Any]) -> float:
    r""":math:`\sqrt{\sum_\theta \lVert \partial L/\partial\theta \rVert_F^2}` over every gradient.

    Computed without overflow or underflow: when squaring the entries could
    leave the range of their dtype, they are first divided by the largest
    magnitude, so the result is finite and accurate whenever the norm itself
    is representable as a float.

    Parameters
    ----------
    grads : mapping of str to array
        Arrays of any array-API backend; Python numbers and (nested) lists of
        numbers are read as float64 NumPy arrays.

    Returns
    -------
    float
        The norm; ``inf`` if an entry is infinite (or the norm exceeds the
        largest float), ``nan`` if an entry is NaN.

    Raises
    ------
    ShapeError
        For an entry that is not a real array or number (a string, a
        complex or boolean array), named in the message.

    Examples
    --------
    >>> import numpy as np
    >>> global_norm({"a": np.array([3.0, -4.0]), "b": np.array([[12.0]])})
    13.0
    >>> global_norm({"a": np.array([1e200, 1e200])})  # doctest: +ELLIPSIS
    1.41421356237309...e+200
    """
    return _norm(_entries(grads))


def _entries(grads: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(name, namespace, real array)`` for each gradient; numbers and lists become float64 NumPy arrays."""
    import array_api_compat

    entries = []
    for name, value in grads.items():
        try:
            xp = array_api_compat.array_namespace(value)
        except TypeError:
            import numpy as np

            if isinstance(value, bool | str | bytes) or not isinstance(value, int | float | list | tuple):
                raise ShapeError(
                    f"gradient {name!r} must be an array (or a number, or a list of numbers), got "
                    f"{type(value).__name__} {value!r:.80}"
                ) from None
            try:
                value = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ShapeError(
                    f"gradient {name!r} must be an array of real numbers, got {value!r:.80} ({err})"
                ) from err
            xp = array_api_compat.array_namespace(value)
        if xp.isdtype(value.dtype, "integral"):
            value = xp.astype(value, xp.float64)
        elif not xp.isdtype(value.dtype, "real floating"):
            raise ShapeError(
                f"gradient {name!r} has dtype {value.dtype}; gradients must be real floating-point arrays"
            )
        entries.append((name, xp, value))
    return entries


def _largest(xp: Any, value: Any) -> float:
    """The largest magnitude in ``value`` (0 when empty; NaN if it holds a NaN)."""
    if math.prod(value.shape) == 0:
        return 0.0
    return float(xp.max(xp.abs(value)))


def _norm(entries: list[tuple[str, Any, Any]]) -> float:
    largest = [_largest(xp, value) for _, xp, value in entries]
    if any(math.isnan(x) for x in largest):
        return math.nan
    top = max(largest, default=0.0)
    if top == 0.0 or math.isinf(top):
        return top
    moderate = all(
        x == 0.0 or _squares_fit(xp, value.dtype, x, math.prod(value.shape))
        for (_, xp, value), x in zip(entries, largest, strict=True)
    )
    if moderate:
        total = sum(float(xp.sum(value * value)) for _, xp, value in entries)
        if math.isfinite(total):
            return math.sqrt(total)
    # scaled: each entry by its own largest magnitude (within its dtype), then by the overall largest
    total = 0.0
    for (_, xp, value), x in zip(entries, largest, strict=True):
        if x > 0.0:
            scaled = value / x
            total += (x / top) ** 2 * float(xp.sum(scaled * scaled))
    return top * math.sqrt(total)


def _squares_fit(xp: Any, dtype: Any, largest: float, count: int) -> bool:
    """Whether the sum of ``count`` squares of magnitude at most ``largest`` neither overflows nor underflows."""
    info = xp.finfo(dtype)
    return float(info.smallest_normal) / float(info.eps) <= largest * largest <= float(info.max) / (2 * count)


def _threshold(value: Any, what: str) -> float:
    """A clipping threshold: a real Python or NumPy number (not a bool), positive and finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or _is_numpy_bool(value):
        raise GradflowError(
            f"{what} must be a positive number, got {value!r} ({type(value).__name__}); e.g. 1.0"
        )
    number = float(value)
    if not (0 < number < math.inf):
        raise GradflowError(f"{what} must be a positive finite number, got {value!r}; e.g. 1.0")
    return number


def _is_numpy_bool(value: Any) -> bool:
    return getattr(getattr(value, "dtype", None), "kind", None) == "b"


def clip_by_norm(grads: Mapping[str, Any], threshold: float) -> tuple[dict[str, Any], bool]:
    r"""Pascanu et al.'s rescaling: if :math:`\lVert g \rVert > \theta`, :math:`g \leftarrow \theta g / \lVert g \rVert`.

    Parameters
    ----------
    grads : mapping of str to array
        As for :func:`global_norm`; every entry must be finite.
    threshold : float
        :math:`\theta`: a positive finite real number (Python or NumPy, not a bool).

    Returns
    -------
    (dict, bool)
        The (possibly rescaled) gradients and whether they were rescaled.
        Unchanged gradients are returned as given; rescaled ones as arrays
        (numbers and lists as float64 NumPy arrays).

    Raises
    ------
    GradflowError
        For a threshold that is not a positive finite number.
    ShapeError
        For a gradient holding NaN or infinite entries (named in the message:
        rescaling would turn it into NaN), or one that is not a real array or number.

    Examples
    --------
    >>> import numpy as np
    >>> clipped, changed = clip_by_norm({"a": np.array([3.0, 4.0])}, 1.0)
    >>> clipped["a"].tolist(), changed
    ([0.6000000000000001, 0.8], True)

    References
    ----------
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent
    neural networks", ICML 2013, algorithm 1.
    """
    limit = _threshold(threshold, "clip norm threshold")
    entries = _entries(grads)
    norm = _norm(entries)
    if not math.isfinite(norm):
        bad = [name for name, xp, value in entries if not bool(xp.all(xp.isfinite(value)))]
        if bad:
            raise ShapeError(
                f"cannot clip by norm: gradient {', '.join(map(repr, bad))} holds NaN or infinite entries, "
                "so rescaling would make every gradient NaN; clip only finite gradients (find the step "
                "where the forward pass or the loss first becomes NaN or infinite)"
            )
    if norm <= limit:
        return dict(grads), False
    if math.isfinite(norm):
        scale = limit / norm
        return {name: value * scale for name, _, value in entries}, True
    # a norm beyond the largest float: scale down by the largest magnitude first
    top = max(_largest(xp, value) for _, xp, value in entries)
    shrunk = [(name, xp, value / top) for name, xp, value in entries]
    scale = limit / _norm(shrunk)
    return {name: value * scale for name, _, value in shrunk}, True


def clip_by_value(grads: Mapping[str, Any], limit: float) -> tuple[dict[str, Any], bool]:
    """Clamp every component to ``[-limit, limit]``; returns the gradients and whether any changed.

    Parameters
    ----------
    grads : mapping of str to array
        As for :func:`global_norm`.
    limit : float
        A positive finite real number (Python or NumPy, not a bool).

    Returns
    -------
    (dict, bool)
        The clamped gradients (numbers and lists as float64 NumPy arrays) and
        whether any component changed.

    Raises
    ------
    GradflowError
        For a limit that is not a positive finite number.
    ShapeError
        For a gradient that is not a real array or number.

    Examples
    --------
    >>> import numpy as np
    >>> clamped, changed = clip_by_value({"a": np.array([3.0, -0.5])}, 1.0)
    >>> clamped["a"].tolist(), changed
    ([1.0, -0.5], True)
    """
    bound = _threshold(limit, "clip value limit")
    clipped, changed = {}, False
    for name, xp, value in _entries(grads):
        bounded = xp.clip(value, -bound, bound)
        changed = changed or bool(xp.any(bounded != value))
        clipped[name] = bounded
    return clipped, changed
