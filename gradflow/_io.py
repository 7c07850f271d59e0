"""Writing files atomically: a temporary file in the target folder, then a rename.

Layer-neutral, like :mod:`gradflow.errors`: the graph exports, the LaTeX and
Markdown documents and the command line all write through :func:`atomic_write`,
so that no reader ever sees a half-written file and no file is replaced
unless the caller asked for it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from gradflow.errors import GradflowError

__all__ = ["atomic_write"]


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[str], object],
    overwrite: bool = False,
    error: type[GradflowError] = GradflowError,
) -> Path:
    """Write a file via a temporary file in its folder, then move it into place.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    write : callable
        Called with the temporary file's path; it writes the whole content there.
    overwrite : bool, default False
        Replace an existing file; otherwise an existing file is an error, also
        one that appears while ``write`` runs.
    error : subclass of GradflowError
        What to raise (each layer raises its own kind).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GradflowError
        (of the class ``error``) If the file exists and ``overwrite`` is False,
        or its folder does not exist. Whatever ``write`` raises propagates,
        and the temporary file is removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a.txt", lambda tmp: pathlib.Path(tmp).write_text("hi")).read_text()
    'hi'
    >>> try:
    ...     atomic_write(folder / "a.txt", lambda tmp: None)
    ... except GradflowError as err:
    ...     print("refused:", "already exists" in str(err))
    refused: True
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise error(f"cannot write {str(target)!r}: the folder {str(folder)!r} does not exist")
    if target.exists() and not overwrite:
        raise error(f"{str(target)!r} already exists; pass overwrite=True to replace it")
    # os.open with mode 0o666 lets the umask decide the permissions, as for any new file
    # (tempfile.mkstemp would leave the file readable by its owner only).
    temporary = str(folder / f".{target.name}.{secrets.token_hex(8)}.tmp")
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(temporary)
        if overwrite:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)  # fails if the target appeared meanwhile
            except FileExistsError:
                raise error(f"{str(target)!r} already exists; pass overwrite=True to replace it") from None
            except OSError:  # no hard links on this file system
                os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target
