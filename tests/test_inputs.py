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
