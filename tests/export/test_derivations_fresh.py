"""The committed derivations/ folder is what the code generates now, byte for byte."""

from pathlib import Path

from gradflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "derivations"
REGENERATE = "gradflow derivations --out derivations --force"


def test_derivations_are_fresh(tmp_path, capsys):
    assert main(["derivations", "--out", str(tmp_path / "fresh")]) == 0
    capsys.readouterr()
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "fresh").iterdir()}
    committed = {
        p.name: p.read_bytes()
        for p in FOLDER.iterdir()
        if p.suffix in (".tex", ".md") and p.name != "README.md"
    }
    missing = sorted(set(fresh) - set(committed))
    stale = sorted(name for name in fresh if name in committed and committed[name] != fresh[name])
    extra = sorted(set(committed) - set(fresh))
    assert not missing, f"derivations/ lacks {missing}; run `{REGENERATE}` and commit the files"
    assert not stale, (
        f"derivations/ is stale: {stale} differ from what the code generates; run `{REGENERATE}`"
    )
    assert not extra, f"derivations/ holds files the code no longer generates: {extra}; delete them"


def test_every_builtin_cell_and_classic_is_there():
    names = {p.stem for p in FOLDER.glob("*.tex")}
    assert {
        "elman",
        "jordan",
        "lstm1997",
        "lstm",
        "lstm_peephole",
        "gru",
        "gru_reset_after",
        "leaky",
        "skip_delay_3",
        "ctrnn",
        "indrnn",
        "minimal",
        "stack_elman_elman",
        "bidirectional_elman",
    } <= names
    assert {"seed000_pascanu_bound", "seed001_d2l_bptt", "seed002_hochreiter_lstm"} <= names
    assert names == {p.stem for p in FOLDER.glob("*.md")} - {"README"}
