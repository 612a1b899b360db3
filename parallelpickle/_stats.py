"""``pool.stats``: what a pool has sent, received, and spent serializing."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["PoolStats", "StatsCounter"]


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of one pool's counters (``pool.stats``).

    ``dumps_s``/``loads_s`` are seconds spent serializing in the parent
    (arguments and callables out, results in); ``worker_dumps_s`` and
    ``worker_loads_s`` are the same in the workers, reported back with each
    chunk. ``bytes_sent``/``bytes_received`` count every message on the wire.
    ``workers_replaced`` counts workers that died (crashed, were killed for a
    ``task_timeout``, or ended by ``max_tasks_per_child``) and were replaced.
    """

    tasks: int = 0
    chunks: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    dumps_s: float = 0.0
    loads_s: float = 0.0
    worker_dumps_s: float = 0.0
    worker_loads_s: float = 0.0
    workers_replaced: int = 0

    @property
    def serialization_s(self) -> float:
        """All seconds spent in dumps and loads, parent and workers together."""
        return self.dumps_s + self.loads_s + self.worker_dumps_s + self.worker_loads_s


class StatsCounter:
    """Mutable counters owned by one pool; read through :meth:`snapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks = 0
        self._chunks = 0
        self._sent = 0
        self._received = 0
        self._dumps = 0.0
        self._loads = 0.0
        self._wdumps = 0.0
        self._wloads = 0.0
        self._replaced = 0

    def add_replaced(self) -> None:
        with self._lock:
            self._replaced += 1

    def add_sent(self, nbytes: int, *, chunks: int = 0, tasks: int = 0) -> None:
        with self._lock:
            self._sent += nbytes
            self._chunks += chunks
            self._tasks += tasks

    def add_received(self, nbytes: int) -> None:
        with self._lock:
            self._received += nbytes

    def add_parent(self, *, dumps_s: float = 0.0, loads_s: float = 0.0) -> None:
        with self._lock:
            self._dumps += dumps_s
            self._loads += loads_s

    def add_worker(self, *, dumps_s: float = 0.0, loads_s: float = 0.0) -> None:
        with self._lock:
            self._wdumps += dumps_s
            self._wloads += loads_s

    def snapshot(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                tasks=self._tasks,
                chunks=self._chunks,
                bytes_sent=self._sent,
                bytes_received=self._received,
                dumps_s=self._dumps,
                loads_s=self._loads,
                worker_dumps_s=self._wdumps,
                worker_loads_s=self._wloads,
                workers_replaced=self._replaced,
            )
