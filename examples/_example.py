"""What every example shares: its command line, the derived formulas, the verdicts and the figures.

An example script reproduces claims of the source documents (``../shared/seeds``, listed in
``examples/README.md``) three ways:

1. the formula, derived by gradflow in the seed's notation: printed as text, and written as a
   standalone LaTeX document (``OUT/NAME.tex``) that compiles with pdflatex;
2. the numbers that confirm it, each ending in a verdict line, ``holds: ...`` or
   ``does not hold: ...``, with the measured figure;
3. the figure, drawn by :mod:`gradflow.plot` and saved as ``OUT/NAME.png`` (atomically).

Every script takes ``--out FOLDER`` (default ``examples-output``) and ``--quick`` (small sizes:
seconds). It exits with status 1 when a verdict does not hold, so that CI catches a change of the
library that breaks a claim.

This module is imported by the scripts next to it (``python examples/NAME.py`` puts this folder
on ``sys.path``).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradflow as gf
from gradflow.export import derivation_to_text, write_document
from gradflow.symbolic.derivation import Derivation, Step

__all__ = ["Example", "Step"]


class Example:
    """One example run: parses the command line, prints and writes what the example shows.

    Parameters
    ----------
    name : str
        The script's name without ``.py``: the stem of its output files.
    claims : str
        The claims it reproduces, e.g. ``"C3, C4 (seed 000)"``.
    summary : str
        One line: what it shows.
    argv : sequence of str, optional
        The command line (default ``sys.argv[1:]``).
    """

    def __init__(self, name: str, claims: str, summary: str, argv: Sequence[str] | None = None) -> None:
        parser = argparse.ArgumentParser(prog=f"{name}.py", description=f"{claims}: {summary}")
        parser.add_argument(
            "--out", default="examples-output", help="folder of the files (default examples-output)"
        )
        parser.add_argument("--quick", action="store_true", help="small sizes: runs in seconds")
        args = parser.parse_args(argv)
        self.name, self.quick = name, bool(args.quick)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.verdicts: list[bool] = []
        print(f"{name}: {claims}")
        print(textwrap.fill(summary, 100))
        print()

    def size(self, full: Any, quick: Any) -> Any:
        """``quick`` under ``--quick``, else ``full``."""
        return quick if self.quick else full

    def derivation(self, derivation: Derivation) -> None:
        """Print a derivation as text and write it as ``OUT/NAME.tex`` (a standalone amsmath document)."""
        print(derivation_to_text(derivation))
        print()
        path = write_document(self.out / f"{self.name}.tex", derivation, overwrite=True)
        print(f"wrote {path}")
        print()

    def formulas(self, title: str, steps: Sequence[Step], references: Sequence[str] = ()) -> None:
        """A derivation made of the given steps (the claim's formulas), printed and written."""
        self.derivation(Derivation(title, tuple(steps), references=tuple(references)))

    def check(self, holds: bool, statement: str) -> bool:
        """Print the verdict on one statement: ``holds: ...`` or ``does not hold: ...``."""
        holds = bool(holds)
        self.verdicts.append(holds)
        print(
            textwrap.fill(
                ("holds: " if holds else "does not hold: ") + statement, 100, subsequent_indent="  "
            )
        )
        return holds

    def figure(self, figure: Any, suffix: str = "") -> Path:
        """Save a figure as ``OUT/NAME.png`` (``OUT/NAME-SUFFIX.png``), replacing an older one."""
        path = gf.plot.save(
            figure, self.out / f"{self.name}{'-' + suffix if suffix else ''}.png", overwrite=True
        )
        print(f"wrote {path}")
        return path

    def finish(self) -> None:
        """Exit: 0 when every verdict holds, 1 otherwise (and 1 when nothing was checked)."""
        failed = self.verdicts.count(False)
        print()
        if not self.verdicts:
            print(f"{self.name}: no claim was checked")
            sys.exit(1)
        print(f"{self.name}: {len(self.verdicts) - failed} of {len(self.verdicts)} verdicts hold")
        sys.exit(1 if failed else 0)
