"""Pools x workloads: parallelpickle's transports against stdlib, pathos, loky, mpire and joblib.

Run for figures (quick-scale workloads, 2 workers)::

    pytest benchmarks/test_pools.py --benchmark-enable --benchmark-group-by=param:workload

Each pool is started once per module and kept warm; every case runs one
warm-up round before it is timed. With benchmarking disabled (CI's smoke run)
the workloads are tiny and each case runs once. A pool that cannot carry a
workload (C pickle and a lambda or a closure) is not timed: its test asserts
that it fails.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest

from parallelpickle._bench import payloads, pools

WORKERS = 2
RUNNER_NAMES = [r.name for r in pools.default_runners(WORKERS)]
WORKLOADS = [w.name for w in pools.workloads(payloads.TINY)]
# Runners that send the callable with C pickle, by reference.
PICKLE_ONLY = {"pp:pickle", "mp.Pool"}


@pytest.fixture(scope="module")
def scale(request: pytest.FixtureRequest) -> payloads.Scale:
    opt = request.config.getoption
    disabled = opt("benchmark_disable", default=True) and not opt("benchmark_enable", default=False)
    return payloads.SCALES[os.environ.get("PARALLELPICKLE_BENCH_SCALE") or ("tiny" if disabled else "quick")]


@pytest.fixture(scope="module")
def works(scale: payloads.Scale) -> dict[str, pools.Workload]:
    return {w.name: w for w in pools.workloads(scale)}


@pytest.fixture(scope="module")
def runners() -> Iterator[dict[str, pools.Runner]]:
    started = {r.name: r for r in pools.default_runners(WORKERS)}  # each starts on first use
    yield started
    for r in started.values():
        r.close()


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("runner", RUNNER_NAMES)
def test_pool(
    request: pytest.FixtureRequest,
    runners: dict[str, pools.Runner],
    works: dict[str, pools.Workload],
    runner: str,
    workload: str,
) -> None:
    pool, work = runners[runner], works[workload]
    if pool.needs and importlib.util.find_spec(pool.needs) is None:
        pytest.skip(f"{pool.needs} is not installed (optional peer)")
    if runner in PICKLE_ONLY and workload in ("lambda", "closure"):
        with pytest.raises(Exception, match=r"pickle|local object"):  # 3.13 says "Can't get local object"
            pool.map(work.fn, work.items)
        return
    benchmark: Any = request.getfixturevalue("benchmark")  # only cases that run are benchmarks
    benchmark.group = work.label
    result = benchmark.pedantic(pool.map, args=(work.fn, work.items), rounds=3, iterations=1, warmup_rounds=1)
    assert result == list(work.expected)
