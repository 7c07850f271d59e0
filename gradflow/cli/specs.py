r"""Cell specs of the command line: ``lstm``, ``"skip(delay=4)"``, ``"stack(lstm, gru)"``.

A CELL is a built-in name, optionally called with literal arguments, and
combinators nest: ``lstm``, ``"skip(delay=4)"``, ``"elman('relu')"``,
``"stack(lstm, gru)"``, ``"bidirectional(gru(reset_after=True))"``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence

from gradflow import cells
from gradflow.cells.cell import Cell
from gradflow.errors import UsageError

__all__ = ["BUILTIN", "parse_cell", "parse_sizes"]

#: The built-in cells by name, as the command line knows them.
BUILTIN: dict[str, Callable[..., Cell]] = {
    "elman": cells.elman,
    "jordan": cells.jordan,
    "lstm": cells.lstm,
    "lstm1997": lambda **kw: cells.lstm(forget_gate=False, **kw),
    "lstm_peephole": lambda **kw: cells.lstm(peephole=True, **kw),
    "gru": cells.gru,
    "gru_reset_after": lambda **kw: cells.gru(reset_after=True, **kw),
    "leaky": cells.leaky,
    "skip": cells.skip,
    "ctrnn": cells.ctrnn,
    "indrnn": cells.indrnn,
    "minimal": cells.minimal,
}


def parse_cell(spec: str) -> Cell:
    """Build a cell from a command-line spec such as ``"stack(lstm, gru(reset_after=True))"``.

    Raises
    ------
    UsageError
        For an unknown name or an argument that is not a literal.

    Examples
    --------
    >>> parse_cell("skip(delay=4)").name
    'skip4'
    """
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as err:
        raise UsageError(f"cell {spec!r} is not a name or a call such as 'skip(delay=4)'") from err
    return _build(tree, spec)


def _build(node: ast.expr, spec: str) -> Cell:
    if isinstance(node, ast.Name):
        node = ast.Call(func=node, args=[], keywords=[])
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise UsageError(f"cell {spec!r}: '{ast.unparse(node)}' is not a cell name or call")
    name = node.func.id
    if name in ("stack", "bidirectional"):
        parts = [_build(arg, spec) for arg in node.args]
        if node.keywords:
            raise UsageError(f"cell {spec!r}: {name} takes cells only")
        if name == "stack":
            return cells.stack(parts)
        if len(parts) != 1:
            raise UsageError(f"cell {spec!r}: bidirectional takes one cell")
        return cells.bidirectional(parts[0])
    factory = BUILTIN.get(name)
    if factory is None:
        known = ", ".join([*BUILTIN, "stack", "bidirectional"])
        raise UsageError(f"cell {spec!r}: unknown cell {name!r}; known: {known}")
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except ValueError as err:
        raise UsageError(f"cell {spec!r}: the arguments of {name} must be literals") from err
    try:
        return factory(*args, **kwargs)
    except TypeError as err:
        raise UsageError(f"cell {spec!r}: {err}") from err


def parse_sizes(pairs: Sequence[str]) -> dict[str, int]:
    """``["n=3", "m=2"]`` as ``{"n": 3, "m": 2}``."""
    sizes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not key or not value.isdigit():
            raise UsageError(f"size {pair!r} must look like n=3")
        sizes[key] = int(value)
    return sizes
