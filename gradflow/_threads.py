"""The thread pools of BLAS and OpenMP in this process: read them, and limit them (a sweep's workers).

NumPy and SciPy multiply matrices with BLAS (OpenBLAS, in their wheels), which
runs one thread per core in every process. A pool of W worker processes on C
cores then runs W x C threads that take the cores from each other: on 2 cores
a sweep took longer on 2 workers than on 1. :func:`limit_threads` caps the
pools of the process that calls it -- the default process pool of
:func:`gradflow.sweep.sweep` calls it in each worker as it starts:

* the environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``MKL_NUM_THREADS``, ...), for libraries loaded later in this process and for
  the processes it starts;
* every OpenBLAS already loaded -- a worker forked from a process that
  imported NumPy has it loaded before any environment could act -- through its
  own ``openblas_set_num_threads`` (found in ``/proc/self/maps``, on Linux);
* with ``threadpoolctl`` installed (optional), every library it knows
  (OpenBLAS, MKL, BLIS and the OpenMP runtimes), on any platform;
* PyTorch's own threads, when ``torch`` is imported.

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

__all__ = ["THREAD_VARIABLES", "limit_threads", "openblas_threads"]

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


def _openblas_libraries() -> Iterator[tuple[str, ctypes.CDLL]]:
    """Every OpenBLAS loaded in this process, by file name (Linux: read from ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            lines = maps.read().splitlines()
    except OSError:  # not Linux: threadpoolctl, where installed, does this work
        return
    seen = set()
    for line in lines:
        fields = line.split(maxsplit=5)
        path = fields[5].strip() if len(fields) == 6 else ""
        if "openblas" not in os.path.basename(path).lower() or path in seen or not os.path.isfile(path):
            continue
        seen.add(path)
        try:  # RTLD_NOLOAD: the copy already loaded, never a second one
            yield os.path.basename(path), ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:
            continue


def _function(library: ctypes.CDLL, name: str) -> Any:
    for prefix in _PREFIXES:
        for suffix in _SUFFIXES:
            function = getattr(library, f"{prefix}openblas_{name}{suffix}", None)
            if function is not None:
                return function
    return None


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
    counts = {}
    for name, library in _openblas_libraries():
        get = _function(library, "get_num_threads")
        if get is not None:
            get.restype = ctypes.c_int
            counts[name] = int(get())
    return counts


def limit_threads(count: int) -> dict[str, int]:
    """Limit BLAS and OpenMP in this process (and the processes it starts) to ``count`` threads.

    Used as the initializer of the default process pool of :func:`gradflow.sweep.sweep`; pass it
    to your own pool the same way: ``ProcessPoolExecutor(2, initializer=limit_threads,
    initargs=(1,))``. A library it cannot reach keeps its threads (no error).

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
    if not is_int(count) or count < 1:
        raise SweepError(f"a number of BLAS threads must be an int >= 1, got {count!r}")
    count = int(count)
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(count)
    for _, library in _openblas_libraries():
        set_threads = _function(library, "set_num_threads")
        if set_threads is not None:
            set_threads.argtypes = [ctypes.c_int]
            set_threads(count)
    with contextlib.suppress(Exception):  # optional; any failure leaves the libraries as they are
        import threadpoolctl

        threadpoolctl.threadpool_limits(limits=count)
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.set_num_threads(count)
    return openblas_threads()
