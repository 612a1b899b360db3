"""The checker is cheap: a 200 MB numpy argument adds at most 10 ms to check().

Measured side by side in one run, the differences of medians printed at the end::

    pytest benchmarks/test_checker.py --benchmark-enable

C1  check(fn, <200 MB array>) - check(fn, 1.0)                      goal <= 10 ms
C2  check(fn, 1) on a callable already checked (the cache) vs a fresh
    closure each time (no cache)                                    goal: cached faster

A small array is timed too: below 64 KiB an array is pickled in full by every
serializer (dill in pure Python), above it the trial keeps it out of band.

With benchmarking disabled (CI's smoke run) the array is 2 MB, so the file
still runs in a moment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from parallelpickle import check


def scale(x: Any, factor: float = 2.0) -> Any:
    return x * factor


@pytest.fixture(scope="module")
def big(request: pytest.FixtureRequest) -> np.ndarray[Any, Any]:
    enabled = not request.config.getoption("benchmark_disable", default=True)
    return np.ones(25_000_000 if enabled else 250_000)  # 200 MB of float64 when measuring


def report(write: Callable[[str], None], found: dict[str, float]) -> None:
    if "big_array" in found and "scalar" in found:
        extra = (found["big_array"] - found["scalar"]) * 1e3
        write(
            f"C1: check(fn, big array) - check(fn, 1.0) = {found['big_array'] * 1e3:.2f} ms - "
            f"{found['scalar'] * 1e3:.2f} ms = {extra:.2f} ms  (goal <= 10 ms: {'met' if extra <= 10 else 'MISSED'})"
        )
    if "cached_callable" in found and "fresh_closure" in found:
        ratio = found["fresh_closure"] / found["cached_callable"]
        write(
            f"C2: fresh closure / cached callable = {found['fresh_closure'] * 1e3:.2f} ms / "
            f"{found['cached_callable'] * 1e3:.2f} ms = {ratio:.1f}x"
        )


def _fresh_closure() -> Callable[[Any], Any]:
    factor = 3.0

    def times(x: Any) -> Any:
        return x * factor

    return times


def _cases(big: np.ndarray[Any, Any]) -> dict[str, Callable[[], Any]]:
    small = np.ones(10)
    cached = _fresh_closure()
    return {
        "scalar": lambda: check(scale, 1.0),
        "small_array": lambda: check(scale, small),
        "big_array": lambda: check(scale, big),
        "cached_callable": lambda: check(cached, 1),
        "fresh_closure": lambda: check(_fresh_closure(), 1),
    }


@pytest.mark.parametrize("case", ["scalar", "small_array", "big_array", "cached_callable", "fresh_closure"])
def test_check_cost(benchmark: Any, big: np.ndarray[Any, Any], medians: dict[str, float], case: str) -> None:
    benchmark.group = "checker cost"
    run = _cases(big)[case]
    report = benchmark.pedantic(run, rounds=30, iterations=1, warmup_rounds=2)
    assert report.verdicts["cloudpickle"] == "ok", str(report)
    if benchmark.stats is not None:
        medians[case] = benchmark.stats.stats.median
