"""The result of :func:`gradflow.numeric.bptt.bptt`, and gradient clipping (Pascanu et al. 2013)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gradflow.errors import GradflowError
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
    """

    def __init__(
        self,
        params: dict[str, Any],
        inputs: dict[str, Any] | Callable[[], dict[str, Any]],
        initial: dict[str, Any],
        trajectory: Trajectory,
    ) -> None:
        self._params = params
        self._inputs = inputs
        self.initial = initial
        self.trajectory = trajectory
        self.norm = global_norm(params)
        self.clipped = False

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
    r""":math:`\sqrt{\sum_\theta \lVert \partial L/\partial\theta \rVert_F^2}` over every gradient."""
    total = 0.0
    for value in grads.values():
        xp = _namespace_of(value)
        total += float(xp.sum(value * value)) if hasattr(value, "shape") else float(value) ** 2
    return total**0.5


def _namespace_of(value: Any) -> Any:
    import array_api_compat

    return array_api_compat.array_namespace(value)


def clip_by_norm(grads: Mapping[str, Any], threshold: float) -> tuple[dict[str, Any], bool]:
    r"""Pascanu et al.'s rescaling: if :math:`\lVert g \rVert > \theta`, :math:`g \leftarrow \theta g / \lVert g \rVert`.

    Returns
    -------
    (dict, bool)
        The (possibly rescaled) gradients and whether they were rescaled.

    Raises
    ------
    GradflowError
        For a threshold that is not a positive finite number.

    References
    ----------
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent
    neural networks", ICML 2013, algorithm 1.
    """
    if not (isinstance(threshold, int | float) and 0 < threshold < float("inf")):
        raise GradflowError(f"clip norm threshold must be a positive number, got {threshold!r}")
    norm = global_norm(grads)
    if norm <= threshold:
        return dict(grads), False
    scale = threshold / norm
    return {name: value * scale for name, value in grads.items()}, True


def clip_by_value(grads: Mapping[str, Any], limit: float) -> tuple[dict[str, Any], bool]:
    """Clamp every component to ``[-limit, limit]``; returns the gradients and whether any changed.

    Raises
    ------
    GradflowError
        For a limit that is not a positive finite number.
    """
    if not (isinstance(limit, int | float) and 0 < limit < float("inf")):
        raise GradflowError(f"clip value limit must be a positive number, got {limit!r}")
    clipped, changed = {}, False
    for name, value in grads.items():
        xp = _namespace_of(value)
        bounded = xp.clip(value, -limit, limit)
        changed = changed or bool(xp.any(bounded != value))
        clipped[name] = bounded
    return clipped, changed
