"""Large arrays through shared memory versus the pipe (issue goals S1-S3).

Both pools are started once per module (warm, 2 workers, fork) and measured
side by side in one run; the ratios of medians and the effective bandwidth
are printed at the end::

    pytest benchmarks/test_shm.py --benchmark-enable

S1  Pool(transport="auto").map(arr.sum, 20 x 50 MB arrays)  >= 2 GB/s effective
S2  the same / multiprocessing.Pool.map                      >= 7x faster
S3  returning 20 x 50 MB arrays / multiprocessing.Pool.map   >= 5x faster

With benchmarking disabled (the CI smoke run) the arrays are 1 MB.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from parallelpickle import Pool

WORKERS = 2
COUNT = 20
FULL_MB = 50
SMOKE_MB = 1

GOALS = [
    ("S2", "stdlib_sum", "auto_sum", 7.0),
    ("S3", "stdlib_return", "auto_return", 5.0),
]


def total(a: Any) -> float:
    return float(a.sum())


def make(n: int) -> Any:
    return np.ones(n)


@pytest.fixture(scope="module")
def elements(request: pytest.FixtureRequest) -> int:
    config = request.config
    smoke = bool(config.getoption("benchmark_disable", default=False)) and not config.getoption(
        "benchmark_enable", default=False
    )
    return (SMOKE_MB if smoke else FULL_MB) * 1_000_000 // 8


@pytest.fixture(scope="module")
def arrays(elements: int) -> list[Any]:
    return [np.random.default_rng(i).random(elements) for i in range(COUNT)]


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[str, Any]]:
    stdlib = multiprocessing.get_context("fork").Pool(WORKERS)
    auto = Pool(WORKERS, transport="auto", start_method="fork")
    yield {"stdlib": stdlib, "auto": auto}
    stdlib.terminate()
    auto.terminate()


@pytest.fixture(scope="module")
def medians(report_after: list[Any], elements: int) -> Iterator[dict[str, float]]:
    found: dict[str, float] = {}
    yield found
    if found:
        report_after.append(lambda write: _report(write, found, COUNT * elements * 8))


def _report(write: Callable[[str], None], found: dict[str, float], nbytes: int) -> None:
    write(f"shared-memory goals (medians, {COUNT} arrays of {nbytes / COUNT / 1e6:.0f} MB, {WORKERS} workers):")
    for case, seconds in sorted(found.items()):
        write(f"  {case}: {seconds * 1e3:.0f} ms = {nbytes / seconds / 1e6:.0f} MB/s effective")
    if "auto_sum" in found:
        rate = nbytes / found["auto_sum"] / 1e9
        write(f"  S1: auto_sum {rate:.2f} GB/s (goal >= 2: {'met' if rate >= 2 else 'MISSED'})")
    for goal, slow, fast, limit in GOALS:
        if slow in found and fast in found:
            ratio = found[slow] / found[fast]
            write(
                f"  {goal}: {slow} / {fast} = {ratio:.1f}x  (goal >= {limit}: {'met' if ratio >= limit else 'MISSED'})"
            )


@pytest.mark.parametrize("pool_name", ["auto", "stdlib"])
def test_sum_of_large_arrays(
    benchmark: Any, pools: dict[str, Any], arrays: list[Any], medians: dict[str, float], pool_name: str
) -> None:
    pool = pools[pool_name]
    benchmark.group = "shared memory: map(arr.sum) over 20 large arrays"
    rounds = 3 if pool_name == "stdlib" else 7
    result = benchmark.pedantic(pool.map, args=(total, arrays), rounds=rounds, iterations=1, warmup_rounds=1)
    assert result == [float(a.sum()) for a in arrays]
    if benchmark.stats is not None:
        medians[f"{pool_name}_sum"] = benchmark.stats.stats.median


@pytest.mark.parametrize("pool_name", ["auto", "stdlib"])
def test_return_large_arrays(
    benchmark: Any, pools: dict[str, Any], elements: int, medians: dict[str, float], pool_name: str
) -> None:
    pool = pools[pool_name]
    benchmark.group = "shared memory: map returning 20 large arrays"
    rounds = 3 if pool_name == "stdlib" else 7
    result = benchmark.pedantic(pool.map, args=(make, [elements] * COUNT), rounds=rounds, iterations=1, warmup_rounds=1)
    assert len(result) == COUNT and all(r.shape == (elements,) and r[-1] == 1.0 for r in result)
    del result
    if benchmark.stats is not None:
        medians[f"{pool_name}_return"] = benchmark.stats.stats.median
