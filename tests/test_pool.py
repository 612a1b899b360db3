"""The core Pool, over every transport x start method (the ``combo`` fixture)."""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import os
import pickle
import time
from collections.abc import Callable

import pytest

from parallelpickle import Pool, PoolClosedError, SerializationError
from parallelpickle._errors import RemoteTraceback

from . import helpers


def test_classic_examples_equal_builtin_map(pool: Pool, combo: tuple[str, str]) -> None:
    assert pool.map(math.cos, range(10)) == list(map(math.cos, range(10)))
    assert pool.starmap(pow, [(2, 5), (3, 4), (10, 3)]) == list(itertools.starmap(pow, [(2, 5), (3, 4), (10, 3)]))
    if combo[0] != "pickle":
        assert pool.map(lambda x: 2**x, range(10)) == [2**x for x in range(10)]


def test_every_call_form(pool: Pool) -> None:
    xs = list(range(-20, 20))
    assert pool.map(helpers.square, xs) == [x * x for x in xs]
    assert pool.map(helpers.add, xs, range(100)) == list(map(helpers.add, xs, range(100)))  # zips, shortest wins
    assert list(pool.imap(abs, xs)) == list(map(abs, xs))
    assert sorted(pool.imap_unordered(abs, xs)) == sorted(map(abs, xs))
    assert pool.starmap(helpers.add, zip(xs, xs)) == [2 * x for x in xs]
    future = pool.submit(helpers.kwargs_echo, 1, 2, key="v")
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=30) == ((1, 2), {"key": "v"})
    assert pool.map(helpers.square, []) == []
    assert list(pool.imap(helpers.square, iter([]))) == []


def test_map_returns_list_in_order_with_any_chunksize(pool: Pool) -> None:
    xs = list(range(257))
    for chunksize in (1, 7, 1000):
        assert pool.map(helpers.inc, xs, chunksize=chunksize) == [x + 1 for x in xs]
    assert list(pool.imap(helpers.inc, (x for x in xs))) == [x + 1 for x in xs]


def test_closures_and_local_functions(pool: Pool, combo: tuple[str, str]) -> None:
    base = 10

    def add_base(x: int) -> int:
        return x + base

    if combo[0] == "pickle":  # stdlib pickle stores functions by name: refused, explained
        with pytest.raises(SerializationError, match="add_base"):
            pool.map(add_base, range(5))
        return
    assert pool.map(add_base, range(5)) == [10, 11, 12, 13, 14]
    base = 100  # a closure sees the value captured at map time
    assert pool.map(add_base, range(2)) == [100, 101]


def test_pickle_refuses_lambda_with_reason(make_pool: Callable[..., Pool], combo: tuple[str, str]) -> None:
    pool = make_pool(transport="pickle")
    with pytest.raises(SerializationError) as info:
        pool.map(lambda x: x, range(3))
    assert isinstance(info.value, pickle.PicklingError)
    message = str(info.value)
    assert "lambda" in message
    assert "cloudpickle" in message and "dill" in message
    # The refusal is per call: the pool still works.
    assert pool.map(helpers.inc, [1]) == [2]


def test_worker_exception_keeps_type_traceback_and_index(pool: Pool) -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.map(helpers.fail_on, range(10), chunksize=2)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "fail_on" in str(info.value.__cause__)
    assert any("item 3" in note for note in getattr(info.value, "__notes__", []))
    fut = pool.submit(helpers.raise_key_error, 7)
    with pytest.raises(KeyError):
        fut.result(timeout=30)
    # imap delivers every earlier result before raising.
    it = pool.imap(helpers.fail_on, range(10), chunksize=1)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        next(it)
    assert pool.map(helpers.inc, range(3)) == [1, 2, 3]


def test_one_pool_many_maps_and_lifecycle(make_pool: Callable[..., Pool]) -> None:
    a, b = make_pool(), make_pool()
    pids_a = set(a.map(helpers.pid, range(50), chunksize=1))
    pids_b = set(b.map(helpers.pid, range(50), chunksize=1))
    assert pids_a and pids_b and not pids_a & pids_b  # two pools are two pools
    for i in range(5):
        assert a.map(helpers.inc, [i]) == [i + 1]
    a.close()
    with pytest.raises(PoolClosedError):
        a.map(helpers.inc, [1])
    with pytest.raises(RuntimeError):  # concurrent.futures' word for it
        a.submit(helpers.inc, 1)
    a.join()
    with b:
        assert b.map(helpers.inc, [1]) == [2]
    with pytest.raises(ValueError):  # multiprocessing's word for it
        b.map(helpers.inc, [1])


def test_initializer_and_max_tasks_per_child(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(initializer=helpers.set_state, initargs=("ready",))
    assert set(pool.map(helpers.get_state, range(8))) == {"ready"}
    recycled = make_pool(1, max_tasks_per_child=2)
    pids = recycled.map(helpers.pid, range(6), chunksize=1)
    assert pids == [x for x in pids]  # every item got an answer
    assert len(set(pids)) == 3  # a fresh worker every two tasks


def test_shutdown_wait_and_cancel_futures(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(1)
    running = pool.submit(helpers.sleep_return, 0.3)
    queued = [pool.submit(helpers.sleep_return, 0.3) for _ in range(5)]
    deadline = time.monotonic() + 10
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result() == 0.3
    assert any(f.cancelled() for f in queued)
    assert all(f.done() for f in queued)


def test_terminate_fails_unfinished_work(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(1)
    fut = pool.submit(helpers.sleep_return, 30)
    pool.terminate()
    with pytest.raises((PoolClosedError, concurrent.futures.CancelledError)):
        fut.result(timeout=10)


def test_custom_transport_object(combo: tuple[str, str]) -> None:
    with Pool(2, transport=helpers.UPPER, start_method=combo[1]) as pool:
        assert pool.transport == "upper"
        assert pool.map(helpers.square, range(6)) == [0, 1, 4, 9, 16, 25]


def test_stats_count_work(pool: Pool) -> None:
    pool.map(helpers.inc, range(100), chunksize=10)
    stats = pool.stats
    assert stats.tasks == 100 and stats.chunks == 10
    assert stats.bytes_sent > 0 and stats.bytes_received > 0
    assert stats.dumps_s >= 0 and stats.worker_loads_s >= 0


def test_different_functions_same_name_never_reuse_cache(pool: Pool, combo: tuple[str, str]) -> None:
    if combo[0] == "pickle":  # by reference: a redefined module attribute is what workers see
        assert [pool.map(fn, [3])[0] for fn in (helpers.square, helpers.inc)] == [9, 4]
        return
    fns = []
    for k in range(3):

        def f(x: int, k: int = k) -> int:
            return x * 10 + k

        fns.append(f)
    assert [pool.map(fn, [1])[0] for fn in fns] == [10, 11, 12]


def test_worker_count_default_is_cpu_count() -> None:
    with Pool(backend="thread") as pool:
        assert pool.workers == (getattr(os, "process_cpu_count", os.cpu_count)() or 1)
