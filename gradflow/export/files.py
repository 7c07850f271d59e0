"""Derivations as files: LaTeX documents, Markdown and PDF, written atomically.

Every file is written through :func:`gradflow._io.atomic_write` (a temporary
file in the same folder, then a rename): no reader ever sees half a file, and
an existing file is replaced only when the caller asks for it. A PDF is made
by ``pdflatex`` in a temporary folder; without ``pdflatex`` the error says how
to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gradflow._io import atomic_write
from gradflow.errors import ExportError, LatexCompileError, PdflatexNotFoundError
from gradflow.export.document import derivation_to_document, derivation_to_markdown
from gradflow.symbolic.derivation import Derivation

__all__ = ["compile_pdf", "write_document"]


def _log_errors(log: str, limit: int = 24) -> str:
    """The error lines of a LaTeX log: each ``! ...`` line through the ``l.<n>`` line it points at."""
    lines = log.splitlines()
    quoted: list[str] = []
    for k, line in enumerate(lines):
        if line.startswith("!"):
            block = [line]
            for follow in lines[k + 1 : k + 8]:
                block.append(follow)
                if follow.startswith("l."):
                    break
            quoted += block
    return "\n".join(quoted[:limit]) or "\n".join(lines[-limit:])


_INSTALL = (
    "pdflatex is not installed; install a TeX engine (Debian/Ubuntu: apt-get install "
    "texlive-latex-base texlive-latex-recommended; elsewhere TeX Live or MiKTeX), or write the .tex "
    "file with write_document(...) and compile it where LaTeX is installed"
)


def compile_pdf(
    document: str | Derivation,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    timeout: float = 120.0,
    resources: Mapping[str, str | os.PathLike[str]] | None = None,
    **options: Any,
) -> Path:
    """Compile a LaTeX document (or a derivation) with ``pdflatex`` into a PDF, atomically.

    ``pdflatex`` runs twice (for the citations) in a temporary folder with
    ``-interaction=nonstopmode -halt-on-error -no-shell-escape``; only the
    PDF is kept. The PDF carries no date of its own (``SOURCE_DATE_EPOCH``),
    so the same document gives the same bytes.

    Parameters
    ----------
    document : str or Derivation
        A whole document (:func:`derivation_to_document`), or a derivation to make one of.
    path : str or os.PathLike
        The PDF to write.
    overwrite : bool, default False
    timeout : float, default 120
        Seconds for each pdflatex run.
    resources : dict of str to path, optional
        Files the document includes (figures), copied into the folder where pdflatex runs under
        the relative names the document uses (``{"figures/a.png": "/tmp/out/a.png"}``).
    **options
        Printer options, for a derivation.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    PdflatexNotFoundError
        If ``pdflatex`` is not on the PATH (the message says how to install it).
    LatexCompileError
        If pdflatex fails or times out; the message quotes the log's errors.
    ExportError
        If ``path`` exists and ``overwrite`` is False, or its folder does not exist.
    """
    source = derivation_to_document(document, **options) if isinstance(document, Derivation) else document
    target = Path(path)
    if target.exists() and not overwrite:  # before the slow part
        raise ExportError(f"{str(target)!r} already exists; pass overwrite=True to replace it")
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        raise PdflatexNotFoundError(_INSTALL)
    with tempfile.TemporaryDirectory(prefix="gradflow-tex-") as folder:
        for name, source_file in (resources or {}).items():
            copy = Path(folder) / name
            if not copy.resolve().is_relative_to(Path(folder).resolve()):
                raise ExportError(f"resource {name!r} must be a relative path inside the document's folder")
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source_file, copy)
            except OSError as err:
                raise ExportError(
                    f"cannot copy the resource {name!r} from {str(source_file)!r}: {err}"
                ) from err
        tex = Path(folder) / "document.tex"
        tex.write_text(source, encoding="utf-8")
        command = [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", tex.name]
        environment = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
        for _ in range(2):
            try:
                run = subprocess.run(
                    command,
                    cwd=folder,
                    capture_output=True,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                    env=environment,
                )
            except subprocess.TimeoutExpired as err:
                raise LatexCompileError(f"pdflatex took longer than {timeout} s on {target.name}") from err
            if run.returncode != 0:
                log_file = Path(folder) / "document.log"
                log = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
                raise LatexCompileError(
                    f"pdflatex failed on the document for {target.name}:\n{_log_errors(log)}"
                )
        pdf = Path(folder) / "document.pdf"
        return atomic_write(target, lambda temporary: shutil.copyfile(pdf, temporary), overwrite, ExportError)


_FORMATS = {".tex": "latex", ".md": "markdown", ".pdf": "pdf"}


def write_document(
    path: str | os.PathLike[str],
    derivation: Derivation,
    *,
    format: str | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write a derivation to a file, atomically: a LaTeX document, Markdown, or a PDF.

    Parameters
    ----------
    path : str or os.PathLike
    derivation : Derivation
    format : {"latex", "markdown", "pdf"}, optional
        Default: from the suffix (``.tex``, ``.md``, ``.pdf``).
    overwrite : bool, default False
        Replace an existing file; otherwise an existing file is an error and is left as it was.
    **options
        Printer options, as for :func:`derivation_to_latex`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ExportError
        For an unknown format or suffix, an existing file (without ``overwrite``),
        or a folder that does not exist.
    PdflatexNotFoundError, LatexCompileError
        For a PDF, as :func:`compile_pdf`.

    Examples
    --------
    >>> import tempfile, pathlib, gradflow as gf
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_document(folder / "elman.md", gf.derive(gf.cells.elman())).name
    'elman.md'
    """
    target = Path(path)
    kind = format or _FORMATS.get(target.suffix.lower())
    if kind not in _FORMATS.values():
        raise ExportError(
            f"cannot tell the format of {str(target)!r}: give format='latex', 'markdown' or 'pdf', "
            "or a file ending in .tex, .md or .pdf"
        )
    if kind == "pdf":
        return compile_pdf(derivation, target, overwrite=overwrite, **options)
    text = (
        derivation_to_document(derivation, **options)
        if kind == "latex"
        else derivation_to_markdown(derivation, **options)
    )
    return atomic_write(
        target, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"), overwrite, ExportError
    )
