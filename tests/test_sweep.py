"""gf.sweep: grids, seeds, executors (serial, threads, processes, Dask), errors, provenance, progress."""

from __future__ import annotations

import io
import os
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gradflow as gf
from gradflow.errors import GradflowError, SweepError
from gradflow.sweep import Record, grid_points, limit_threads, openblas_threads, threads_limited


def draw(n: int, gain: float, seed: int) -> dict[str, float]:
    """A seeded random number per point (module level: picklable for the process pool)."""
    W = gain * np.random.default_rng(seed).normal(size=(n, n)) / np.sqrt(n)
    return {"norm": float(np.linalg.norm(W, 2)), "pid": os.getpid()}


def unseeded(a: int, b: int) -> int:
    return a * 10 + b


def fails_at_three(a: int) -> int:
    if a == 3:
        raise ZeroDivisionError(f"no inverse of {a}")
    return a


GRID = {"n": [4, 8], "gain": [0.5, 1.0, 2.0]}


def test_grid_points_product_in_order_last_axis_fastest() -> None:
    points = grid_points({"a": [1, 2], "b": "xy" and ["x", "y"], "c": (True,)})
    assert points == [
        {"a": 1, "b": "x", "c": True},
        {"a": 1, "b": "y", "c": True},
        {"a": 2, "b": "x", "c": True},
        {"a": 2, "b": "y", "c": True},
    ]
    assert grid_points(({"a": 1}, {"a": 5})) == [{"a": 1}, {"a": 5}]
    assert grid_points({"a": range(3)}) == [{"a": 0}, {"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"a": []}, "grid axis 'a' has no values"),
        ({"a": "abc"}, "grid axis 'a' must be a list of values, got str 'abc'"),
        ({"a": 3}, "write [3] for a single value"),
        ({"not a name": [1]}, "grid name 'not a name' must be a Python identifier"),
        ({1: [1]}, "grid name 1 must be a Python identifier"),
        ([{"a": 1}, {"b": 2}], "grid point 1 has names ['b'] but point 0 has ['a']"),
        ([{"a": 1}, 5], "grid point 1 must be a mapping"),
        ([], "the grid has no points"),
        ("a=1", "a grid is a mapping {name: values} or a list of points, got str"),
    ],
)
def test_bad_grids_name_what_is_wrong(grid: object, message: str) -> None:
    with pytest.raises(SweepError) as caught:
        grid_points(grid)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert isinstance(caught.value, GradflowError) and isinstance(caught.value, ValueError)


def test_serial_sweep_returns_records_in_grid_order_with_seeds_and_provenance() -> None:
    records = gf.sweep(draw, GRID, "serial", progress=False)
    assert [r.index for r in records] == list(range(6))
    assert [r.point for r in records] == grid_points(GRID)
    seeds = [r.seed for r in records]
    assert len(set(seeds)) == 6 and all(isinstance(s, int) and s >= 0 for s in seeds)
    for r in records:  # each value is exactly what fn gives for the recorded seed
        expected = draw(r.point["n"], r.point["gain"], r.seed)
        assert r.value["norm"] == expected["norm"]
        assert r.error is None and r.seconds >= 0
        assert r.provenance["numpy"] == np.__version__
        assert r.provenance["gradflow"] == gf.__version__
        assert r.provenance["pid"] == str(os.getpid())
    assert records[0].as_dict().keys() == {"n", "gain", "seed", "norm", "pid"}


def test_seeds_depend_only_on_the_base_seed_and_the_position() -> None:
    first = [r.seed for r in gf.sweep(draw, GRID, "serial", progress=False)]
    again = [r.seed for r in gf.sweep(draw, GRID, "serial", progress=False)]
    other = [r.seed for r in gf.sweep(draw, GRID, "serial", seed=1, progress=False)]
    assert first == again
    assert not set(first) & set(other)
    longer = [r.seed for r in gf.sweep(draw, {**GRID, "n": [4, 8, 16]}, "serial", progress=False)]
    assert longer[:6] == first  # adding points at the end keeps the earlier points' seeds


def test_thread_pool_and_process_pool_give_the_serial_numbers() -> None:
    serial = gf.sweep(draw, GRID, "serial", progress=False)
    with ThreadPoolExecutor(3) as pool:
        threaded = gf.sweep(draw, GRID, pool, progress=False)
    processes = gf.sweep(draw, GRID, workers=2, progress=False)
    for other in (threaded, processes):
        assert [r.point for r in other] == [r.point for r in serial]
        assert [r.seed for r in other] == [r.seed for r in serial]
        assert [r.value["norm"] for r in other] == [r.value["norm"] for r in serial]
    assert {r.value["pid"] for r in processes} - {os.getpid()}, "the default pool runs in other processes"
    assert all(r.provenance["pid"] == str(r.value["pid"]) for r in processes)


def test_a_function_without_seed_gets_none_and_a_grid_may_name_its_seeds() -> None:
    records = gf.sweep(unseeded, {"a": [1, 2], "b": [3]}, "serial", progress=False)
    assert [(r.value, r.seed) for r in records] == [(13, None), (23, None)]
    named = gf.sweep(draw, {"n": [4], "gain": [1.0], "seed": [5, 6]}, "serial", progress=False)
    assert [r.seed for r in named] == [5, 6]
    assert named[1].value["norm"] == draw(4, 1.0, 6)["norm"]
    assert named[1].as_dict()["seed"] == 6

    def keywords(**kwargs: object) -> object:
        return kwargs

    given = gf.sweep(keywords, {"a": [1]}, "serial", progress=False)[0]
    assert given.value == {"a": 1, "seed": given.seed}


@pytest.mark.parametrize("executor", ["serial", "threads", None])
def test_a_failing_point_stops_the_sweep_and_names_the_point(executor: str | None) -> None:
    with pytest.raises(
        SweepError, match=r"fn raised at grid point 2 \{'a': 3\}: ZeroDivisionError: no inverse"
    ):
        if executor == "threads":
            with ThreadPoolExecutor(2) as pool:
                gf.sweep(fails_at_three, {"a": [1, 2, 3, 4]}, pool, progress=False)
        else:
            gf.sweep(fails_at_three, {"a": [1, 2, 3, 4]}, executor, workers=None, progress=False)


def test_recorded_errors_keep_the_other_points() -> None:
    records = gf.sweep(fails_at_three, {"a": [1, 2, 3, 4]}, "serial", errors="record", progress=False)
    assert [r.value for r in records] == [1, 2, None, 4]
    assert records[2].error == "ZeroDivisionError: no inverse of 3"
    assert records[2].as_dict() == {"a": 3, "seed": None, "value": None, "error": records[2].error}


def test_a_lambda_cannot_go_to_a_process_pool_and_the_error_says_what_to_do() -> None:
    with pytest.raises(SweepError, match="define it at the top level of a module, or pass a"):
        gf.sweep(lambda a: a, {"a": [1]}, progress=False)
    assert gf.sweep(lambda a: a + 1, {"a": [1]}, "serial", progress=False)[0].value == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fn": 3}, "fn must be callable, got int 3"),
        ({"errors": "ignore"}, "errors must be 'raise' or 'record', got 'ignore'"),
        ({"seed": -1}, "seed must be a non-negative int, got -1"),
        ({"seed": 1.5}, "seed must be a non-negative int, got 1.5"),
        ({"seed": True}, "seed must be a non-negative int, got True"),
        ({"workers": 0}, "workers must be a positive int, got 0"),
        ({"workers": True}, "workers must be a positive int, got True"),
        ({"workers": 2, "executor": "serial"}, "workers= sizes the default process pool"),
        ({"executor": "dask"}, "executor must be a concurrent.futures.Executor, 'serial' or None, got str"),
    ],
)
def test_bad_arguments_name_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"fn": unseeded, "grid": {"a": [1], "b": [2]}, "progress": False}
    arguments.update(kwargs)
    with pytest.raises(SweepError) as caught:
        gf.sweep(**arguments)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_numpy_integers_count_as_ints_for_the_seed_and_the_workers() -> None:
    plain = gf.sweep(draw, GRID, "serial", seed=3, progress=False)
    numpy = gf.sweep(draw, GRID, "serial", seed=np.int64(3), progress=False)
    assert [r.seed for r in numpy] == [r.seed for r in plain]
    assert all(type(r.seed) is int for r in numpy)
    pooled = gf.sweep(unseeded, {"a": [1, 2], "b": [3]}, workers=np.int64(1), progress=False)
    assert [r.value for r in pooled] == [13, 23]


def test_progress_bar_is_drawn_on_request_and_not_on_a_pipe() -> None:
    stream = io.StringIO()
    gf.sweep(unseeded, {"a": [1, 2, 3], "b": [0]}, "serial", progress=True, stream=stream)
    text = stream.getvalue()
    assert "sweep 0/3 [" in text and "sweep 3/3 [" + "#" * 30 + "]" in text and text.endswith("\n")
    quiet = io.StringIO()
    gf.sweep(unseeded, {"a": [1], "b": [0]}, "serial", stream=quiet)  # a StringIO is not a terminal
    assert quiet.getvalue() == ""


def test_records_pickle_for_executors_that_send_them_back() -> None:
    record = gf.sweep(draw, {"n": [4], "gain": [1.0]}, "serial", progress=False)[0]
    assert pickle.loads(pickle.dumps(record)) == record
    assert isinstance(record, Record)


def test_dask_executor_gives_the_serial_numbers() -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    serial = gf.sweep(draw, GRID, "serial", progress=False)
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        found = gf.sweep(draw, GRID, client.get_executor(), progress=False)
    assert [r.seed for r in found] == [r.seed for r in serial]
    assert [r.value["norm"] for r in found] == [r.value["norm"] for r in serial]


def exits(a: int) -> int:
    raise SystemExit(3)


def test_sys_exit_in_fn_is_an_error_of_the_point_not_the_end_of_the_caller():
    with pytest.raises(SweepError, match=r"fn raised at grid point 0 \{'a': 1\}: SystemExit: 3"):
        gf.sweep(exits, {"a": [1]}, "serial", progress=False)
    (record,) = gf.sweep(exits, {"a": [1]}, workers=1, errors="record", progress=False)
    assert record.error == "SystemExit: 3"


def unpicklable_result(a: int) -> object:
    import threading

    return threading.Lock()


def test_what_cannot_travel_between_processes_names_the_point():
    with pytest.raises(SweepError, match=r"grid point 0 \{'a': 1\} could not run on the executor"):
        gf.sweep(unpicklable_result, {"a": [1]}, workers=1, progress=False)
    (record,) = gf.sweep(unpicklable_result, {"a": [1]}, workers=1, errors="record", progress=False)
    assert record.value is None and "must be picklable" in record.error
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1) as pool, pytest.raises(SweepError, match="cannot be sent to a process pool"):
        gf.sweep(lambda a: a, {"a": [1]}, pool, progress=False)
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    with pytest.raises(SweepError, match=r"could not run on the executor \(RuntimeError"):
        gf.sweep(unseeded, {"a": [1], "b": [2]}, pool, progress=False)


def test_grids_without_axes_or_too_many_points_and_bad_progress_arguments():
    with pytest.raises(SweepError, match="the grid has no axes"):
        gf.sweep(unseeded, {}, "serial")
    with pytest.raises(SweepError, match=r"the grid has 1,000,000,000,000 points \(1000000 a x 1000000 b\)"):
        gf.sweep(unseeded, {"a": range(10**6), "b": range(10**6)}, "serial")
    with pytest.raises(SweepError, match="progress must be True, False or None"):
        gf.sweep(unseeded, {"a": [1], "b": [2]}, "serial", progress="yes")  # type: ignore[arg-type]
    with pytest.raises(SweepError, match="stream must be a text file"):
        gf.sweep(unseeded, {"a": [1], "b": [2]}, "serial", stream="x")  # type: ignore[arg-type]
    closed = io.StringIO()
    closed.close()
    with pytest.raises(SweepError, match="stream is closed"):
        gf.sweep(unseeded, {"a": [1], "b": [2]}, "serial", progress=True, stream=closed)


def test_a_value_never_hides_the_point_or_seed_columns():
    row = Record(0, {"n": 4}, 7, {"n": 99, "seed": -1, "rate": 0.5}).as_dict()
    assert row == {"n": 4, "seed": 7, "value.n": 99, "value.seed": -1, "rate": 0.5}


def blas_of_the_worker(a: int) -> dict[str, object]:
    """What BLAS runs on where this point runs: each OpenBLAS's threads (read from the library), the
    environment that sizes libraries loaded later, and a product computed on them."""
    W = np.random.default_rng(a).normal(size=(300, 300))
    return {
        "threads": openblas_threads(),
        "environment": os.environ.get("OPENBLAS_NUM_THREADS"),
        "norm": float(np.linalg.norm(W @ W)),
    }


needs_openblas = pytest.mark.skipif(
    not openblas_threads(), reason="no OpenBLAS loaded that this platform can list (Linux, NumPy's wheels)"
)


@needs_openblas
def test_default_pool_workers_run_blas_on_one_thread_each_unless_told_otherwise() -> None:
    here = openblas_threads()
    grid = {"a": [0, 1]}
    one = gf.sweep(blas_of_the_worker, grid, workers=2, progress=False)
    for record in one:
        assert set(record.value["threads"]) == set(here)  # every library loaded here, limited there
        assert set(record.value["threads"].values()) == {1}
        assert record.value["environment"] == "1"
    two = gf.sweep(blas_of_the_worker, grid, workers=2, blas_threads=2, progress=False)
    assert all(set(r.value["threads"].values()) == {2} for r in two)  # not merely the machine's default
    own = gf.sweep(blas_of_the_worker, grid, workers=2, blas_threads=None, progress=False)
    assert all(r.value["threads"] == here for r in own)  # the libraries' own numbers, as in this process
    assert all(r.value["environment"] == os.environ.get("OPENBLAS_NUM_THREADS") for r in own)
    serial = gf.sweep(blas_of_the_worker, grid, "serial", progress=False)
    assert all(set(r.value["threads"].values()) == {1} for r in serial)  # here too, during the sweep
    assert openblas_threads() == here, "the caller's own threads are given back after the sweep"
    for limited in (one, two, own):
        assert [r.value["norm"] for r in limited] == [r.value["norm"] for r in serial]


def inverse_sum(n: int, seed: int) -> float:
    """A result whose last bits depend on BLAS's threads (OpenBLAS's blocked inverse, n >= 128)."""
    A = np.random.default_rng(seed).normal(size=(n, n))
    return float(np.linalg.inv(A).sum())


@needs_openblas
def test_every_executor_gives_the_same_bits_even_where_blas_threads_would_change_them() -> None:
    grid = {"n": [160], "seed": [1, 2, 3]}
    with threads_limited(1):
        one = [inverse_sum(160, seed) for seed in grid["seed"]]
    with threads_limited(2):
        two = [inverse_sum(160, seed) for seed in grid["seed"]]
    if one == two:
        pytest.skip("this machine's BLAS gives the same bits on 1 and 2 threads: nothing to tell apart")
    serial = [r.value for r in gf.sweep(inverse_sum, grid, "serial", progress=False)]
    with ThreadPoolExecutor(2) as pool:
        threaded = [r.value for r in gf.sweep(inverse_sum, grid, pool, progress=False)]
    processes = [r.value for r in gf.sweep(inverse_sum, grid, workers=2, progress=False)]
    assert serial == threaded == processes == one
    with ThreadPoolExecutor(1) as pool:  # told otherwise: two threads everywhere, two threads' bits
        assert [r.value for r in gf.sweep(inverse_sum, grid, pool, blas_threads=2, progress=False)] == two
    assert [r.value for r in gf.sweep(inverse_sum, grid, workers=2, blas_threads=2, progress=False)] == two


@needs_openblas
def test_limit_threads_in_a_pool_of_your_own() -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, initializer=limit_threads, initargs=(1,)) as pool:
        counts = pool.submit(openblas_threads).result()
    assert counts and set(counts.values()) == {1}


def test_limit_threads_reaches_threadpoolctl_when_it_is_installed(monkeypatch) -> None:
    import sys
    import types

    calls = []
    fake = types.ModuleType("threadpoolctl")
    fake.threadpool_limits = lambda limits: calls.append(limits)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "threadpoolctl", fake)
    from gradflow._threads import THREAD_VARIABLES

    for variable in THREAD_VARIABLES:
        monkeypatch.setenv(variable, "7")  # restored (or removed) after the test, as every library below
    here = openblas_threads()
    torch_threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        found = limit_threads(3)
        assert calls == [3]
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "3"
        assert set(found.values()) <= {3}
    finally:
        for threads in set(here.values()):
            limit_threads(threads)
        if torch_threads is not None:
            sys.modules["torch"].set_num_threads(torch_threads)
    assert openblas_threads() == here


def test_threads_limited_gives_everything_back(monkeypatch) -> None:
    import sys
    import types

    class Limits:
        restored = False

        def restore_original_limits(self) -> None:
            Limits.restored = True

    calls = []
    fake = types.ModuleType("threadpoolctl")
    fake.threadpool_limits = lambda limits: calls.append(limits) or Limits()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "threadpoolctl", fake)
    environment, here = dict(os.environ), openblas_threads()
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    with threads_limited(1):
        assert set(openblas_threads().values()) <= {1}
        assert torch is None or torch.get_num_threads() == 1
    assert calls == [1] and Limits.restored
    assert openblas_threads() == here and dict(os.environ) == environment
    assert torch is None or torch.get_num_threads() == torch_threads
    with threads_limited(None):  # nothing at all
        assert openblas_threads() == here and calls == [1]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_blas_threads_must_be_a_positive_int_or_none(bad: object) -> None:
    with pytest.raises(SweepError, match=r"blas_threads must be a positive int, or None for the libraries"):
        gf.sweep(unseeded, {"a": [1], "b": [2]}, blas_threads=bad, progress=False)  # type: ignore[arg-type]
    with pytest.raises(SweepError, match=r"a number of BLAS threads must be an int >= 1"):
        limit_threads(bad)  # type: ignore[arg-type]
    with (
        pytest.raises(SweepError, match=r"a number of BLAS threads must be an int >= 1"),
        threads_limited(bad),
    ):  # type: ignore[arg-type]
        pass
