"""Imports flow one way (DESIGN.md): cells -> graph -> symbolic -> export; numeric uses cells and symbolic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gradflow

ROOT = Path(gradflow.__file__).parent

#: What each layer may import from gradflow (besides itself and gradflow.errors).
#: The private modules at the top, gradflow._io (the atomic file writer) and gradflow._checks (argument
#: checks such as "an int that is not a bool"), are layer-neutral, like gradflow.errors: every layer may
#: use them, and they import nothing of gradflow but gradflow.errors.
NEUTRAL = {"_io", "_checks"}
ALLOWED = {
    **{module: set() for module in NEUTRAL},
    "cells": NEUTRAL,
    "graph": NEUTRAL | {"cells"},
    "symbolic": NEUTRAL | {"cells", "graph"},
    "export": NEUTRAL | {"cells", "graph", "symbolic"},
    "numeric": NEUTRAL | {"cells", "symbolic"},
    "plot": NEUTRAL | {"cells", "graph", "symbolic", "export", "numeric"},
    "sweep": NEUTRAL | {"cells", "graph", "symbolic", "export", "numeric"},
    "cli": NEUTRAL | {"cells", "graph", "symbolic", "export", "numeric", "plot", "sweep"},
}

#: The documented exceptions, each delegated upwards lazily (inside a function):
#: evaluation of an edge's Jacobian; a Derivation printing itself (to_latex, to_markdown, Jupyter).
EXCEPTIONS = {
    ("graph/jacobian.py", "gradflow.symbolic.jacobian"),
    ("symbolic/derivation.py", "gradflow.export.document"),
}

#: Third-party modules a layer must never import.
FORBIDDEN = {"symbolic": {"numpy", "cupy", "torch"}, "cells": {"numpy", "cupy", "torch"}}


def layer_of(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0].removesuffix(".py")


def imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


MODULES = sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path: Path) -> None:
    layer = layer_of(path)
    if layer in ("errors",):
        assert not [m for m in imports(path) if m.startswith("gradflow")]
        return
    assert layer in ALLOWED, f"{path}: new layer {layer!r} needs a place in DESIGN.md and in ALLOWED"
    for module in imports(path):
        if module.startswith("gradflow."):
            target = module.split(".")[1]
            if target in (layer, "errors") or (str(path.relative_to(ROOT)), module) in EXCEPTIONS:
                continue
            assert target in ALLOWED[layer], f"{path.relative_to(ROOT)} ({layer}) imports {module}"
        top = module.split(".")[0]
        assert top not in FORBIDDEN.get(layer, set()), f"{path.relative_to(ROOT)} ({layer}) imports {module}"


def test_the_exceptions_still_exist() -> None:
    """An exception that is no longer needed should be removed from the list."""
    for relative, module in EXCEPTIONS:
        assert module in set(imports(ROOT / relative))


def test_every_gradflow_error_is_defined_in_gradflow_errors() -> None:
    """STYLE: gradflow/errors.py holds GradflowError and its subclasses (the modules re-export them)."""
    import importlib
    import inspect

    from gradflow.errors import GradflowError

    elsewhere = []
    for path in sorted(ROOT.rglob("*.py")):
        name = "gradflow." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        if name.rsplit(".", 1)[-1] == "__main__":  # running it is the command itself
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, GradflowError) and cls.__module__ != "gradflow.errors":
                elsewhere.append(f"{cls.__module__}.{cls.__qualname__}")
    assert not elsewhere, f"define these in gradflow/errors.py: {sorted(set(elsewhere))}"


def test_the_rule_an_int_that_is_not_a_bool_is_written_once() -> None:
    """gradflow._checks.is_int is the one place; a second copy would drift (NumPy ints, messages)."""
    import re

    copy = re.compile(
        r"isinstance\((\w+), bool\) or not isinstance\(\1, (int|numbers\.Integral)\)"
        r"|isinstance\((\w+), (int|numbers\.Integral)\) and not isinstance\(\3, bool\)"
    )
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in MODULES
        if path.name != "_checks.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if copy.search(line)
    ]
    assert not found, f"use gradflow._checks.is_int instead: {found}"
