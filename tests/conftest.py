"""Fixtures shared by every test of gradflow.

``rng`` is the seeded random generator of CONTRIBUTING.md. The other fixtures are the
explicit-mode referee of the cell language (tests/cells):

``explicit_step`` expands one step of a cell into components with sympy
(``as_explicit``), substituting each value computed within the step (an
intermediate, a state read at ``t``, an output) by its own expansion, in
``cell.order``. What is left reads only parameters, states at other times and
inputs. ``random_point`` draws rational values for all of those, so that the
expansion can be compared with a componentwise formula written by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from gradflow.cells import Cell, Signal


def expand_step(cell: Cell) -> dict[str, sp.Matrix]:
    """Name -> explicit sympy Matrix of every intermediate, state and output of one step."""
    current: dict[sp.Basic, sp.Matrix] = {}
    expanded: dict[str, sp.Matrix] = {}
    for kind, name in cell.order:
        matrix = sp.Matrix(cell.expression(kind, name).as_explicit())
        matrix = matrix.xreplace(
            {
                element: current[element.parent][int(element.i), int(element.j)]
                for element in matrix.atoms(MatrixElement)
                if element.parent in current
            }
        )
        current[cell.signal(name)] = matrix
        expanded[name] = matrix
    return expanded


class Point:
    """Random rational values for the parameters, signals and scalars of a cell.

    ``P(name)`` is a parameter (a sympy Matrix, or a number for a scalar);
    ``S(name, lag)`` is a signal at ``t + lag`` (a sympy column).
    """

    def __init__(self, cell: Cell, rng: np.random.Generator, expressions: Iterable[sp.Matrix]) -> None:
        self.cell = cell
        self.rng = rng
        self.params: dict[str, Any] = {}
        self.signals: dict[tuple[str, int], sp.Matrix] = {}
        self.subs: dict[sp.Basic, sp.Expr] = {}
        for expr in expressions:
            for element in expr.atoms(MatrixElement):
                parent = element.parent
                if isinstance(parent, Signal):
                    value = self.S(parent.name, int(parent.lag))
                else:
                    value = self.P(parent.name)
                self.subs[element] = value[int(element.i), int(element.j)]
        for name, shape in cell.params.items():
            if shape == ():
                self.subs[cell.parameter(name)] = self.P(name)

    def _draw(self, low: int = -15, high: int = 15) -> sp.Rational:
        return sp.Rational(int(self.rng.integers(low, high + 1)), 10)

    def P(self, name: str) -> Any:
        if name not in self.params:
            shape = self.cell.params[name]
            if shape == ():  # alpha in [0, 1]; tau, dt positive
                self.params[name] = self._draw(1, 9) if name == "alpha" else self._draw(1, 20)
            else:
                rows, cols = int(shape[0]), int(shape[1]) if len(shape) == 2 else 1
                self.params[name] = sp.Matrix(rows, cols, lambda i, j: self._draw())
        return self.params[name]

    def S(self, name: str, lag: int) -> sp.Matrix:
        key = (name, lag)
        if key not in self.signals:
            size = int(self.cell.signal(name).shape[0])
            self.signals[key] = sp.Matrix(size, 1, lambda i, j: self._draw())
        return self.signals[key]


def assert_matches(expanded: sp.Matrix, point: Point, expected: list[Any], what: str) -> None:
    """Each component of ``expanded`` at ``point`` equals the hand-computed ``expected``."""
    assert expanded.shape == (len(expected), 1), what
    for i, reference in enumerate(expected):
        value = expanded[i, 0].xreplace(point.subs)
        difference = sp.N(value - reference, 40)
        assert difference.is_number, f"{what}[{i}]: {value} vs {reference}"
        assert abs(difference) < sp.Float("1e-25"), f"{what}[{i}]: {sp.N(value)} != {sp.N(reference)}"


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator: every test that draws numbers is reproducible."""
    return np.random.default_rng(20261123)


@pytest.fixture
def explicit_step() -> Callable[[Cell], dict[str, sp.Matrix]]:
    """The componentwise expansion of one step of a cell (see :func:`expand_step`)."""
    return expand_step


@pytest.fixture
def random_point(rng: np.random.Generator) -> Callable[[Cell, Iterable[sp.Matrix]], Point]:
    """Draw a random rational :class:`Point` for a cell and its expanded equations."""
    return lambda cell, expressions: Point(cell, rng, expressions)


@pytest.fixture
def matches() -> Callable[..., None]:
    """The comparison of an expansion with a hand-written componentwise formula."""
    return assert_matches
