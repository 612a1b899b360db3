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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
    third_party: bool = True  # loky, mpire and joblib among the pools, when installed


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


class _Progress:
    """One tqdm bar for the run (or nothing): a tick per case, the section as its label."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def tick(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def section(self, name: str, total: int | None = None) -> None:
        if self._bar is not None:
            if total is not None:
                self._bar.total = total
            self._bar.set_description_str(name)


@contextmanager
def _progress(enabled: bool) -> Iterator[_Progress]:
    if not enabled:
        yield _Progress(None)
        return
    from tqdm import tqdm

    # No monitor thread: the pools measured next would fork a multi-threaded
    # parent, and the thread would outlive the run (see _progress).
    bar_class: Any = type("BenchBar", (tqdm,), {"monitor_interval": 0})
    with bar_class(total=0, desc="building payloads", unit="case", dynamic_ncols=True) as bar:
        yield _Progress(bar)


def _total(config: Config, res: Results, samples: int, runners: int) -> int:
    scale = config.scale
    total = scale.rounds * len(res.payloads) * len(res.serializers) if "serializers" in config.only else 0
    total += scale.rounds * len(compression.CODECS) * samples
    return total + (scale.pool_repeats + 1) * len(res.workloads) * runners


def run_suite(config: Config) -> Results:
    """Measure the sections in ``config.only``; every case ticks the progress bar once."""
    t0 = time.perf_counter()
    scale = config.scale
    with _progress(config.progress) as progress:
        res = Results(config, payloads=payloads.catalogue(scale), serializers=default_serializers())
        samples = compression.prepare(res.payloads, scale.compress_cap_bytes) if "compression" in config.only else []
        runners = (
            pools.default_runners(config.workers, third_party=config.third_party) if "pools" in config.only else []
        )
        res.workloads = pools.workloads(scale) if runners else []
        res.runner_names = [r.name for r in runners]
        progress.section("serializers", _total(config, res, len(samples), len(runners)))
        tick = progress.tick
        if "serializers" in config.only:
            res.ser_rows = run_serializers(
                res.payloads, res.serializers, rounds=scale.rounds, min_time=scale.min_time, tick=tick
            )
        if samples:
            progress.section("compression")
            res.comp_rows = compression.run_compression(
                samples, rounds=scale.rounds, min_time=scale.min_time, tick=tick
            )
        if runners:
            progress.section("pools")
            res.pool_rows = pools.run_pools(res.workloads, runners, repeats=scale.pool_repeats, tick=tick)
    res.seconds = time.perf_counter() - t0
    return res
