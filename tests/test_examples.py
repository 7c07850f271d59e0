"""Every example runs in --quick mode, every verdict holds, its LaTeX compiles and its thumbnails are current.

A change of the library that breaks a claim of the source documents fails here. The examples run
as a user runs them (``python examples/NAME.py --quick --out FOLDER``), in a subprocess each.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

spec = importlib.util.spec_from_file_location("make_figures", EXAMPLES / "make_figures.py")
assert spec is not None and spec.loader is not None
make_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_figures)

SCRIPTS = make_figures.scripts()

#: How far a regenerated thumbnail may be from the committed one (mean |difference| of RGBA in [0, 1]):
#: rounding on another CPU moves a few antialiased pixels; a changed figure moves many.
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """Each example's run: (process, output folder).

    The examples the selected tests need are started together on first use, two at a time (the
    machines CI runs on have two cores), each in its own folder.
    """
    wanted = {
        item.callspec.params["script"].stem
        for item in request.session.items
        if hasattr(item, "callspec") and "script" in item.callspec.params
    }
    folders: dict[str, Path] = {}
    futures: dict[str, concurrent.futures.Future] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    def get(script: Path):
        if not futures:
            for each in SCRIPTS:
                if each.stem in wanted or each == script:
                    folders[each.stem] = tmp_path_factory.mktemp(each.stem)
                    futures[each.stem] = pool.submit(make_figures.run, each, folders[each.stem])
        return futures[script.stem].result(), folders[script.stem]

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


def test_there_are_examples():
    assert len(SCRIPTS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_holds(script, runs):
    done, out = runs(script)
    assert done.returncode == 0, (
        f"{script.name} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    assert "does not hold" not in done.stdout
    assert re.search(r"^holds: ", done.stdout, re.MULTILINE), f"{script.name} printed no verdict"
    assert done.stderr.strip() == "", done.stderr
    assert (out / f"{script.stem}.png").exists() and (out / f"{script.stem}.tex").exists()


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_thumbnails_are_current(script, runs, tmp_path):
    from matplotlib.image import imread

    done, out = runs(script)
    assert done.returncode == 0
    for figure in sorted(out.glob("*.png")):
        committed = make_figures.FIGURES / figure.name
        assert committed.exists(), (
            f"{committed} is missing: run python examples/make_figures.py {script.stem}"
        )
        fresh = tmp_path / figure.name
        make_figures.thumbnail(figure, fresh)
        old, new = imread(committed), imread(fresh)
        assert old.shape == new.shape and float(np.abs(old - new).mean()) < TOLERANCE, (
            f"{committed} is stale: run python examples/make_figures.py {script.stem}"
        )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (CI installs it)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_latex_compiles(script, runs, tmp_path):
    done, out = runs(script)
    assert done.returncode == 0
    source = out / f"{script.stem}.tex"
    shutil.copy(source, tmp_path / source.name)
    compiled = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", source.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout[-2000:]


def test_no_thumbnail_without_an_example():
    names = {p.stem for p in SCRIPTS}
    orphans = [p.name for p in make_figures.FIGURES.glob("*.png") if p.stem.split("-")[0] not in names]
    assert not orphans, f"thumbnails of no example: {orphans}"


def test_readme_table_covers_every_claim_and_script():
    text = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| C")]
    claims = {int(c) for row in rows for c in re.findall(r"C(\d+)", row.split("|")[1])}
    assert claims >= set(range(1, 25)), f"claims without an example: {sorted(set(range(1, 25)) - claims)}"
    for script in SCRIPTS:
        assert f"]({script.name})" in text, f"{script.name} is not in examples/README.md's table"
    for link in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (EXAMPLES / link).exists(), f"examples/README.md links to a missing {link}"


def test_examples_run_without_the_repository_on_the_path(tmp_path):
    """A script runs from any folder: it finds its shared module next to it, and gradflow installed."""
    script = EXAMPLES / "pascanu_bound.py"
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0 and "--quick" in done.stdout
