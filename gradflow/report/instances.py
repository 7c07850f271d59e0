r"""Random instances of a cell, measured: what ``gradflow sweep``, ``gradflow plot`` and the report draw.

An instance is a cell (a spec such as ``"lstm"``) with parameters by :func:`gradflow.init_params`
(``scheme``, recurrent weights times ``gain``) at state size ``n``, run on N(0, 1) inputs of ``T``
steps and ``B`` sequences, everything drawn from one seed: the same setting gives the same numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gradflow.cells.cell import Cell
from gradflow.cells.specs import parse_cell
from gradflow.errors import UsageError

__all__ = ["Setting", "instance", "other_sizes", "random_instance", "regime_point"]


@dataclass(frozen=True)
class Setting:
    """How instances are drawn.

    Attributes
    ----------
    n : int
        The state size.
    T, B : int
        Steps and sequences of the inputs.
    seed : int
    scheme : str
        The initialisation (:func:`gradflow.init_params`).
    sizes : mapping of str to int
        The cells' other symbolic sizes (4 each where not given).
    """

    n: int = 32
    T: int = 100
    B: int = 8
    seed: int = 0
    scheme: str = "orthogonal"
    sizes: Mapping[str, int] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Setting:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def describe(self) -> str:
        """``n = 32, T = 100, B = 8, orthogonal init, seed 0`` for titles."""
        return f"n = {self.n}, T = {self.T}, B = {self.B}, {self.scheme} init, seed {self.seed}"


def other_sizes(spec: str, cell: Cell, given: Mapping[str, int] | None = None) -> dict[str, int]:
    """The cell's symbolic sizes other than ``n``: 4 each, or as ``given``.

    Raises
    ------
    UsageError
        For a cell without a symbolic state size ``n``, or a size it does not have.

    Examples
    --------
    >>> other_sizes("jordan", parse_cell("jordan"), {"m": 8})
    {'k': 4, 'm': 8}
    """
    names = {s.name for s in cell.size_symbols}
    if "n" not in names:
        raise UsageError(f"cell {spec!r} has no symbolic state size n to set (its sizes: {sorted(names)})")
    sizes = {name: 4 for name in sorted(names - {"n"})}
    unknown = set(given or {}) - (names - {"n"})
    if unknown:
        raise UsageError(
            f"--sizes: cell {spec!r} has no size {', '.join(sorted(unknown))} to set "
            f"(its other sizes: {sorted(names - {'n'}) or 'none'}; n is set with --n)"
        )
    return {**sizes, **(given or {})}


def random_instance(
    cell: Cell, n: int, gain: float, seed: int, T: int, B: int, sizes: Mapping[str, int], scheme: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameters by ``scheme`` with recurrent ``gain`` at state size ``n``, and N(0, 1) inputs (T, B, size).

    The parameters and the inputs draw from ``seed`` (each parameter from its own stream,
    see :func:`gradflow.init_params`); ``sizes`` fixes the cell's other symbolic sizes.

    Examples
    --------
    >>> params, inputs = random_instance(parse_cell("elman"), 4, 0.5, 0, 10, 2, {"m": 3}, "orthogonal")
    >>> params["W_h"].shape, inputs["x"].shape
    ((4, 4), (10, 2, 3))
    """
    import numpy as np

    from gradflow.numeric import init_params

    every = {**sizes, "n": n}
    every = {s.name: every[s.name] for s in cell.size_symbols}
    params = init_params(cell, sizes=every, seed=seed, scheme=scheme, gain=gain)
    rng = np.random.default_rng(seed)
    concrete = cell.with_sizes(**every)
    inputs = {name: rng.normal(size=(T, B, int(size))) for name, size in concrete.inputs.items()}
    return params, inputs


def instance(spec: str, setting: Setting, gain: float) -> tuple[Cell, dict[str, Any], dict[str, Any], Cell]:
    """The cell of ``spec``, its parameters and inputs at ``gain``, and the cell at these sizes."""
    cell = parse_cell(spec)
    sizes = {**other_sizes(spec, cell, setting.sizes), "n": setting.n}
    params, inputs = random_instance(
        cell, setting.n, gain, setting.seed, setting.T, setting.B, sizes, setting.scheme
    )
    return cell, params, inputs, cell.with_sizes(**{s.name: sizes[s.name] for s in cell.size_symbols})


@functools.lru_cache(maxsize=64)
def _concrete(spec: str, sizes: tuple[tuple[str, int], ...]) -> Cell:
    """The cell of ``spec`` at integer ``sizes``, built once per process for all its points.

    Parsing a cell's equations costs milliseconds, a good part of a small point; the kernels
    compiled for the cell (:func:`gradflow.numeric.compile`) and its bound's are remembered per
    cell in the same way.
    """
    cell = parse_cell(spec)
    return cell.with_sizes(
        **{name: value for name, value in sizes if name in {s.name for s in cell.size_symbols}}
    )


def regime_point(
    cell: str,
    n: int,
    gain: float,
    repeat: int,
    seed: int,
    T: int,
    B: int,
    sizes: dict[str, int],
    scheme: str,
) -> dict[str, Any]:
    """The regime of ``cell`` at state size ``n`` and recurrent gain ``gain`` (one grid point of a sweep).

    ``repeat`` only tells repeats apart (each has its own ``seed``); ``sizes``
    fixes the cell's other symbolic sizes.

    Examples
    --------
    >>> found = regime_point("elman", 8, 0.5, 0, seed=1, T=40, B=2, sizes={"m": 2}, scheme="orthogonal")
    >>> found["label"], found["consistent"]
    ('vanishing', True)
    """
    from gradflow.numeric import regime

    concrete = _concrete(cell, tuple(sorted({**sizes, "n": n}.items())))
    params, inputs = random_instance(concrete, n, gain, seed, T, B, {}, scheme)
    found = regime(concrete, params, inputs)
    return {
        "predicted_rate": found.predicted_rate,
        "rate": found.rate,
        "standard_error": found.standard_error,
        "label": found.label,
        "confidence": found.confidence,
        "consistent": found.consistent,
    }
