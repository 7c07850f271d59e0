"""The gradflow command: every sub-command, its files, and its errors (exit status 2, one line)."""

from __future__ import annotations

import json
import subprocess
import sys

import networkx as nx
import pytest

from gradflow.cli import main, parse_cell
from gradflow.errors import GradflowError


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_derive_prints_equations_and_jacobians(capsys):
    status, out, _ = run(capsys, "derive", "skip(delay=4)")
    assert status == 0
    assert "h^(t) = tanh(W_h h^(t-1) + W_d h^(t-4) + W_x x^(t) + b)" in out
    assert "∂h^(t)/∂h^(t-4) = diag(tanh'(W_h h^(t-1) + W_d h^(t-4) + W_x x^(t) + b)) W_d" in out
    status, out, _ = run(capsys, "derive", "elman", "--sizes", "n=3", "m=2")
    assert status == 0 and "elman" in out


@pytest.mark.parametrize("fmt", ["dot", "graphml", "json", "png"])
def test_graph_formats(tmp_path, capsys, fmt):
    path = tmp_path / f"g.{fmt}"
    status, _, _ = run(capsys, "graph", "gru", "-T", "2", "--format", fmt, "-o", str(path))
    assert status == 0 and path.stat().st_size > 0
    if fmt == "graphml":
        assert nx.read_graphml(path).number_of_nodes() == 9 + 5 * 2 + 1
    if fmt == "json":
        assert len(json.loads(path.read_text())["nodes"]) == 9 + 5 * 2 + 1
    status, _, err = run(capsys, "graph", "gru", "-T", "2", "--format", fmt, "-o", str(path))
    assert status == 2 and "exists; pass --force" in err
    assert run(capsys, "graph", "gru", "-T", "2", "--format", fmt, "-o", str(path), "--force")[0] == 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_graph_dot_to_stdout(capsys):
    status, out, _ = run(capsys, "graph", "stack(elman, elman)", "-T", "2", "--loss")
    assert status == 0 and out.startswith('digraph "stack(elman, elman)"') and '"E[2]" -> "L"' in out


def test_paths_counts_compositions(capsys):
    status, out, _ = run(capsys, "paths", "skip(delay=3)", "-T", "12", "--from", "h:0", "--to", "h:12")
    assert status == 0 and "paths ('h', 0) -> ('h', 12): 60" in out and "shortest path: 4 edges" in out


def test_cells_lists_every_builtin(capsys):
    status, out, _ = run(capsys, "cells")
    assert status == 0 and "lstm1997" in out and "bidirectional" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["derive", "nonsense"], "unknown cell 'nonsense'"),
        (["derive", "skip(delay=1)"], "delay must be an int >= 2"),
        (["derive", "elman(n=x)"], "must be literals"),
        (["derive", "elman", "--sizes", "n=0"], "positive int"),
        (["derive", "elman", "--sizes", "q=3"], "no symbolic size 'q'"),
        (["derive", "bidirectional(elman, gru)"], "bidirectional takes one cell"),
        (["graph", "elman", "-T", "0"], "T"),
        (["graph", "elman", "--format", "png"], "needs -o"),
        (["paths", "elman", "-T", "3", "--from", "h:x", "--to", "h:3"], "name:time"),
        (["paths", "elman", "-T", "3", "--from", "q:0", "--to", "h:3"], "q"),
    ],
)
def test_errors_exit_2_with_one_line(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert err.startswith("gradflow: error:") and err.count("\n") == 1 and message in err


def test_parse_cell_nests_combinators():
    cell = parse_cell("stack(bidirectional(lstm), gru(reset_after=True))")
    assert "layer2.b_Wh" in cell.params and "layer1.bwd.c" in cell.backward
    with pytest.raises(GradflowError):
        parse_cell("stack(")


def test_console_script_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "gradflow.cli", "derive", "indrnn"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "diag(relu'(u ∘ h^(t-1) + W_x x^(t) + b)) diag(u)" in result.stdout


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("latex", "h^{(t)} &= \\tanh\\left(W_{h} h^{(t-1)} + W_{x} x^{(t)} + b\\right) \\\\"),
        ("document", "\\documentclass[11pt]{article}"),
        ("markdown", "# Gradient flow through time in the elman cell"),
    ],
)
def test_derive_formats_to_stdout(capsys, fmt, expected):
    status, out, _ = run(capsys, "derive", "elman", "--format", fmt)
    assert status == 0 and expected in out


def test_derive_latex_options(capsys):
    status, out, _ = run(
        capsys, "derive", "gru", "--format", "latex", "--activation-derivative", "explicit", "--bold-vectors"
    )
    assert status == 0 and "1 - \\tanh^{2}" in out and "\\mathbf{h}^{(t-1)}" in out


def test_derive_writes_files_and_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "lstm.tex"
    assert run(capsys, "derive", "lstm", "--format", "document", "-o", str(path))[0] == 0
    before = path.read_bytes()
    status, _, err = run(capsys, "derive", "gru", "--format", "document", "-o", str(path))
    assert status == 2 and "exists; pass --force" in err and err.count("\n") == 1
    assert path.read_bytes() == before
    assert run(capsys, "derive", "gru", "--format", "markdown", "-o", str(path), "--force")[0] == 0
    assert path.read_text(encoding="utf-8").startswith("# Gradient flow through time in the gru cell")
    status, _, err = run(capsys, "derive", "elman", "--format", "pdf")
    assert status == 2 and "needs -o" in err
    assert [p.name for p in tmp_path.iterdir()] == ["lstm.tex"]


def test_derivations_command(tmp_path, capsys):
    out = tmp_path / "derivations"
    status, text, _ = run(capsys, "derivations", "--out", str(out))
    assert status == 0 and "wrote 34 files" in text
    assert (out / "seed002_hochreiter_lstm.tex").read_text(encoding="utf-8").startswith("\\documentclass")
    status, _, err = run(capsys, "derivations", "--out", str(out))
    assert status == 2 and "already exist" in err and "--force" in err
    assert run(capsys, "derivations", "--out", str(out), "--force")[0] == 0
    status, _, err = run(capsys, "derivations", "--out", str(tmp_path / "no" / "such"))
    assert status == 2 and "does not exist" in err
