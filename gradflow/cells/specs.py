r"""Cell specs, as the command line and the reports name cells: ``lstm``, ``"skip(delay=4)"``, ``"stack(lstm, gru)"``.

A CELL is a built-in name, optionally called with literal arguments, and
combinators nest: ``lstm``, ``"skip(delay=4)"``, ``"elman('relu')"``,
``"stack(lstm, gru)"``, ``"bidirectional(gru(reset_after=True))"``.

Your own cell is ``FILE.py:NAME`` or ``package.module:NAME``: NAME is a
:class:`~gradflow.Cell` defined there, or a function that returns one when
called without arguments.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from gradflow.cells import builtin as cells
from gradflow.cells.cell import Cell
from gradflow.cells.combinators import bidirectional, stack
from gradflow.errors import UsageError

__all__ = ["BUILTIN", "parse_cell"]

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
    location, _, name = spec.strip().rpartition(":")
    location, name = location.strip(), name.strip()
    if location and name.isidentifier() and "(" not in location:
        return _load(location, name, spec)
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as err:
        raise UsageError(f"cell {spec!r} is not a name or a call such as 'skip(delay=4)'") from err
    return _build(tree, spec)


def _load(location: str, name: str, spec: str) -> Cell:
    """The cell ``name`` of a Python file or an importable module."""
    if location.lower().endswith(".py"):
        path = Path(location)
        if not path.is_file():
            raise UsageError(f"cell {spec!r}: no file {location}")
        module_name = f"_gradflow_cells_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(module_name)
        if module is None:
            found = importlib.util.spec_from_file_location(module_name, path)
            if found is None or found.loader is None:
                raise UsageError(f"cell {spec!r}: cannot load {location} as Python")
            module = importlib.util.module_from_spec(found)
            folder = str(path.resolve().parent)
            sys.path.insert(0, folder)  # as when the file runs as a script: its siblings import
            try:
                found.loader.exec_module(module)
            except (Exception, SystemExit) as err:  # sys.exit in the file is not a success of ours
                raise UsageError(
                    f"cell {spec!r}: running {location} raised {type(err).__name__}: {err}"
                ) from err
            finally:
                sys.path.remove(folder)
            sys.modules[module_name] = module
    elif all(part.isidentifier() for part in location.split(".")):
        try:
            module = importlib.import_module(location)
        except (Exception, SystemExit) as err:
            raise UsageError(
                f"cell {spec!r}: cannot import {location} ({type(err).__name__}: {err})"
            ) from err
    else:
        raise UsageError(f"cell {spec!r}: write FILE.py:NAME or package.module:NAME for your own cell")
    if not hasattr(module, name):
        found_cells = sorted(k for k, v in vars(module).items() if isinstance(v, Cell))
        raise UsageError(
            f"cell {spec!r}: {location} has no {name!r}"
            + (f"; its cells: {', '.join(found_cells)}" if found_cells else "")
        )
    value = getattr(module, name)
    if callable(value) and not isinstance(value, Cell):
        try:
            value = value()
        except (Exception, SystemExit) as err:
            raise UsageError(f"cell {spec!r}: {name}() raised {type(err).__name__}: {err}") from err
    if not isinstance(value, Cell):
        raise UsageError(f"cell {spec!r}: {name} is a {type(value).__name__}, not a gradflow Cell")
    return value


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
            return stack(parts)
        if len(parts) != 1:
            raise UsageError(f"cell {spec!r}: bidirectional takes one cell")
        return bidirectional(parts[0])
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
