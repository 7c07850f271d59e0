"""``gradflow check CELL`` and user cells on the command line (FILE.py:NAME, package.module:NAME)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from gradflow.cli import main, parse_cell

USER_CELLS = textwrap.dedent(
    """
    import gradflow as gf

    gated = gf.Cell(
        "my_gated",
        states={"h": "n"},
        inputs={"x": "m"},
        params={"W_g": ("n", "n"), "U_g": ("n", "m"), "W": ("n", "n"), "U": ("n", "m")},
        intermediates={"g": "sigmoid(W_g @ h + U_g @ x)"},
        updates={"h": "g * h + (1 - g) * tanh(W @ h + U @ x)"},
    )


    def make():
        return gated


    number = 3
    """
)


@pytest.fixture
def cells_file(tmp_path):
    path = tmp_path / "mycells.py"
    path.write_text(USER_CELLS, encoding="utf-8")
    return path


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_a_user_cell_from_a_file_or_a_function_in_it(cells_file):
    assert parse_cell(f"{cells_file}:gated").name == "my_gated"
    assert parse_cell(f"{cells_file}:make").name == "my_gated"
    assert parse_cell("gradflow.cells:gru").name == "gru"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("number", "number is a int, not a gradflow Cell"),
        ("nope", "has no 'nope'; its cells: gated"),
    ],
)
def test_bad_user_cells_name_the_problem(cells_file, capsys, name, message):
    status, _, err = run(capsys, "derive", f"{cells_file}:{name}")
    assert status == 2 and message in err


def test_missing_files_and_modules(capsys, tmp_path):
    status, _, err = run(capsys, "derive", f"{tmp_path}/none.py:x")
    assert status == 2 and "no file" in err
    status, _, err = run(capsys, "derive", "no_such_module_xyz:cell")
    assert status == 2 and "cannot import no_such_module_xyz" in err
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    status, _, err = run(capsys, "derive", f"{broken}:cell")
    assert status == 2 and "raised RuntimeError: boom" in err


def test_check_a_user_cell_passes_and_prints_the_table(cells_file, capsys):
    status, out, _ = run(capsys, "check", f"{cells_file}:gated", "-T", "3")
    assert status == 0
    assert "| gradients vs central differences | pass |" in out
    assert out.strip().endswith("all checks passed")


def test_check_exits_1_when_a_referee_disagrees(capsys, monkeypatch):
    module = sys.modules["gradflow.numeric.bptt"]
    original = module.bptt

    def wrong(*args, **kwargs):
        grads = original(*args, **kwargs)
        grads._params = {k: -v for k, v in grads._params.items()}
        return grads

    monkeypatch.setattr(module, "bptt", wrong)
    status, out, _ = run(capsys, "check", "elman", "-T", "2")
    assert status == 1
    assert "| gradients vs central differences | FAIL |" in out
    assert "FAILED: gradients vs central differences" in out


def test_check_reports_checks_that_do_not_apply(capsys):
    status, out, _ = run(capsys, "check", "skip(delay=2)", "-T", "3", "--sizes", "n=2", "m=1")
    assert status == 0
    assert "| jacobian_chain vs central differences | n/a |" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "elman", "--sizes", "k=2"], "--sizes: cell 'elman' has no symbolic size k"),
        (["check", "elman", "-T", "0"], "-T and -B must be positive"),
    ],
)
def test_check_usage_errors(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2 and message in err


def test_a_file_that_exits_is_an_error_not_a_silent_success(tmp_path, capsys):
    exiting = tmp_path / "exits.py"
    exiting.write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    status, out, err = run(capsys, "check", f"{exiting}:cell")
    assert status == 2 and "raised SystemExit: 0" in err and out == ""


def test_a_user_file_may_import_its_siblings(tmp_path):
    (tmp_path / "helper_defs.py").write_text("UPDATE = 'tanh(W @ h + U @ x)'\n", encoding="utf-8")
    (tmp_path / "uses_helper.py").write_text(
        "import gradflow as gf\nfrom helper_defs import UPDATE\n"
        "cell = gf.Cell('sib', states={'h': 'n'}, inputs={'x': 'm'}, "
        "params={'W': ('n', 'n'), 'U': ('n', 'm')}, updates={'h': UPDATE})\n",
        encoding="utf-8",
    )
    assert parse_cell(f"{tmp_path / 'uses_helper.py'} : cell").name == "sib"
    assert str(tmp_path) not in sys.path
