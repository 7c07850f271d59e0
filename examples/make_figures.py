"""Run every example in --quick mode and regenerate the thumbnails of ``examples/figures/``.

Usage::

    python examples/make_figures.py            # every example
    python examples/make_figures.py cliff ...  # the examples whose names contain these words

Each example writes its figures (``NAME.png``, ``NAME-PART.png``) into a temporary folder; each
figure becomes a thumbnail half its size (RGB), ``examples/figures/NAME.png`` (``NAME-PART.png``), the
pictures of ``examples/README.md``. ``tests/test_examples.py`` runs the examples the same way and
fails when a thumbnail no longer matches its figure: run this script after changing an example
or what it draws.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "figures"

#: Thumbnails are this fraction of the figure's size (100 dpi figures: about 400 px wide).
SCALE = 0.5


def scripts() -> list[Path]:
    """Every example script, by name (this one and the shared module aside)."""
    return sorted(
        p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != Path(__file__).name
    )


def run(script: Path, out: Path, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run one example in --quick mode, its files into ``out``."""
    return subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def thumbnail(figure: Path, target: Path) -> None:
    """A thumbnail of ``figure`` at :data:`SCALE` of its size (Pillow, which matplotlib depends on)."""
    from PIL import Image

    with Image.open(figure) as image:
        size = (max(1, round(image.width * SCALE)), max(1, round(image.height * SCALE)))
        image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(target, format="PNG")


def main(words: list[str]) -> int:
    FIGURES.mkdir(exist_ok=True)
    chosen = [s for s in scripts() if not words or any(w in s.stem for w in words)]
    failed = []
    with tempfile.TemporaryDirectory() as folder:
        for script in chosen:
            out = Path(folder) / script.stem
            done = run(script, out)
            if done.returncode != 0:
                failed.append(script.name)
                print(f"{script.name}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
                continue
            for figure in sorted(out.glob("*.png")):
                thumbnail(figure, FIGURES / figure.name)
                print(f"{script.name}: wrote {FIGURES.relative_to(HERE.parent) / figure.name}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
