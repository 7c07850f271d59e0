"""The ``derivations/`` folder: every derivation as a LaTeX document and as Markdown, in one call.

:func:`derivation_files` makes the whole folder's content in memory, in a fixed
order and with nothing that changes between runs (no dates, no hash order), so
that a test can compare it byte for byte with the committed files;
:func:`write_derivations` writes it, atomically file by file. The command line
runs it as ``gradflow derivations --out derivations --force``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from gradflow._io import atomic_write
from gradflow.cells.cell import Cell
from gradflow.errors import ExportError
from gradflow.export.classics import CLASSICS
from gradflow.export.document import derivation_to_document, derivation_to_markdown
from gradflow.symbolic.derivation import Derivation, derive

__all__ = ["derivation_files", "slug", "write_derivations"]


def slug(spec: str) -> str:
    """A file name for a cell spec: ``"skip(delay=3)"`` -> ``"skip_delay_3"``.

    Examples
    --------
    >>> slug("stack(elman, elman)"), slug("lstm1997")
    ('stack_elman_elman', 'lstm1997')
    """
    return re.sub(r"\W+", "_", spec).strip("_")


def derivation_files(cells: Mapping[str, Cell]) -> dict[str, str]:
    """File name -> content of every derivation: each cell's, then the classic arguments'.

    Parameters
    ----------
    cells : mapping of str to Cell
        The cells by their spec (``"elman"``, ``"skip(delay=3)"``); the file
        names are their :func:`slug`.

    Returns
    -------
    dict
        ``NAME.tex`` (a standalone document) and ``NAME.md`` for each cell and
        for each of :data:`~gradflow.export.classics.CLASSICS`, sorted by name.

    Raises
    ------
    ExportError
        If two cells would get the same file name.
    """
    derivations: dict[str, Derivation] = {}
    for spec, cell in cells.items():
        name = slug(spec)
        if name in derivations or name in CLASSICS:
            raise ExportError(f"cells {spec!r} and another one would both be written to {name}.tex")
        derivations[name] = derive(cell)
    derivations.update({name: make() for name, make in CLASSICS.items()})
    files = {}
    for name, derivation in derivations.items():
        files[f"{name}.tex"] = derivation_to_document(derivation)
        files[f"{name}.md"] = derivation_to_markdown(derivation)
    return dict(sorted(files.items()))


def write_derivations(
    folder: str | os.PathLike[str], cells: Mapping[str, Cell], *, overwrite: bool = False
) -> list[Path]:
    """Write :func:`derivation_files` into ``folder``, each file atomically.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder.
    cells : mapping of str to Cell
    overwrite : bool, default False
        Replace files that exist; otherwise nothing is written when any exists.

    Returns
    -------
    list of pathlib.Path
        The files written, sorted.

    Raises
    ------
    ExportError
        If the folder does not exist, or (without ``overwrite``) some of the files do.
    """
    target = Path(folder)
    if not target.is_dir():
        raise ExportError(f"cannot write derivations into {str(target)!r}: it is not an existing folder")
    files = derivation_files(cells)
    existing = sorted(name for name in files if (target / name).exists())
    if existing and not overwrite:
        shown = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
        raise ExportError(
            f"{len(existing)} file(s) already exist in {str(target)!r} ({shown}); pass overwrite=True "
            "(gradflow derivations --force) to replace them"
        )
    return [
        atomic_write(target / name, _writer(text), overwrite, ExportError) for name, text in files.items()
    ]


def _writer(text: str) -> Callable[[str], object]:
    return lambda temporary: Path(temporary).write_text(text, encoding="utf-8")
