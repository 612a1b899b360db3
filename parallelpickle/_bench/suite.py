"""Run the whole suite: serializers, compression, pools -> :class:`Results`.

::

    Config ─▶ catalogue(scale) ─▶ run_serializers ─┐
                               └▶ prepare ─▶ run_compression ─┼─▶ Results ─▶ report / answers
              workloads(scale) ─▶ run_pools ─────────────────┘

One tqdm bar (on stderr) counts every measured case, so a full run shows how
far it has come. ``only`` limits the run to some sections.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import compression, payloads, pools
from .serializers import Serializer, SerRow, default_serializers, run_serializers

__all__ = ["SECTIONS", "Config", "Results", "run_suite"]

SECTIONS = ("serializers", "compression", "pools")


@dataclass(frozen=True)
class Config:
    scale: payloads.Scale
    workers: int = 2
    only: tuple[str, ...] = SECTIONS
    progress: bool = True


@dataclass
class Results:
    config: Config
    payloads: list[payloads.Payload] = field(default_factory=list)
    serializers: list[Serializer] = field(default_factory=list)
    workloads: list[pools.Workload] = field(default_factory=list)
    runner_names: list[str] = field(default_factory=list)
    ser_rows: list[SerRow] = field(default_factory=list)
    comp_rows: list[compression.CompRow] = field(default_factory=list)
    pool_rows: list[pools.PoolRow] = field(default_factory=list)
    seconds: float = 0.0


@contextmanager
def _bar(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc="bench", unit="case", dynamic_ncols=True) as bar:
        yield lambda: bar.update(1)


def run_suite(config: Config) -> Results:
    """Measure the sections in ``config.only``; every case ticks the progress bar once."""
    t0 = time.perf_counter()
    scale = config.scale
    res = Results(config, payloads=payloads.catalogue(scale), serializers=default_serializers())
    samples = compression.prepare(res.payloads, scale.compress_cap_bytes) if "compression" in config.only else []
    runners = pools.default_runners(config.workers) if "pools" in config.only else []
    res.workloads = pools.workloads(scale) if runners else []
    res.runner_names = [r.name for r in runners]
    total = 0
    if "serializers" in config.only:
        total += scale.rounds * len(res.payloads) * len(res.serializers)
    total += scale.rounds * len(compression.CODECS) * len(samples)
    total += (scale.pool_repeats + 1) * len(res.workloads) * len(runners)
    with _bar(total, config.progress) as tick:
        if "serializers" in config.only:
            res.ser_rows = run_serializers(
                res.payloads, res.serializers, rounds=scale.rounds, min_time=scale.min_time, tick=tick
            )
        if samples:
            res.comp_rows = compression.run_compression(
                samples, rounds=scale.rounds, min_time=scale.min_time, tick=tick
            )
        if runners:
            res.pool_rows = pools.run_pools(res.workloads, runners, repeats=scale.pool_repeats, tick=tick)
    res.seconds = time.perf_counter() - t0
    return res
