"""The thread pools of BLAS and OpenMP in this process: read them, and limit them (a sweep's points).

NumPy and SciPy multiply matrices with BLAS (OpenBLAS, in their wheels), which
runs one thread per core in every process. A pool of W worker processes on C
cores then runs W x C threads that take the cores from each other: on 2 cores
a sweep took longer on 2 workers than on 1. And the number of threads changes
the last bits of some results (an inverse, a symmetric eigensolver), so a sweep
whose points ran on different numbers of threads would not give the same
numbers on every executor. :func:`gradflow.sweep.sweep` therefore runs every
point on ``blas_threads`` threads (one by default):

* in a worker process, :func:`limit_threads` before its first point, kept for
  the worker's life;
* in the caller's own process (``"serial"``, a thread pool),
  :func:`threads_limited` for the length of the sweep, then the caller's
  numbers back.

What they reach:

* every OpenBLAS already loaded -- a worker forked from a process that
  imported NumPy has it loaded before any environment could act -- through its
  own ``openblas_set_num_threads`` (found in ``/proc/self/maps``, on Linux);
* with ``threadpoolctl`` installed (optional), every library it knows
  (OpenBLAS, MKL, BLIS and the OpenMP runtimes), on any platform;
* PyTorch's own threads, when ``torch`` is imported;
* in a worker, also the environment (``OMP_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ...), for libraries loaded
  later and for the processes the worker starts.

Layer-neutral, like :mod:`gradflow._io`: it imports nothing of gradflow but its
errors and argument checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from typing import Any

from gradflow._checks import is_int
from gradflow.errors import SweepError

__all__ = ["THREAD_VARIABLES", "limit_threads", "openblas_threads", "threads_limited"]

#: The environment variables that size BLAS and OpenMP thread pools when a library loads.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

#: The names OpenBLAS builds give their thread functions: plain, NumPy's and SciPy's wheels
#: (scipy-openblas, with a 64_ suffix for 64-bit integers), older 64-bit builds.
_PREFIXES, _SUFFIXES = ("", "scipy_"), ("", "64_", "_64")


class _OpenBLAS:
    """One OpenBLAS loaded in this process, with its thread functions."""

    def __init__(self, name: str, library: ctypes.CDLL) -> None:
        self.name = name
        self._get, self._set = _function(library, "get_num_threads"), _function(library, "set_num_threads")
        if self._get is not None:
            self._get.restype = ctypes.c_int
        if self._set is not None:
            self._set.argtypes = [ctypes.c_int]

    @property
    def usable(self) -> bool:
        return self._get is not None and self._set is not None

    def threads(self) -> int:
        return int(self._get())

    def set_threads(self, count: int) -> None:
        self._set(count)


def _function(library: ctypes.CDLL, name: str) -> Any:
    for prefix in _PREFIXES:
        for suffix in _SUFFIXES:
            function = getattr(library, f"{prefix}openblas_{name}{suffix}", None)
            if function is not None:
                return function
    return None


def _openblas_libraries() -> list[_OpenBLAS]:
    """Every OpenBLAS loaded in this process (Linux: read from ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            lines = maps.read().splitlines()
    except OSError:  # not Linux: threadpoolctl, where installed, does this work
        return []
    found, seen = [], set()
    for line in lines:
        fields = line.split(maxsplit=5)
        path = fields[5].strip() if len(fields) == 6 else ""
        if "openblas" not in os.path.basename(path).lower() or path in seen or not os.path.isfile(path):
            continue
        seen.add(path)
        try:  # RTLD_NOLOAD: the copy already loaded, never a second one
            library = _OpenBLAS(os.path.basename(path), ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY))
        except OSError:
            continue
        if library.usable:
            found.append(library)
    return found


def openblas_threads() -> dict[str, int]:
    """The number of threads of every OpenBLAS loaded in this process, by its file name.

    Read from each library itself (``openblas_get_num_threads``); empty where none is loaded
    or the platform cannot list them (not Linux).

    Examples
    --------
    >>> import numpy
    >>> all(count >= 1 for count in openblas_threads().values())
    True
    """
    return {library.name: library.threads() for library in _openblas_libraries()}


def _check(count: Any) -> int:
    if not is_int(count) or count < 1:
        raise SweepError(f"a number of BLAS threads must be an int >= 1, got {count!r}")
    return int(count)


def limit_threads(count: int) -> dict[str, int]:
    """Limit BLAS and OpenMP in this process (and the processes it starts) to ``count`` threads, for good.

    What a sweep's worker process calls before its first point (see the module's
    description); pass it to a pool of your own as ``ProcessPoolExecutor(2,
    initializer=limit_threads, initargs=(1,))``. A library it cannot reach keeps its threads
    (no error). For the caller's own process, :func:`threads_limited` limits and restores.

    Parameters
    ----------
    count : int
        Threads per library, >= 1.

    Returns
    -------
    dict of str to int
        :func:`openblas_threads` afterwards: every OpenBLAS loaded, and its threads now.

    Raises
    ------
    SweepError
        When ``count`` is not an int >= 1.

    Examples
    --------
    >>> from concurrent.futures import ProcessPoolExecutor
    >>> with ProcessPoolExecutor(1, initializer=limit_threads, initargs=(1,)) as pool:
    ...     counts = pool.submit(openblas_threads).result()
    >>> all(threads == 1 for threads in counts.values())
    True
    """
    count = _check(count)
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(count)
    for library in _openblas_libraries():
        library.set_threads(count)
    with contextlib.suppress(Exception):  # optional; any failure leaves the libraries as they are
        import threadpoolctl

        threadpoolctl.threadpool_limits(limits=count)
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.set_num_threads(count)
    return openblas_threads()


@contextlib.contextmanager
def threads_limited(count: int | None) -> Iterator[None]:
    """Run the block with BLAS and OpenMP in this process on ``count`` threads; restore them after.

    The environment is left alone. ``None`` changes nothing.

    Raises
    ------
    SweepError
        When ``count`` is neither None nor an int >= 1.

    Examples
    --------
    >>> import numpy
    >>> before = openblas_threads()
    >>> with threads_limited(1):
    ...     inside = openblas_threads()
    >>> all(threads == 1 for threads in inside.values()) and openblas_threads() == before
    True
    """
    if count is None:
        yield
        return
    count = _check(count)
    libraries = _openblas_libraries()
    before = [(library, library.threads()) for library in libraries]
    limits = None
    with contextlib.suppress(Exception):
        import threadpoolctl

        limits = threadpoolctl.threadpool_limits(limits=count)
    torch = sys.modules.get("torch")
    torch_threads = None
    if torch is not None:
        with contextlib.suppress(Exception):
            torch_threads = torch.get_num_threads()
            torch.set_num_threads(count)
    for library in libraries:
        library.set_threads(count)
    try:
        yield
    finally:
        for library, threads in before:
            library.set_threads(threads)
        if limits is not None:
            with contextlib.suppress(Exception):
                limits.restore_original_limits()
        if torch is not None and torch_threads is not None:
            with contextlib.suppress(Exception):
                torch.set_num_threads(torch_threads)
