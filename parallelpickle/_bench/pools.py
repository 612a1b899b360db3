"""Pools x workloads: parallelpickle's transports against the pools people use today.

Data flow::

    workloads(scale) ──▶ for each repeat (the first is a warm-up, not kept):
                           for each workload:
                             for each runner, in an order rotated per repeat:
                               runner.map(fn, items) ─▶ wall seconds (+ pool.stats delta)
                         ──▶ PoolRow: tasks/s, MB/s, serialization share

Every pool is started once, on first use, and kept for the whole section,
so pool start-up is not timed (the warm-up repeat absorbs imports, worker
start and parallelpickle's per-worker callable cache). mpire and joblib are
used the way their documentation shows, one pool object per call (joblib
keeps its workers between calls by itself; mpire starts its own each call).
Each runner calls its library's ordinary ``map`` with that library's
defaults, except loky, whose ``Executor.map`` would otherwise send one item
per message; it gets the chunk size ``multiprocessing.Pool.map`` would pick. A runner whose library
is not installed is reported as such; a runner that cannot carry a workload
(stdlib pickle and a lambda) is reported with its error, never dropped.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._pool import Pool
from .._stats import PoolStats
from .payloads import MB, Scale, make_closure
from .serializers import describe_error
from .timing import Stat, rotated

__all__ = ["PoolRow", "Runner", "Workload", "default_runners", "run_pools", "workloads"]


def inc(x: int) -> int:
    return x + 1


INC_LAMBDA: Callable[[int], int] = lambda x: x + 1  # noqa: E731 - the workload is "a lambda"


def spin(ms: float) -> float:
    """Busy-wait ``ms`` milliseconds of CPU (sleeping would not load the cores)."""
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass
    return ms


def first_value(a: np.ndarray[Any, Any]) -> float:
    """Touch the array and send back a float: the cost is carrying the array in."""
    return float(a[0])


@dataclass(frozen=True)
class Workload:
    name: str
    label: str
    fn: Callable[[Any], Any]
    items: Sequence[Any]
    expected: Sequence[Any]
    nbytes: int = 0  # bytes of task data carried in, for MB/s (0: not a bandwidth workload)


def workloads(scale: Scale) -> list[Workload]:
    n, m = scale.tiny_tasks, scale.ms_tasks
    rng = np.random.default_rng(7)
    arrays = [rng.normal(size=scale.array_task_bytes // 8) for _ in range(scale.array_tasks)]
    values = rng.normal(size=scale.pool_closure_bytes // 8)
    lookup = make_closure(values)
    k = scale.closure_tasks
    size = scale.array_task_bytes
    per = f"{size / MB:g} MB" if size >= MB else f"{size >> 10} KB"
    cl = scale.pool_closure_bytes
    cl_size = f"{cl / MB:g} MB" if cl >= MB else f"{cl >> 10} KB"
    return [
        Workload("tiny", f"{n:,} tiny tasks", inc, range(n), [i + 1 for i in range(n)]),
        Workload("lambda", f"lambda x {n:,}", INC_LAMBDA, range(n), [i + 1 for i in range(n)]),
        Workload("ms", f"{m:,} tasks of 1 ms", spin, [1.0] * m, [1.0] * m),
        Workload(
            "arrays",
            f"{len(arrays)} x {per} arrays",
            first_value,
            arrays,
            [float(a[0]) for a in arrays],
            size * len(arrays),
        ),
        Workload("closure", f"closure over {cl_size} x {k:,}", lookup, range(k), [lookup(i) for i in range(k)]),
    ]


class Runner:
    """One pool implementation: started lazily, ``map`` returns a list, ``close`` frees it."""

    name = "?"
    needs: str | None = None  # importable module the runner needs

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = None

    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None

    def start(self) -> Any:
        raise NotImplementedError

    def pool(self) -> Any:
        if self._pool is None:
            self._pool = self.start()
        return self._pool

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self.pool().map(fn, items))

    def stats(self) -> PoolStats | None:
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


class OurRunner(Runner):
    def __init__(self, workers: int, transport: str) -> None:
        super().__init__(workers)
        self.transport = transport
        self.name = f"pp:{transport}"

    def start(self) -> Any:
        return Pool(self.workers, transport=self.transport)

    def stats(self) -> PoolStats | None:
        stats: PoolStats | None = self._pool.stats if self._pool is not None else None
        return stats


class StdlibRunner(Runner):
    name = "mp.Pool"

    def start(self) -> Any:
        return multiprocessing.get_context().Pool(self.workers)


class PathosRunner(Runner):
    name = "pathos"
    needs = "pathos"

    def start(self) -> Any:
        from pathos.pools import ProcessPool

        return ProcessPool(nodes=self.workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.clear()  # pathos keeps its pools in a hidden module-level cache
            self._pool = None


class LokyRunner(Runner):
    name = "loky"
    needs = "loky"

    def start(self) -> Any:
        import loky

        return loky.ProcessPoolExecutor(max_workers=self.workers)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        chunksize = max(1, math.ceil(len(items) / (4 * self.workers)))
        return list(self.pool().map(fn, items, chunksize=chunksize))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=True)
            self._pool = None


class MpireRunner(Runner):
    """mpire as its documentation uses it: ``with WorkerPool(n) as pool: pool.map(...)``.

    Its workers are forked per map and receive the function through the fork,
    so start-up is part of each timing. A kept-alive mpire pool would instead
    send each new function through a stdlib-pickled queue, and a lambda left
    that pool unusable for every later map (mpire 2.10).
    """

    name = "mpire"
    needs = "mpire"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        # Looked up at run time: mpire is optional, and its exports are not typed.
        worker_pool: Any = getattr(importlib.import_module("mpire"), "WorkerPool")  # noqa: B009
        with worker_pool(n_jobs=self.workers) as pool:
            return list(pool.map(fn, items))


class JoblibRunner(Runner):
    """joblib as its documentation uses it: a ``Parallel(n_jobs)`` per call.

    joblib keeps its loky workers between calls by itself. Reusing one
    ``Parallel`` object across calls broke the call after a large-array call
    (its memory-mapping folder was gone) in joblib 1.6.
    """

    name = "joblib"
    needs = "joblib"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        from joblib import Parallel, delayed

        return list(Parallel(n_jobs=self.workers)(delayed(fn)(x) for x in items))


def default_runners(workers: int, *, third_party: bool = True) -> list[Runner]:
    """Our four transports, stdlib and pathos; loky, mpire and joblib unless ``third_party`` is off.

    Importing those three changes process-wide pickling state (they register
    reducers with ``multiprocessing.reduction``), so a caller that measures
    something else in the same process afterwards may want them left out.
    """
    ours: list[Runner] = [OurRunner(workers, t) for t in ("pickle", "dill", "cloudpickle", "auto")]
    peers = [StdlibRunner, PathosRunner, *([LokyRunner, MpireRunner, JoblibRunner] if third_party else [])]
    return [*ours, *(cls(workers) for cls in peers)]


@dataclass
class PoolRow:
    """One (workload, runner) case over the kept repeats."""

    workload: str
    runner: str
    tasks: int
    nbytes: int
    workers: int
    error: str | None = None
    wall: list[float] = field(default_factory=list)
    serialization: list[float] = field(default_factory=list)  # seconds in dumps/loads, from pool.stats

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.wall)

    def stat(self) -> Stat | None:
        return Stat.of(self.wall) if self.wall else None

    def tasks_per_s(self) -> float | None:
        s = self.stat()
        return self.tasks / s.median if s and s.median > 0 else None

    def mb_per_s(self) -> float | None:
        s = self.stat()
        return self.nbytes / MB / s.median if s and self.nbytes and s.median > 0 else None

    def serialization_share(self) -> float | None:
        """Seconds in dumps/loads (parent and workers) over the process-seconds of the run."""
        if not self.serialization or not self.wall:
            return None
        shares = [ser / (wall * (self.workers + 1)) for ser, wall in zip(self.serialization, self.wall)]
        return Stat.of(shares).median


def _run_once(row: PoolRow, runner: Runner, work: Workload, keep: bool) -> None:
    try:
        before = runner.stats()
        t0 = time.perf_counter()
        result = runner.map(work.fn, work.items)
        wall = time.perf_counter() - t0
        after = runner.stats()
    except Exception as exc:  # noqa: BLE001 - a pool that cannot carry the workload is a result
        row.error = describe_error(exc)
        return
    if len(result) != len(work.expected) or any(a != b for a, b in zip(result, work.expected)):
        row.error = "WrongResult: the results differ from the expected values"
        return
    if keep:
        row.wall.append(wall)
        if after is not None:
            row.serialization.append(after.serialization_s - (before.serialization_s if before else 0.0))


def run_pools(
    works: Sequence[Workload],
    runners: Sequence[Runner],
    *,
    repeats: int,
    tick: Callable[[], None] = lambda: None,
) -> list[PoolRow]:
    """Run every workload on every runner: one warm-up, then ``repeats`` kept runs."""
    rows = {
        (w.name, r.name): PoolRow(w.name, r.name, len(w.items), w.nbytes, r.workers) for w in works for r in runners
    }
    for r in runners:
        if not r.available():
            for w in works:
                rows[w.name, r.name].error = f"NotInstalled: {r.needs} is not importable here"
    try:
        for rep in range(repeats + 1):
            for work in works:
                for runner in rotated(runners, rep):
                    row = rows[work.name, runner.name]
                    if row.error is None:
                        _run_once(row, runner, work, keep=rep > 0)
                    tick()
    finally:
        for runner in runners:
            runner.close()
    return list(rows.values())
