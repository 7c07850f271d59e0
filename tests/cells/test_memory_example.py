"""The hand-set LSTM memory cell of the Datawhale notes (seed 004, C22), run from the cell's own equations."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path
from types import ModuleType

import pytest
import sympy as sp

import gradflow as gf

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hand_set_lstm_memory.py"
MEMORY = [3, 7, 7, 7, 0, 6, 6]
OUTPUT = [0, 0, 0, 7, 0, 0, 6]


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hand_set_lstm_memory", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_memory_and_output_follow_the_notes(example: ModuleType) -> None:
    memory, output = example.run_memory_example()
    assert memory == pytest.approx(MEMORY, abs=1e-3)
    assert output == pytest.approx(OUTPUT, abs=1e-3)


def test_the_example_uses_the_builtin_lstm(example: ModuleType) -> None:
    cell = example.build_cell()
    assert cell == gf.cells.lstm(n=1, m=3, activation="identity", cell_activation="identity")
    assert set(example.PARAMS) == set(cell.params)
    for name, value in example.PARAMS.items():
        assert sp.Matrix(value).reshape(*cell.parameter(name).shape).shape == cell.parameter(name).shape
    assert all(
        not any(row) for name, value in example.PARAMS.items() if name.startswith("W_") for row in value
    )


def test_evaluate_step_reads_the_cells_equations(example: ModuleType) -> None:
    """Change a gate's equation and the example follows: nothing is restated by hand."""
    cell = example.build_cell()
    values = example.evaluate_step(cell, example.PARAMS, {"h": [0], "c": [5]}, {"x": [2, 1, 1]})
    assert set(values) == {"f", "i", "o", "c_tilde", "c", "h"}
    assert float(values["c"][0]) == pytest.approx(7, abs=1e-3)  # 5 kept, 2 written
    assert float(values["h"][0]) == pytest.approx(7, abs=1e-3)  # read out
    assert abs(sp.N(values["i"][0] - 1 / (1 + sp.exp(-90)), 40)) < 1e-25  # evaluated in 30 digits
    # the same helper runs a cell whose equations differ: no forget gate, so x2 = -1 cannot reset
    no_forget = gf.cells.lstm(forget_gate=False, n=1, m=3, activation="identity", cell_activation="identity")
    params = {k: v for k, v in example.PARAMS.items() if not k.endswith("_f")}
    values = example.evaluate_step(no_forget, params, {"h": [0], "c": [5]}, {"x": [3, -1, 0]})
    assert float(values["c"][0]) == pytest.approx(5, abs=1e-3)


def test_evaluate_step_with_scalar_parameters(example: ModuleType) -> None:
    cell = gf.cells.leaky(n=1, m=1, activation="identity")
    values = example.evaluate_step(
        cell, {"W_h": [[0]], "W_x": [[1]], "b": [0], "alpha": 0.25}, {"h": [4]}, {"x": [8]}
    )
    assert values["h"][0] == pytest.approx(0.25 * 4 + 0.75 * 8)


def test_evaluate_step_says_what_is_missing(example: ModuleType) -> None:
    with pytest.raises(KeyError, match="b_c"):
        example.evaluate_step(
            example.build_cell(),
            {k: v for k, v in example.PARAMS.items() if k != "b_c"},
            {"h": [0], "c": [0]},
            {"x": [1, 0, 0]},
        )


def test_the_numeric_backend_runs_the_same_cell(example: ModuleType) -> None:
    memory, output = example.simulate_memory_example()
    exact_memory, exact_output = example.run_memory_example()
    assert memory == pytest.approx(exact_memory, rel=1e-12, abs=1e-15)
    assert output == pytest.approx(exact_output, rel=1e-12, abs=1e-15)


def test_script_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert "memory" in lines[0] and "output" in lines[0]
    assert len(lines) == 2 + len(MEMORY)
    assert lines[-1].startswith("gf.simulate (NumPy, float64) gives the same memory and output to ")
    rows = [line.split()[-2:] for line in lines[1:-1]]
    assert [float(c) for c, _ in rows] == pytest.approx(MEMORY, abs=1e-3)
    assert [float(h) for _, h in rows] == pytest.approx(OUTPUT, abs=1e-3)
