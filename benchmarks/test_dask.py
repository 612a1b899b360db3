"""Dask backend: chunked tasks make 100k tiny items cheap (issue: Distributed, point 4).

One 2-worker LocalCluster (started by the first pool, reused by the others
through its address) serves the whole module; everything is measured side by
side in one run and summarised at the end::

    pytest benchmarks/test_dask.py --benchmark-enable

D1  Pool(2, backend="dask", transport="auto").map(lambda x: x + 1, range(100_000))   goal <= 3 s
D2  the same through Dask with one task per item (client.map + gather), extrapolated
    from a smaller run to 100k: what chunking saves
D3  the dask pool / the process pool (2 workers), same map: the price of the scheduler

With ``--benchmark-disable`` (the CI smoke run) each case runs once, and the
per-item Dask run is cut down to a few dozen tasks.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("distributed", reason="backend='dask' needs the [dask] extra (dask.distributed is not installed)")

from parallelpickle import Pool

N = 100_000
WORKERS = 2
PER_TASK_N = 1_000
PER_TASK_N_SMOKE = 50
GOAL_S = 3.0
_HAS_FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()


def module_inc(x: int) -> int:
    return x + 1


LAMBDA: Callable[[int], int] = lambda x: x + 1  # noqa: E731 - the point of the benchmark


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[str, Any]]:
    from distributed import Client

    # Not fork: Dask's threads (this module's or an earlier one's) make fork() unsafe.
    process = Pool(WORKERS, transport="auto", start_method="forkserver" if _HAS_FORKSERVER else "spawn")
    dask_auto = Pool(WORKERS, backend="dask", transport="auto")
    address = dask_auto._engine._cluster.scheduler_address  # type: ignore[union-attr]
    dask_pickle = Pool(WORKERS, backend="dask", address=address, transport="pickle")
    client = Client(address, set_as_default=False)
    yield {"dask_auto": dask_auto, "dask_pickle": dask_pickle, "process": process, "client": client}
    client.close()
    for pool in (dask_pickle, process, dask_auto):
        pool.terminate()


def report(write: Callable[[str], None], found: dict[str, float]) -> None:
    write(f"dask backend (medians, {N} items, {WORKERS}-worker LocalCluster):")
    if "dask_auto_lambda" in found:
        t = found["dask_auto_lambda"]
        write(
            f"  D1: dask pool map of a lambda = {t:.3f} s  (goal <= {GOAL_S} s: {'met' if t <= GOAL_S else 'MISSED'})"
        )
    if "dask_pickle_module_fn" in found:
        write(f"      transport 'pickle', module function = {found['dask_pickle_module_fn']:.3f} s")
    if "dask_one_task_per_item" in found:
        per_task = found["dask_one_task_per_item"] / PER_TASK_N
        write(f"  D2: one Dask task per item = {per_task * 1e3:.2f} ms per task -> {per_task * N:.0f} s for {N} items")
    if "dask_auto_lambda" in found and "process_auto_lambda" in found:
        ratio = found["dask_auto_lambda"] / found["process_auto_lambda"]
        write(
            f"  D3: dask / process pool = {found['dask_auto_lambda'] * 1e3:.1f} ms / "
            f"{found['process_auto_lambda'] * 1e3:.1f} ms = {ratio:.2f}"
        )


CASES: dict[str, Callable[[dict[str, Any]], list[int]]] = {
    "dask_auto_lambda": lambda p: p["dask_auto"].map(LAMBDA, range(N)),
    "dask_pickle_module_fn": lambda p: p["dask_pickle"].map(module_inc, range(N)),
    "process_auto_lambda": lambda p: p["process"].map(LAMBDA, range(N)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_map_100k_tiny_tasks(benchmark: Any, pools: dict[str, Any], medians: dict[str, float], case: str) -> None:
    benchmark.group = "dask: map of 100k x+1"
    result = benchmark.pedantic(CASES[case], args=(pools,), rounds=10, iterations=1, warmup_rounds=1)
    assert result == [x + 1 for x in range(N)]
    if benchmark.stats is not None:
        medians[case] = benchmark.stats.stats.median


def test_one_dask_task_per_item(benchmark: Any, pools: dict[str, Any], medians: dict[str, float]) -> None:
    """What a task costs in Dask itself, and so why items travel in chunks."""
    n = PER_TASK_N_SMOKE if benchmark.disabled else PER_TASK_N
    client = pools["client"]

    def run() -> list[int]:
        futures = client.map(module_inc, range(n), pure=False)
        out: list[int] = client.gather(futures)
        return out

    benchmark.group = "dask: one task per item"
    result = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert result == [x + 1 for x in range(n)]
    if benchmark.stats is not None:
        medians["dask_one_task_per_item"] = benchmark.stats.stats.median
