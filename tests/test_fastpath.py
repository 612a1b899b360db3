"""The fast path: the callable once per call, data by C pickle, fallback per chunk."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from parallelpickle import Pool, SerializationError, _transports

from . import helpers


def test_closure_over_large_array_is_shipped_once_per_worker(
    make_pool: Callable[..., Pool], combo: tuple[str, str]
) -> None:
    if combo[0] == "pickle":  # a closure cannot travel by C pickle at all
        return
    big = np.arange(10 * 2**20 // 8, dtype=np.float64)  # 10 MB

    def scale(i: int) -> float:
        return float(big[i] * 2)

    pool = make_pool(2)
    assert pool.map(scale, range(64), chunksize=1) == [float(i * 2) for i in range(64)]
    first = pool.stats
    assert first.chunks == 64
    # 64 chunks, but the 10 MB callable went to each of 2 workers once.
    assert 2 * big.nbytes <= first.bytes_sent < 2 * big.nbytes + 1_000_000
    pool.map(scale, range(64), chunksize=1)  # same bytes: the workers still hold it
    assert pool.stats.bytes_sent - first.bytes_sent < 1_000_000


def test_auto_decision_is_cached_per_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = _transports._pickle_dumps

    def counting(obj: Any) -> bytes:
        calls.append(obj)
        return real(obj)

    monkeypatch.setitem(_transports._DUMPS, _transports.PICKLE, counting)
    fn = lambda x: x + 1  # noqa: E731 - C pickle refuses it
    with Pool(1, transport="auto", backend="thread") as pool:
        assert pool.map(fn, [1, 2]) == [2, 3]
        trials = sum(1 for c in calls if c is fn)
        assert trials == 1
        assert pool.map(fn, [1, 2]) == [2, 3]
        assert sum(1 for c in calls if c is fn) == trials  # no second trial dump


def test_auto_falls_back_per_chunk_only(make_pool: Callable[..., Pool], combo: tuple[str, str]) -> None:
    if combo[0] != "auto":
        return
    pool = make_pool(2)
    items: list[Any] = [1, 2, lambda: 3, 4]  # C pickle refuses one chunk only
    out = pool.map(helpers.call_or_return, items, chunksize=1)
    assert out == [1, 2, 3, 4]


def test_codec_auto_uses_c_pickle_for_plain_data() -> None:
    codec = _transports.Codec("auto")
    assert codec.dumps_data([1, "a", {"b": 2.0}])[0] == _transports.PICKLE
    assert codec.dumps_data([lambda: 1])[0] == _transports.CLOUDPICKLE
    assert codec.dumps_callable(helpers.square)[0] == _transports.PICKLE
    assert codec.dumps_callable(lambda x: x)[0] == _transports.CLOUDPICKLE


def test_closure_sees_values_at_call_time(make_pool: Callable[..., Pool], combo: tuple[str, str]) -> None:
    if combo[0] == "pickle":
        return
    pool = make_pool(2)
    box = {"k": 1}
    fn = lambda x: x * box["k"]  # noqa: E731
    assert pool.map(fn, [1, 2]) == [1, 2]
    box["k"] = 10  # same function object, new captured state: no stale cache
    assert pool.map(fn, [1, 2]) == [10, 20]


def test_auto_carries_a_method_bound_from_a_lambda(make_pool: Callable[..., Pool], combo: tuple[str, str]) -> None:
    # C pickle dumps it (as getattr(obj, '<lambda>')) but no worker can load
    # that; auto must notice and carry it by value.
    method = types.MethodType(lambda self, x: x + 1, helpers.UPPER)
    if combo[0] == "pickle":  # stdlib pickle cannot: the worker's load fails, and says so
        with pytest.raises(SerializationError, match="load"):
            make_pool().map(method, range(4))
        return
    assert make_pool().map(method, range(4)) == [1, 2, 3, 4]
