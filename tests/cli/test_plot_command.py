"""``gradflow plot KIND CELL ...``: every kind writes its figure, atomically, and refuses bad input in one line."""

from __future__ import annotations

import argparse

import pytest

from gradflow.cli import _parser, main
from gradflow.cli.plot import KINDS, read_records
from tests.plot.layout import check_layout

SMALL = {
    "chain-norms": ["elman", "gru", "--n", "4", "--gain", "0.5", "2", "-T", "12", "-B", "2"],
    "regime-map": [
        "elman",
        "--n",
        "3",
        "4",
        "--gain",
        "0.5",
        "1",
        "2",
        "-T",
        "10",
        "-B",
        "2",
        "--workers",
        "1",
    ],
    "lyapunov": ["elman", "--n", "3", "--gain", "0.5", "1", "2", "-T", "10", "-B", "2"],
    "singular-spectrum": ["elman", "--n", "4", "-T", "8", "-B", "2"],
    "gradient-per-step": ["elman", "lstm", "--n", "4", "-T", "10", "-B", "2"],
    "gates": ["lstm", "--n", "3", "-T", "8", "-B", "1"],
}


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_every_kind_is_covered():
    assert set(SMALL) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_each_kind_writes_a_png_with_a_clean_layout(kind, tmp_path, capsys):
    target = tmp_path / f"{kind}.png"
    status, out, err = run(capsys, "plot", kind, *SMALL[kind], "-o", str(target))
    assert status == 0, err
    assert out.strip() == f"wrote {target}"
    assert target.read_bytes().startswith(b"\x89PNG")
    args = _parser().parse_args(["plot", kind, *SMALL[kind]])
    figure = KINDS[kind](args)
    check_layout(figure)
    assert figure.axes[0].get_title(loc="left") or figure._suptitle is not None


def test_the_same_command_writes_the_same_bytes(tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run(capsys, "plot", "chain-norms", *SMALL["chain-norms"], "-o", str(a))[0] == 0
    assert run(capsys, "plot", "chain-norms", *SMALL["chain-norms"], "-o", str(b))[0] == 0
    assert a.read_bytes() == b.read_bytes()


def test_refuses_to_overwrite_and_bad_paths(tmp_path, capsys):
    target = tmp_path / "chain.svg"
    assert run(capsys, "plot", "chain-norms", *SMALL["chain-norms"], "-o", str(target))[0] == 0
    before = target.read_bytes()
    status, _, err = run(capsys, "plot", "chain-norms", "lstm", "--n", "3", "-T", "5", "-o", str(target))
    assert status == 2 and "exists; pass --force" in err and err.count("\n") == 1
    assert target.read_bytes() == before
    status, _, _ = run(
        capsys, "plot", "chain-norms", "lstm", "--n", "3", "-T", "5", "-B", "2", "-o", str(target), "--force"
    )
    assert status == 0 and target.read_bytes() != before
    for bad, message in [
        (tmp_path / "x.jpg", "write .png, .svg or .pdf"),
        (tmp_path / "missing" / "x.png", "does not exist"),
        (tmp_path, "is a folder"),
    ]:
        status, _, err = run(capsys, "plot", "gates", "lstm", "-o", str(bad))
        assert status == 2 and message in err


def test_default_file_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, _ = run(capsys, "plot", "gates", "lstm", "--n", "2", "-T", "4", "-B", "1")
    assert status == 0 and (tmp_path / "gates-lstm.png").exists()


def test_a_cell_without_a_bound(tmp_path, capsys):
    target = tmp_path / "skip.png"
    status, _, err = run(
        capsys, "plot", "chain-norms", "skip(delay=2)", "--n", "3", "-T", "8", "-o", str(target)
    )
    assert status == 2 and "has no chain bound" in err and "--no-bound" in err and not target.exists()
    argv = [
        "plot",
        "chain-norms",
        "skip(delay=2)",
        "--n",
        "3",
        "-T",
        "8",
        "-B",
        "2",
        "--no-bound",
        "-o",
        str(target),
    ]
    assert run(capsys, *argv)[0] == 0 and target.exists()
    status, _, err = run(capsys, "plot", "regime-map", "skip(delay=2)", "-o", str(tmp_path / "m.png"))
    assert status == 2 and "no regime to map" in err


def test_one_value_where_one_is_drawn(tmp_path, capsys):
    status, _, err = run(capsys, "plot", "gates", "lstm", "gru", "-o", str(tmp_path / "g.png"))
    assert status == 2 and "gates takes one CELL" in err
    status, _, err = run(
        capsys, "plot", "chain-norms", "elman", "--n", "3", "4", "-o", str(tmp_path / "c.png")
    )
    assert status == 2 and "takes one state size" in err


def test_regime_map_from_the_records_of_gradflow_sweep(tmp_path, capsys):
    for suffix in (".csv", ".json"):
        records = tmp_path / f"map{suffix}"
        argv = ["sweep", "elman", "--n", "3", "--gain", "0.5", "2", "-T", "10", "-B", "2", "--workers", "1"]
        assert run(capsys, *argv, "-o", str(records))[0] == 0
        target = tmp_path / f"map{suffix}.png"
        assert (
            run(capsys, "plot", "regime-map", "elman", "--records", str(records), "-o", str(target))[0] == 0
        )
        loaded = read_records(str(records))
        assert [r.point for r in loaded] == [
            {"n": 3, "gain": 0.5, "repeat": 0},
            {"n": 3, "gain": 2.0, "repeat": 0},
        ]
        assert loaded[0].value["rate"] < 0
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    status, _, err = run(
        capsys, "plot", "regime-map", "elman", "--records", str(bad), "-o", str(tmp_path / "b.png")
    )
    assert status == 2 and "lacks n, gain" in err
    status, _, err = run(capsys, "plot", "regime-map", "elman", "--records", str(tmp_path / "no.csv"))
    assert status == 2 and "no such file" in err


def test_parser_rejects_bad_numbers(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["plot", "chain-norms", "elman", "--gain", "-1"])
    assert "must be positive" in capsys.readouterr().err
    assert isinstance(_parser().parse_args(["plot", "gates", "lstm"]), argparse.Namespace)
