"""The public API others rely on (the README's tour): every name exists and is exported."""

from __future__ import annotations

import pytest

import gradflow as gf

CONTRACT = [
    "cells",
    "Cell",
    "unroll",
    "derive",
    "gamma",
    "init_params",
    "simulate",
    "jacobian_chain",
    "bptt",
    "regime",
    "from_torch",
    "Full",
    "Truncated",
    "Randomized",
    "GradflowError",
    "UnsupportedCellError",
]
CELLS = [
    "elman",
    "jordan",
    "lstm",
    "gru",
    "leaky",
    "skip",
    "ctrnn",
    "indrnn",
    "minimal",
    "stack",
    "bidirectional",
]


@pytest.mark.parametrize("name", sorted(set(gf.__all__)))
def test_every_exported_name_exists(name: str) -> None:
    assert hasattr(gf, name), f"gradflow.__all__ lists {name!r} but gradflow has no such attribute"


@pytest.mark.parametrize("name", CONTRACT)
def test_contract_names_are_exported(name: str) -> None:
    assert name in gf.__all__


@pytest.mark.parametrize("name", CELLS)
def test_contract_cells_exist(name: str) -> None:
    assert callable(getattr(gf.cells, name))


@pytest.mark.parametrize("module", [gf.numeric, gf.symbolic, gf.graph, gf.export, gf.cells])
def test_subpackage_all_is_consistent(module: object) -> None:
    missing = [n for n in module.__all__ if not hasattr(module, n)]  # type: ignore[attr-defined]
    assert not missing
