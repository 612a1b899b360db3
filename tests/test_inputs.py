"""Bad input gets a clear error before any process starts; huge inputs stay lazy."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from parallelpickle import Pool
from parallelpickle._jobs import auto_chunksize

from . import helpers


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": -3}, ValueError, "workers"),
        ({"workers": 2.5}, TypeError, "workers"),
        ({"workers": True}, TypeError, "workers"),
        ({"transport": "json"}, ValueError, "'pickle', 'dill', 'cloudpickle', 'auto'"),
        ({"transport": 42}, TypeError, "transport"),
        ({"start_method": "vfork"}, ValueError, "'fork', 'spawn', 'forkserver'"),
        ({"backend": "gpu"}, ValueError, "'process', 'thread'"),
        ({"chunksize": 0}, ValueError, "chunksize"),
        ({"initializer": "not callable"}, TypeError, "initializer"),
        ({"initargs": 5}, TypeError, "initargs"),
        ({"max_tasks_per_child": 0}, ValueError, "max_tasks_per_child"),
        ({"task_timeout": -1}, ValueError, "task_timeout"),
        ({"task_timeout": "soon"}, TypeError, "task_timeout"),
        ({"progress": "yes"}, TypeError, "progress"),
        ({"address": "tcp://127.0.0.1:1"}, ValueError, "address"),
        ({"backend": "thread", "start_method": "spawn"}, ValueError, "start_method"),
    ],
)
def test_bad_pool_arguments_fail_before_any_process(kwargs: dict[str, Any], error: type, words: str) -> None:
    before = _children()
    with pytest.raises(error, match=None) as info:
        Pool(**kwargs)
    assert words in str(info.value)
    assert _children() == before


def test_bad_call_arguments(combo: tuple[str, str]) -> None:
    with Pool(2, transport=combo[0], start_method=combo[1]) as pool:
        with pytest.raises(TypeError, match="callable"):
            pool.map(42, range(3))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callable"):
            pool.submit("nope")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="iterable"):
            pool.map(helpers.inc)
        with pytest.raises(ValueError, match="chunksize"):
            pool.map(helpers.inc, range(3), chunksize=0)
        assert pool.map(helpers.inc, range(3)) == [1, 2, 3]


def test_auto_chunksize_follows_multiprocessing_rule() -> None:
    # multiprocessing.Pool.map: divmod(len, 4 * workers), rounded up.
    assert auto_chunksize(100_000, 2) == 12_500
    assert auto_chunksize(10, 4) == 1
    assert auto_chunksize(17, 2) == 3


def test_unsized_input_is_consumed_lazily(combo: tuple[str, str]) -> None:
    pulled = itertools.count()

    def ten_million() -> Iterator[int]:
        for i in range(10_000_000):
            next(pulled)
            yield i

    with Pool(2, transport=combo[0], start_method=combo[1]) as pool:
        it = pool.imap(helpers.inc, ten_million())
        first = [next(it) for _ in range(20_000)]
        assert first == list(range(1, 20_001))
        seen = next(pulled)
        # Only a bounded window beyond what was read has been pulled from the input:
        # at most 4 buffered chunks per worker plus 2 in flight per worker, of <= 4096 items.
        assert seen < 20_000 + (4 * 2 + 2 * 2 + 1) * 4096
        it.close()  # type: ignore[attr-defined]
        assert pool.map(helpers.inc, [1]) == [2]
    assert next(pulled) < 10_000_000 // 10


class _NoDumps:
    name = "half"

    def loads(self, data: bytes) -> Any:
        return data


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"transport": _NoDumps()}, TypeError, "transport"),
        ({"workers": "4"}, TypeError, "workers"),
        ({"chunksize": 2.0}, TypeError, "chunksize"),
        ({"max_tasks_per_child": "1"}, TypeError, "max_tasks_per_child"),
        ({"start_method": 3}, TypeError, "start_method"),
        ({"backend": None}, TypeError, "backend"),
    ],
)
def test_more_bad_pool_arguments(kwargs: dict[str, Any], error: type, words: str) -> None:
    before = _children()
    with pytest.raises(error) as info:
        Pool(**kwargs)
    assert words in str(info.value)
    assert _children() == before


@pytest.fixture(scope="module")
def one_pool() -> Iterator[Pool]:
    with Pool(2, transport="pickle") as pool:
        yield pool


CALLS: list[tuple[str, Any, type, str]] = [
    ("map chunksize type", lambda p: p.map(helpers.inc, range(3), chunksize="2"), TypeError, "chunksize"),
    ("map chunksize value", lambda p: p.map(helpers.inc, range(3), chunksize=-1), ValueError, "chunksize"),
    ("map timeout type", lambda p: p.map(helpers.inc, range(3), timeout="1"), TypeError, "timeout"),
    ("map progress type", lambda p: p.map(helpers.inc, range(3), progress="yes"), TypeError, "progress"),
    ("map not iterable", lambda p: p.map(helpers.add, range(3), 5), TypeError, "argument 3 (the data to map)"),
    ("imap not callable", lambda p: p.imap(None, range(3)), TypeError, "callable"),
    ("imap chunksize", lambda p: p.imap(helpers.inc, range(3), chunksize=0), ValueError, "chunksize"),
    ("imap_unordered not iterable", lambda p: p.imap_unordered(helpers.inc, 3), TypeError, "iterable"),
    ("imap_unordered progress", lambda p: p.imap_unordered(helpers.inc, [1], progress=1), TypeError, "progress"),
    ("starmap not iterable", lambda p: p.starmap(helpers.add, 7), TypeError, "iterable"),
    ("starmap not callable", lambda p: p.starmap("add", [(1, 2)]), TypeError, "callable"),
    ("submit not callable", lambda p: p.submit(3), TypeError, "callable"),
    ("shutdown wait", lambda p: p.shutdown(wait="no"), TypeError, "wait"),
    ("shutdown cancel_futures", lambda p: p.shutdown(cancel_futures=1), TypeError, "cancel_futures"),
]


@pytest.mark.parametrize(("what", "call", "error", "words"), CALLS, ids=[c[0] for c in CALLS])
def test_bad_call_arguments_name_the_parameter(one_pool: Pool, what: str, call: Any, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        result = call(one_pool)
        if hasattr(result, "__next__"):  # a lazy iterator must still fail at the call
            pytest.fail(f"{what}: the error waited for the first next()")
    assert words in str(info.value), str(info.value)
    assert one_pool.map(helpers.inc, [1, 2]) == [2, 3]  # and the pool is still usable


def test_closed_pool_refuses_every_call() -> None:
    pool = Pool(2, transport="pickle")
    pool.close()
    for call in (
        lambda: pool.map(helpers.inc, [1]),
        lambda: pool.imap(helpers.inc, [1]),
        lambda: pool.imap_unordered(helpers.inc, [1]),
        lambda: pool.starmap(helpers.add, [(1, 2)]),
        lambda: pool.submit(helpers.inc, 1),
    ):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    pool.join()
