r"""Parameter sweeps: one function over a grid of points, on any executor.

:func:`sweep` maps ``fn`` over the points of a grid with a
:class:`concurrent.futures.Executor` -- a local process pool by default, a
thread pool, or Dask's (``distributed.Client(...).get_executor()``) to spread
the points over a cluster. Every point gets its own seed, spawned from one
base seed (:class:`numpy.random.SeedSequence`), so a sweep gives the same
numbers on any executor, in any order of completion, on any number of
workers. The results come back in the grid's order as :class:`Record` s
that carry their provenance: the point, its seed, the worker's versions of
Python, gradflow and its numeric libraries, the host and the time taken.

Every point runs with BLAS and OpenMP on one thread (``blas_threads``), on any
executor: the workers divide the cores between them instead of each running a
thread per core, and the last bits of a result never depend on how many
threads its BLAS had.

``gradflow.sweep`` is the function (re-exported as ``gf.sweep``); the module's
other names are imported from it: ``from gradflow.sweep import Record``.

>>> records = sweep(pow, {"base": [2, 3], "exp": [2, 3]}, executor="serial", progress=False)
>>> [(r.point["base"], r.point["exp"], r.value) for r in records]
[(2, 2, 4), (2, 3, 8), (3, 2, 9), (3, 3, 27)]
"""

from __future__ import annotations

import concurrent.futures
import inspect
import itertools
import math
import os
import pickle
import platform
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from gradflow._checks import is_int
from gradflow._threads import limit_threads, openblas_threads, threads_limited
from gradflow._version import __version__
from gradflow.errors import SweepError

__all__ = [
    "MAX_POINTS",
    "Record",
    "grid_points",
    "limit_threads",
    "openblas_threads",
    "sweep",
    "threads_limited",
]

#: The most points one sweep runs (each point's record is kept in memory).
MAX_POINTS = 10_000_000


@dataclass(frozen=True)
class Record:
    """One point of a sweep and what ``fn`` returned there.

    Attributes
    ----------
    index : int
        The point's position in the grid (records come back in this order).
    point : Mapping[str, Any]
        The point's values, by name: the keyword arguments ``fn`` was called with
        (without ``seed``).
    seed : int or None
        The seed ``fn`` was given: spawned by the sweep, or the point's own when
        the grid names ``seed`` (``None`` when ``fn`` takes no seed).
    value : Any
        What ``fn`` returned (``None`` when it raised and ``errors="record"``).
    error : str or None
        ``"ExceptionType: message"`` when ``fn`` raised and ``errors="record"``.
    seconds : float
        Wall time of the call on its worker.
    provenance : Mapping[str, str]
        Versions of Python, gradflow, NumPy, SciPy and sympy on the worker, its
        host name and process id.
    """

    index: int
    point: Mapping[str, Any]
    seed: int | None
    value: Any
    error: str | None = None
    seconds: float = 0.0
    provenance: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A flat row: the point, the seed, and the value (its items when it is a mapping).

        Examples
        --------
        >>> Record(0, {"gain": 2.0}, 7, {"rate": -0.5}).as_dict()
        {'gain': 2.0, 'seed': 7, 'rate': -0.5}
        >>> Record(1, {"gain": 3.0}, None, 1.5).as_dict()
        {'gain': 3.0, 'seed': None, 'value': 1.5}
        >>> Record(2, {"gain": 3.0}, 1, {"gain": 9.0}).as_dict()  # a value's key never hides a column
        {'gain': 3.0, 'seed': 1, 'value.gain': 9.0}
        """
        row = {**self.point, "seed": self.seed}
        if isinstance(self.value, Mapping):
            for key, item in self.value.items():  # a value's key that names a column is kept apart
                row[f"value.{key}" if key in row else key] = item
        else:
            row["value"] = self.value
        if self.error is not None:
            row["error"] = self.error
        return row


def grid_points(grid: Mapping[str, Iterable[Any]] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The points of a grid, in order.

    Parameters
    ----------
    grid : mapping or sequence of mappings
        ``{name: values}`` for the Cartesian product of the values (the last
        name varies fastest), or an explicit sequence of points ``[{name: value}, ...]``.

    Raises
    ------
    SweepError
        For an empty axis, an axis that is a string or not iterable, names that
        are not identifiers, or explicit points with different names.

    Examples
    --------
    >>> grid_points({"n": [16, 64], "gain": [0.5, 2.0]})
    [{'n': 16, 'gain': 0.5}, {'n': 16, 'gain': 2.0}, {'n': 64, 'gain': 0.5}, {'n': 64, 'gain': 2.0}]
    """
    if isinstance(grid, Mapping):
        if not grid:
            raise SweepError("the grid has no axes; give {name: values}, e.g. {'gain': [0.5, 1.0]}")
        axes = {}
        for name, values in grid.items():
            _check_name(name)
            if isinstance(values, str | bytes) or not isinstance(values, Iterable):
                raise SweepError(
                    f"grid axis {name!r} must be a list of values, got {type(values).__name__} "
                    f"{values!r}; write [{values!r}] for a single value"
                )
            axes[name] = list(values)
            if not axes[name]:
                raise SweepError(f"grid axis {name!r} has no values")
        count = math.prod(len(values) for values in axes.values())
        if count > MAX_POINTS:
            sizes = " x ".join(f"{len(v)} {name}" for name, v in axes.items())
            raise SweepError(
                f"the grid has {count:,} points ({sizes}); at most {MAX_POINTS:,} run in one sweep"
            )
        return [
            dict(zip(axes, combination, strict=True)) for combination in itertools.product(*axes.values())
        ]
    if isinstance(grid, str | bytes) or not isinstance(grid, Sequence):
        raise SweepError(
            f"a grid is a mapping {{name: values}} or a list of points, got {type(grid).__name__}"
        )
    points: list[dict[str, Any]] = []
    for k, point in enumerate(grid):
        if not isinstance(point, Mapping):
            raise SweepError(f"grid point {k} must be a mapping {{name: value}}, got {point!r}")
        for name in point:
            _check_name(name)
        if points and set(point) != set(points[0]):
            raise SweepError(f"grid point {k} has names {sorted(point)} but point 0 has {sorted(points[0])}")
        points.append(dict(point))
    if not points:
        raise SweepError("the grid has no points")
    return points


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SweepError(f"grid name {name!r} must be a Python identifier (it is passed as a keyword)")


def sweep(
    fn: Callable[..., Any],
    grid: Mapping[str, Iterable[Any]] | Sequence[Mapping[str, Any]],
    executor: concurrent.futures.Executor | Literal["serial"] | None = None,
    *,
    seed: int = 0,
    workers: int | None = None,
    blas_threads: int | None = 1,
    errors: Literal["raise", "record"] = "raise",
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> list[Record]:
    r"""Call ``fn(**point)`` at every point of ``grid``; return the records in the grid's order.

    Parameters
    ----------
    fn : callable
        Called with each point's values as keyword arguments, and with
        ``seed=`` (an int) when it has a ``seed`` parameter (or ``**kwargs``)
        and the grid does not name ``seed`` itself. For a process pool or
        Dask it must be picklable: a function defined at a module's top level.
    grid : mapping or sequence of mappings
        See :func:`grid_points`.
    executor : concurrent.futures.Executor, "serial" or None
        ``None`` (default): a local :class:`~concurrent.futures.ProcessPoolExecutor`
        with ``workers`` processes, shut down at the end. Any executor you
        pass (a thread pool, ``distributed.Client(...).get_executor()``) is
        used as it is and left running. ``"serial"``: every point in this
        process, one after the other (for debugging; no pickling).
    seed : int, default 0
        The base seed; point ``k`` gets the ``k``-th seed spawned from it.
    workers : int, optional
        Processes of the default pool (default: the CPU count, at most the
        number of points).
    blas_threads : int or None, default 1
        Threads of BLAS and OpenMP that every point runs on, whatever the
        executor. A worker process limits its libraries before its first
        point and keeps them so (:func:`limit_threads`); in this process
        (``"serial"``, a thread pool) they are limited for the length of the
        sweep and given back after (:func:`threads_limited`). One by default:
        the workers share the cores instead of each running a thread per core
        (on 2 cores, 2 workers with BLAS's own threads were slower than 1),
        and since the number of threads changes the last bits of some results
        (an inverse, a symmetric eigensolver), the numbers are then the same
        on every executor. ``None`` leaves every library its own numbers, and
        the numbers match across executors only where those agree.
    errors : {"raise", "record"}
        What a point whose ``fn`` raises does: ``"raise"`` stops the sweep
        with a :class:`SweepError` that names the point (the original
        exception is its cause); ``"record"`` keeps going and stores
        ``"Type: message"`` in the record's ``error``.
    progress : bool, optional
        Draw a progress bar on ``stream`` (default: only when it is a terminal).
    stream : text file, optional
        Where the progress bar goes (default standard error).

    Returns
    -------
    list of Record

    Raises
    ------
    SweepError
        For a bad grid or argument (a grid of more than :data:`MAX_POINTS` points), an ``fn``
        that cannot be pickled for a process pool, or (with ``errors="raise"``) a point at which
        ``fn`` raised or called ``sys.exit``, or that the executor could not run (a point or a
        result that cannot be pickled, a worker that died, a shut-down executor). The message
        names the point.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> def norm(n, gain, seed):
    ...     import numpy as np
    ...     W = gain * np.random.default_rng(seed).normal(size=(n, n)) / np.sqrt(n)
    ...     return {"norm": float(np.linalg.norm(W, 2))}
    >>> with ThreadPoolExecutor(2) as pool:
    ...     records = sweep(norm, {"n": [8, 16], "gain": [0.5, 2.0]}, pool, progress=False)
    >>> [r.point for r in records][:2]
    [{'n': 8, 'gain': 0.5}, {'n': 8, 'gain': 2.0}]
    >>> again = sweep(norm, {"n": [8, 16], "gain": [0.5, 2.0]}, "serial", progress=False)
    >>> [r.value for r in records] == [r.value for r in again]   # the same seeds, any executor
    True
    """
    if not callable(fn):
        raise SweepError(f"fn must be callable, got {type(fn).__name__} {fn!r}")
    if errors not in ("raise", "record"):
        raise SweepError(f"errors must be 'raise' or 'record', got {errors!r}")
    if not is_int(seed) or seed < 0:
        raise SweepError(f"seed must be a non-negative int, got {seed!r}")
    if workers is not None and (not is_int(workers) or workers < 1):
        raise SweepError(f"workers must be a positive int, got {workers!r}")
    if workers is not None and executor is not None:
        raise SweepError("workers= sizes the default process pool; it cannot be used with an executor")
    if blas_threads is not None and (not is_int(blas_threads) or blas_threads < 1):
        raise SweepError(
            f"blas_threads must be a positive int, or None for the libraries' own defaults; got {blas_threads!r}"
        )
    if (
        executor is not None
        and executor != "serial"
        and not isinstance(executor, concurrent.futures.Executor)
    ):
        raise SweepError(
            f"executor must be a concurrent.futures.Executor, 'serial' or None, got {type(executor).__name__}"
        )
    if progress is not None and not isinstance(progress, bool):
        raise SweepError(f"progress must be True, False or None (on a terminal), got {progress!r}")
    if stream is not None and not callable(getattr(stream, "write", None)):
        raise SweepError(f"stream must be a text file (with write), got {type(stream).__name__}")
    if progress and getattr(stream if stream is not None else sys.stderr, "closed", False):
        raise SweepError("the progress bar's stream is closed; pass progress=False or an open stream")
    points = grid_points(grid)
    seeds = _seeds(int(seed), len(points))
    seeded = "seed" not in points[0] and _takes_seed(fn)
    threads = None if blas_threads is None else int(blas_threads)
    blas = None if threads is None else (threads, os.getpid())
    tasks = [(k, point, seeds[k] if seeded else None, blas) for k, point in enumerate(points)]
    stream = sys.stderr if stream is None else stream
    bar = _Progress(len(tasks), stream, _isatty(stream) if progress is None else progress)
    with threads_limited(threads):  # for the points that run in this process; given back after
        if executor == "serial":
            records = [bar.done(_call(fn, *task, errors)) for task in tasks]
        elif executor is None:
            _check_picklable(fn)
            count = min(int(workers or os.cpu_count() or 1), len(tasks))
            with concurrent.futures.ProcessPoolExecutor(max_workers=count) as pool:
                records = _run(pool, fn, tasks, errors, bar)
        else:
            if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
                _check_picklable(fn)
            records = _run(executor, fn, tasks, errors, bar)
    bar.close()
    return records


def _seeds(seed: int, count: int) -> list[int]:
    """``count`` independent seeds spawned from ``seed`` (NumPy's SeedSequence), as Python ints."""
    import numpy as np

    children = np.random.SeedSequence(seed).spawn(count)
    return [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for child in children]


def _takes_seed(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _check_picklable(fn: Callable[..., Any]) -> None:
    try:
        pickle.dumps(fn)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise SweepError(
            f"fn {getattr(fn, '__qualname__', fn)!r} cannot be sent to a process pool ({err}); define it "
            "at the top level of a module, or pass a concurrent.futures.ThreadPoolExecutor() or "
            "'serial' as the executor"
        ) from err


#: A point to run: its index, its values, its seed, and (threads, the caller's process id) or None.
Task = tuple[int, dict[str, Any], int | None, tuple[int, int] | None]


def _run(
    executor: concurrent.futures.Executor,
    fn: Callable[..., Any],
    tasks: list[Task],
    errors: str,
    bar: _Progress,
) -> list[Record]:
    records: list[Record | None] = [None] * len(tasks)
    futures: dict[concurrent.futures.Future[Record], int] = {}
    try:
        for task in tasks:
            try:
                futures[executor.submit(_call, fn, *task, errors)] = task[0]
            except Exception as err:  # a shut-down executor, a point Dask cannot serialise
                raise _executor_error(task, err) from err
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                record = future.result()
            except SweepError:
                raise
            except Exception as err:  # the point or its result could not travel; a worker died
                failure = _executor_error(tasks[index], err)
                if errors == "raise":
                    raise failure from err
                point, seed = tasks[index][1], tasks[index][2]
                record = Record(index, dict(point), seed, None, str(failure), 0.0, _provenance())
            records[index] = bar.done(record)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return [r for r in records if r is not None]


def _executor_error(task: Task, err: BaseException) -> SweepError:
    index, point = task[0], task[1]
    return SweepError(
        f"grid point {index} {point} could not run on the executor ({type(err).__name__}: {err}); "
        "a process pool or Dask sends fn, the point and its result between processes, so all three "
        "must be picklable, and a worker must not exit"
    )


def _call(
    fn: Callable[..., Any],
    index: int,
    point: dict[str, Any],
    seed: int | None,
    blas: tuple[int, int] | None,
    errors: str,
) -> Record:
    """Run one point (on a worker) and wrap what it gives."""
    if blas is not None and os.getpid() != blas[1]:  # a worker process (the caller is limited already)
        _limit_worker(blas[0])
    kwargs = dict(point) if seed is None else {**point, "seed": seed}
    start = time.perf_counter()
    try:
        value, error = fn(**kwargs), None
    except (Exception, SystemExit) as err:  # sys.exit in fn must not end the caller (or hang Dask)
        if errors == "raise":
            raise SweepError(f"fn raised at grid point {index} {point}: {type(err).__name__}: {err}") from err
        value, error = None, f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    given = seed if seed is not None else point.get("seed")  # a grid may name the seeds itself
    return Record(index, dict(point), given, value, error, seconds, _provenance())


#: The BLAS threads this process was limited to as a worker, by process id (a forked child starts
#: with its parent's dict, not with its limits).
_WORKER_THREADS: dict[int, int] = {}


def _limit_worker(threads: int) -> None:
    """Limit this worker process's BLAS and OpenMP to ``threads``, once before its first point."""
    if _WORKER_THREADS.get(os.getpid()) != threads:
        limit_threads(threads)
        _WORKER_THREADS[os.getpid()] = threads


_PROVENANCE: dict[str, str] = {}


def _provenance() -> dict[str, str]:
    if not _PROVENANCE:
        import numpy
        import scipy
        import sympy

        _PROVENANCE.update(
            python=platform.python_version(),
            gradflow=__version__,
            numpy=numpy.__version__,
            scipy=scipy.__version__,
            sympy=sympy.__version__,
            host=socket.gethostname(),
        )
    return {**_PROVENANCE, "pid": str(os.getpid())}  # a forked worker inherits the cache, not the pid


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Progress:
    """A one-line progress bar: ``sweep  12/40 [######..............]  3.1 s``."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, shown: bool) -> None:
        self.total, self.stream, self.shown = total, stream, shown
        self.count, self.start = 0, time.perf_counter()
        self._draw()

    def done(self, record: Record) -> Record:
        self.count += 1
        self._draw()
        return record

    def _draw(self) -> None:
        if not self.shown:
            return
        filled = math.floor(self.WIDTH * self.count / self.total)
        elapsed = time.perf_counter() - self.start
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\rsweep {self.count:>{len(str(self.total))}}/{self.total} [{bar}] {elapsed:6.1f} s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
