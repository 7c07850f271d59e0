"""What a report folder needs: atomic creation, a progress bar, Markdown tables, the PDF.

A report is written into a staging folder beside its target and moved into place at the end, so
that a failed or interrupted run leaves no half-written folder (and an existing one untouched
unless ``force``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from gradflow.errors import GradflowError

__all__ = ["Progress", "markdown_table", "staged_folder"]


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str], force: bool, error: type[GradflowError]) -> Iterator[Path]:
    """A fresh staging folder that becomes ``out`` when the block ends without an error.

    Raises
    ------
    GradflowError
        (of class ``error``) When ``out`` exists and ``force`` is False, is a file, or its
        folder cannot be created or written (the message names the path and the reason).
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise error(f"{target} is a file; give a folder to write the report into")
    if target.exists() and not force:
        raise error(f"{target} exists; pass --force to replace it, or --out to choose another folder")
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    except OSError as err:
        raise error(f"cannot write the folder {target}: {err.strerror or err}") from err
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as err:
        raise error(f"cannot write the folder {target}: {err.strerror or err}") from err
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


class Progress:
    """A one-line progress bar on a terminal (nothing when the stream is not one, or ``shown`` is False)."""

    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, shown: bool | None = None
    ) -> None:
        self.total, self.done, self.label = max(total, 1), 0, label
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.shown = bool(isatty and isatty()) if shown is None else shown

    def step(self, what: str) -> None:
        """Mark one more task as started: ``what`` is shown beside the bar."""
        self.done = min(self.done + 1, self.total)
        if not self.shown:
            return
        width = 24
        filled = round(width * self.done / self.total)
        line = f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {what}"
        self.stream.write(line[:100].ljust(100))
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    r"""A GitHub Markdown table; ``|`` in a cell is escaped.

    Examples
    --------
    >>> print(markdown_table(["a", "b"], [[1, "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\|y |
    """

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)
