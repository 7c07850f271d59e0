"""Imports flow one way (docs/architecture.md): cells -> graph -> symbolic -> export; numeric uses cells and
symbolic; sweep, plot and cli sit on top. No module imports, however indirectly, one that imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gradflow

ROOT = Path(gradflow.__file__).parent

#: What each layer may import from gradflow (besides itself and gradflow.errors).
#: The private modules at the top, gradflow._io (the atomic file writer), gradflow._checks (argument
#: checks such as "an int that is not a bool"), gradflow._threads (BLAS and OpenMP thread pools) and
#: gradflow._version, are layer-neutral, like gradflow.errors: every layer may use them, and they
#: import nothing of gradflow but gradflow.errors and each other.
NEUTRAL = {"_io", "_checks", "_threads", "_version"}
ALLOWED = {
    **{module: NEUTRAL for module in NEUTRAL},
    "cells": NEUTRAL,
    "graph": NEUTRAL | {"cells"},
    "symbolic": NEUTRAL | {"cells", "graph"},
    "export": NEUTRAL | {"cells", "graph", "symbolic"},
    "numeric": NEUTRAL | {"cells", "symbolic"},
    "plot": NEUTRAL | {"cells", "graph", "symbolic", "export", "numeric", "sweep"},
    "sweep": NEUTRAL | {"cells", "graph", "symbolic", "export", "numeric"},
    "report": NEUTRAL | {"cells", "graph", "symbolic", "export", "numeric", "plot", "sweep"},
    "cli": NEUTRAL | {"cells", "graph", "symbolic", "export", "numeric", "plot", "sweep", "report"},
}

#: The documented exception, delegated upwards lazily (inside a function): evaluation of an edge's
#: Jacobian. (A Derivation prints itself through the printers gradflow.export registers with it.)
EXCEPTIONS = {
    ("graph/jacobian.py", "gradflow.symbolic.jacobian"),
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
    assert layer in ALLOWED, (
        f"{path}: new layer {layer!r} needs a place in docs/architecture.md and in ALLOWED"
    )
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


def module_name(path: Path) -> str:
    parts = ("gradflow", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: Every module of gradflow by dotted name, the package __init__ files included.
NAMES = {module_name(path): path for path in ROOT.rglob("*.py")}


def import_edges(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """The gradflow modules that ``path`` (or ``source``, as if it were there) imports, with the line of
    each import statement.

    Every import statement counts: at module level, under ``if TYPE_CHECKING:``, and inside
    functions. An import inside a function runs later, when the function is called, so it cannot
    fail on a half-initialised module; but it is the same dependency, only deferred, and a circle
    through it is the same design circle (a Derivation importing the printers that import it was
    one). ``from package import name`` counts as an import of the submodule ``package.name`` when
    there is one, else of the package (its ``__init__``). Importing ``a.b.c`` also runs ``a`` and
    ``a.b``; those implicit imports of parent packages are not counted, since every module would
    otherwise sit in a circle with ``gradflow/__init__.py``, which imports the whole API.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = []
    text = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            edges += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..a import b
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                edges.append((target if target in NAMES else base, node.lineno))
    return [(target, line) for target, line in edges if target in NAMES and target != name]


def test_import_edges_resolve_submodules_packages_and_relative_imports() -> None:
    """The parser of the cycle test sees what it must (so that its silence means something)."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import gradflow.numeric.simulate\n"
        "from gradflow.numeric import compiled, simulate as sim, bptt\n"
        "from gradflow.numeric import jacobian_chain\n"
        "from . import _values\n"
        "from .. import errors\n"
        "if TYPE_CHECKING:\n"
        "    from gradflow.numeric.chain import ChainResult\n"
        "def later():\n"
        "    from gradflow.sweep import sweep\n"
    )
    edges = import_edges(ROOT / "numeric" / "_as_if_here.py", source)
    assert sorted({target for target, _ in edges}) == [
        "gradflow.errors",
        "gradflow.numeric",
        "gradflow.numeric._values",
        "gradflow.numeric.bptt",
        "gradflow.numeric.chain",
        "gradflow.numeric.compiled",
        "gradflow.numeric.simulate",
        "gradflow.sweep",
    ]


def test_no_import_cycles() -> None:
    """No gradflow module imports itself through others: imports run one way, also within a layer.

    What counts as an import is said in :func:`import_edges` (inside functions too). A circle is
    broken by moving what both sides need below them (numeric/_problem.py), or by letting the lower
    side be told what to call (register_printer in symbolic/derivation.py).
    """
    import networkx as nx

    graph = nx.DiGraph()
    for name, path in NAMES.items():
        for target, line in import_edges(path):
            graph.add_edge(name, target, line=line)
    cycles = sorted(nx.simple_cycles(graph), key=len)
    shown = [
        " -> ".join(
            f"{a} (line {graph.edges[a, b]['line']})"
            for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True)
        )
        + f" -> {cycle[0]}"
        for cycle in cycles[:10]
    ]
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(shown)
