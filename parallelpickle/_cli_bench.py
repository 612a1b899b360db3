"""``parallelpickle bench``: compare the transports on a default workload."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from ._pool import Pool

TRANSPORTS = ("pickle", "dill", "cloudpickle", "auto")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("bench", help="compare the transports on default workloads")
    p.add_argument("--quick", action="store_true", help="fewer items and repeats")
    p.add_argument("--workers", type=int, default=2)


def _square(x: int) -> int:
    return x * x


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(args: argparse.Namespace) -> int:
    n = 20_000 if args.quick else 100_000
    repeats = 3 if args.quick else 5
    offset = 1
    workloads: dict[str, Callable[[Pool], object]] = {
        f"module function x{n}": lambda pool: pool.map(_square, range(n)),
        f"lambda x{n}": lambda pool: pool.map(lambda x: x + offset, range(n)),
    }
    rows = []
    for name in TRANSPORTS:
        with Pool(args.workers, transport=name) as pool:
            for label, work in workloads.items():
                try:
                    work(pool)  # warm up: workers started, callable cached
                    seconds = _median_s(lambda w=work, p=pool: w(p), repeats)  # type: ignore[misc]
                    rows.append((name, label, f"{seconds * 1e3:9.1f} ms"))
                except Exception as exc:  # noqa: BLE001 - shown, not hidden
                    rows.append((name, label, f"fails: {type(exc).__name__}"))
    width = max(len(r[1]) for r in rows)
    print(f"{'transport':<12} {'workload':<{width}} {'median':>12}")
    for name, label, value in rows:
        print(f"{name:<12} {label:<{width}} {value:>12}")
    return 0
