"""Timing primitives: one sample per round, medians with their spread.

A measurement is taken in rounds. Each round yields one *sample* per case: the
seconds of one call, averaged over as many calls as fit in ``min_time`` (so a
2 µs dumps is not lost in timer noise, and a 2 s one runs once). The cases'
order rotates between rounds (:func:`rotated`) so that machine drift -- a
neighbour's job, a warming CPU -- does not always favour the same case. The
samples of all rounds reduce to a :class:`Stat`: the median and the spread.

The garbage collector is paused while a sample is timed, as :mod:`timeit`
does, so that a collection triggered by one case is not billed to another.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

__all__ = ["Stat", "rotated", "sample_seconds", "timed_once"]

T = TypeVar("T")
# More calls than this per sample buy no precision, only wall time.
_MAX_LOOPS = 100_000


@dataclass(frozen=True)
class Stat:
    """Median and spread of one case's samples (seconds)."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        if not samples:
            raise ValueError("samples must not be empty")
        ordered = sorted(samples)
        if len(ordered) >= 2:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q1 = q3 = ordered[0]
        return cls(statistics.median(ordered), q1, q3, ordered[0], ordered[-1], len(ordered))

    @property
    def spread(self) -> float:
        """Interquartile range over the median: 0.05 reads "±5 %" around the median, roughly."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """``items`` started at position ``shift`` (mod its length): round r runs rotated(cases, r)."""
    if not items:
        return []
    k = shift % len(items)
    return [*items[k:], *items[:k]]


def timed_once(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds for one call of ``fn`` and its result, with the collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn()
        return time.perf_counter() - t0, result
    finally:
        if enabled:
            gc.enable()


def sample_seconds(fn: Callable[[], object], min_time: float, first: float | None = None) -> float:
    """Seconds per call of ``fn``: one call, or a loop of calls lasting about ``min_time``.

    ``first`` is the time of a call already made (saves a call for slow cases).
    """
    once = timed_once(fn)[0] if first is None else first
    if once >= min_time:
        return once
    loops = min(_MAX_LOOPS, max(2, int(min_time / max(once, 1e-7))))

    def loop() -> None:
        for _ in range(loops):
            fn()

    return timed_once(loop)[0] / loops
