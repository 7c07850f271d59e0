"""``gradflow sweep CELL``: the regime map's table and files, the same numbers on any number of workers."""

from __future__ import annotations

import csv
import json
import math

import pytest

from gradflow.cli import main
from gradflow.cli.sweep import regime_point


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_sweep_table_and_csv_match_the_theory(tmp_path, capsys):
    out = tmp_path / "map.csv"
    argv = ["sweep", "elman", "--n", "6", "--gain", "0.5", "4", "-T", "40", "--repeats", "2", "-o", str(out)]
    status, text, _ = run(capsys, *argv, "--workers", "2")
    assert status == 0
    assert "regime map of elman" in text and f"wrote {out}" in text
    table = [line for line in text.splitlines() if line.startswith("| 6 |")]
    assert len(table) == 4 and not any("| NO |" in line for line in table)  # never above the bound
    rows = rows_of(out)
    assert [(r["n"], r["gain"], r["repeat"]) for r in rows] == [
        ("6", "0.5", "0"),
        ("6", "0.5", "1"),
        ("6", "4.0", "0"),
        ("6", "4.0", "1"),
    ]
    for r in rows:
        # Pascanu: gamma ||W_h||_2 = gain for orthogonal W_h and tanh; the measured rate stays below it
        assert math.isclose(float(r["predicted_rate"]), math.log(float(r["gain"])), rel_tol=1e-9)
        assert float(r["rate"]) <= float(r["predicted_rate"]) + 1e-9
        assert r["provenance.gradflow"] and r["provenance.numpy"] and r["seed"].isdigit()
    assert rows[0]["label"] == rows[1]["label"] == "vanishing"
    assert rows[0]["seed"] != rows[1]["seed"]  # repeats differ

    # one worker gives the same numbers (seeds are spawned per point, not per worker)
    again = tmp_path / "again.csv"
    argv[-1] = str(again)
    assert run(capsys, *argv, "--workers", "1")[0] == 0
    same = ("seed", "predicted_rate", "rate", "standard_error", "label")
    assert [{k: r[k] for k in same} for r in rows_of(again)] == [{k: r[k] for k in same} for r in rows]

    # the file is not replaced without --force
    status, _, err = run(capsys, *argv, "--workers", "1")
    assert status == 2 and "exists; pass --force" in err


def test_sweep_json_with_other_sizes(tmp_path, capsys):
    out = tmp_path / "map.json"
    status, _, _ = run(
        capsys, "sweep", "jordan", "--n", "5", "--gain", "0.5", "--sizes", "k=3", "m=2", "--workers", "1",
        "-T", "30", "-o", str(out),
    )  # fmt: skip
    assert status == 0
    (record,) = json.loads(out.read_text(encoding="utf-8"))
    assert record["n"] == 5 and record["label"] == "vanishing" and record["consistent"] is True
    assert set(record) >= {"seed", "rate", "predicted_rate", "confidence", "seconds", "provenance.pid"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "elmann"], "unknown cell 'elmann'"),
        (["sweep", "elman", "--sizes", "k=3"], "--sizes: cell 'elman' has no size k to set"),
        (["sweep", "elman", "--sizes", "m3"], "size 'm3' must look like n=3"),
        (["sweep", "elman", "-o", "map.txt"], "-o map.txt: write .csv or .json"),
        (["sweep", "elman", "--seed", "-1"], "--seed must be non-negative"),
        (["sweep", "bidirectional(elman)", "--n", "4"], "cell 'bidirectional(elman)' has no regime to map"),
        (["sweep", "skip(delay=3)", "--n", "4"], "cell 'skip(delay=3)' has no regime to map"),
        (["sweep", "elman", "-T", "2"], "-T 2: a regime fits a rate over lags 1..T and needs T >= 3"),
        (["sweep", "elman", "--sizes", "m=0"], "size 'm=0' must be a positive integer"),
        (["sweep", "elman", "-o", "missing/map.csv"], "the folder missing does not exist"),
    ],
)
def test_sweep_errors_exit_2_with_one_line(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv", [["--gain", "-1"], ["--gain", "inf"], ["--n", "0"], ["-T", "x"], ["--repeats", "0"]]
)
def test_sweep_rejects_non_positive_numbers(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "elman", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "must be positive" in err or "'x' is not an integer" in err


@pytest.mark.parametrize(
    ("argv", "expected"), [([], 1), (["--blas-threads", "3"], 3), (["--blas-threads", "default"], None)]
)
def test_sweep_limits_the_workers_blas_threads_unless_told_otherwise(capsys, monkeypatch, argv, expected):
    import gradflow.cli.sweep as command

    given = {}

    def recorded(fn, grid, **kwargs):
        given.update(kwargs)
        return []

    monkeypatch.setattr(command, "sweep", recorded)
    status, _, _ = run(capsys, "sweep", "elman", "--n", "4", *argv)
    assert status == 0 and given["blas_threads"] == expected


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_sweep_rejects_bad_blas_threads(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "elman", "--blas-threads", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--blas-threads" in err and ("must be positive" in err or "is not an integer" in err)


def test_regime_point_feeds_every_input_of_the_cell():
    found = regime_point("lstm", 4, 0.5, 0, seed=3, T=30, B=1, sizes={"m": 2}, scheme="orthogonal")
    assert found["label"] == "vanishing" and found["consistent"]
    assert set(found) == {"predicted_rate", "rate", "standard_error", "label", "confidence", "consistent"}


def test_sweep_output_path_problems_are_found_before_any_point_runs(tmp_path, capsys, monkeypatch):
    import gradflow.cli.sweep as command

    def no_points(*args, **kwargs):
        raise AssertionError("the sweep ran although its output path is bad")

    monkeypatch.setattr(command, "sweep", no_points)
    folder = tmp_path / "d.csv"
    folder.mkdir()
    status, _, err = run(capsys, "sweep", "elman", "-o", str(folder), "--force")
    assert status == 2 and "is a folder" in err


def test_sweep_json_is_strict_when_a_rate_is_minus_infinity(tmp_path, capsys):
    out = tmp_path / "dead.json"
    status, _, _ = run(
        capsys, "sweep", "elman('relu')", "--n", "3", "--gain", "1e-300", "-T", "10", "--workers", "1",
        "-o", str(out),
    )  # fmt: skip
    assert status == 0
    text = out.read_text(encoding="utf-8")
    (record,) = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert record["rate"] == "-inf" and record["label"] == "vanishing"


#: The kernels compiled in this process: every kernel gradflow writes goes through Python's compile()
#: with a file name "<gradflow ...>" (numeric/lower.py: cell, chain, VJP, bound and activation kernels).
_KERNELS: list[str] = []


def _count_kernels() -> None:
    """Count gradflow's kernel compilations in this process from now on (once per process)."""
    import builtins

    if getattr(builtins.compile, "counts_gradflow_kernels", False):
        return
    original = builtins.compile

    def counting(source, filename, *args, **kwargs):
        if str(filename).startswith("<gradflow"):
            _KERNELS.append(str(filename))
        return original(source, filename, *args, **kwargs)

    counting.counts_gradflow_kernels = True
    builtins.compile = counting


def kernels_of_a_point(n: int, gain: float, seed: int) -> dict[str, int]:
    """One point of the regime map (on a worker), and how many kernels it compiled there."""
    import os

    _count_kernels()
    before = len(_KERNELS)
    regime_point("gru", n, gain, 0, seed=seed, T=12, B=2, sizes={"m": 3}, scheme="orthogonal")
    return {"pid": os.getpid(), "kernels": len(_KERNELS) - before}


def test_a_cell_is_compiled_once_per_process_not_once_per_point(monkeypatch):
    import builtins

    monkeypatch.setattr(builtins, "compile", builtins.compile)  # undone after the test
    _count_kernels()
    counts = []
    for gain in (0.5, 2.0, 0.5):
        before = len(_KERNELS)
        regime_point("gru", 9, gain, 0, seed=1, T=12, B=2, sizes={"m": 5}, scheme="orthogonal")
        counts.append(len(_KERNELS) - before)
    assert counts[0] > 0, "the counter saw no compilation: it no longer measures anything"
    assert counts[1:] == [0, 0], f"kernels compiled again at later points: {counts}"


def test_each_worker_compiles_a_cell_once_for_all_its_points():
    import gradflow as gf

    grid = {"n": [7, 8], "gain": [0.5, 1.0, 2.0, 3.0]}  # 4 points per size, 2 workers: some worker has 2
    records = gf.sweep(kernels_of_a_point, grid, workers=2, progress=False)
    seen: dict[tuple[int, int], list[int]] = {}
    for record in records:
        seen.setdefault((record.value["pid"], record.point["n"]), []).append(record.value["kernels"])
    assert any(len(counts) > 1 for counts in seen.values())
    for (pid, n), counts in seen.items():
        assert counts[0] > 0, f"worker {pid} compiled nothing for n={n}: the counter measures nothing"
        assert counts[1:] == [0] * (len(counts) - 1), f"worker {pid}, n={n}: kernels per point {counts}"
