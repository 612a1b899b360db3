"""Fast-path goals P1-P3 (issue: lambdas and closures at stdlib-pickle speed).

All pools are started once per module (warm, 2 workers, fork) and measured side
by side in one run; the ratios of medians are printed at the end::

    pytest benchmarks/test_fastpath.py --benchmark-enable

P1  Pool(transport="auto").map(lambda x: x + 1, range(100_000))
    / multiprocessing.Pool.map(module_inc, range(100_000))           goal <= 1.25
P2  pathos ProcessPool().map(same lambda) / ours                      goal >= 10
P3  transport "pickle" / raw multiprocessing.Pool.map                 goal <= 1.10
    transport "dill"   / raw pathos ProcessPool.map                   goal <= 1.10
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from parallelpickle import Pool

N = 100_000
WORKERS = 2
ITEMS = range(N)


def module_inc(x: int) -> int:
    return x + 1


LAMBDA: Callable[[int], int] = lambda x: x + 1  # noqa: E731 - the point of the benchmark

GOALS = [
    ("P1", "auto_lambda", "stdlib_module_fn", "<=", 1.25),
    ("P2", "pathos_lambda", "auto_lambda", ">=", 10.0),
    ("P3", "pickle_module_fn", "stdlib_module_fn", "<=", 1.10),
    ("P3", "dill_lambda", "pathos_lambda", "<=", 1.10),
]


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[str, Any]]:
    from pathos.pools import ProcessPool

    ctx = multiprocessing.get_context("fork")
    stdlib = ctx.Pool(WORKERS)
    pathos = ProcessPool(nodes=WORKERS)
    ours = {name: Pool(WORKERS, transport=name, start_method="fork") for name in ("auto", "pickle", "dill")}
    yield {"stdlib": stdlib, "pathos": pathos, **ours}
    stdlib.terminate()
    pathos.close()
    pathos.join()
    pathos.clear()  # pathos keeps pools in a hidden module-level cache
    for pool in ours.values():
        pool.terminate()


def report(write: Callable[[str], None], found: dict[str, float]) -> None:
    write(f"fast-path ratios (medians, {N} items, {WORKERS} workers):")
    for goal, num, den, op, limit in GOALS:
        if num in found and den in found:
            ratio = found[num] / found[den]
            ok = ratio <= limit if op == "<=" else ratio >= limit
            write(
                f"  {goal}: {num} / {den} = {found[num] * 1e3:.1f} ms / {found[den] * 1e3:.1f} ms"
                f" = {ratio:.2f}  (goal {op} {limit}: {'met' if ok else 'MISSED'})"
            )


CASES: dict[str, Callable[[dict[str, Any]], object]] = {
    "stdlib_module_fn": lambda p: p["stdlib"].map(module_inc, ITEMS),
    "auto_lambda": lambda p: p["auto"].map(LAMBDA, ITEMS),
    "pickle_module_fn": lambda p: p["pickle"].map(module_inc, ITEMS),
    "pathos_lambda": lambda p: p["pathos"].map(LAMBDA, ITEMS),
    "dill_lambda": lambda p: p["dill"].map(LAMBDA, ITEMS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_map_100k_tiny_tasks(benchmark: Any, pools: dict[str, Any], medians: dict[str, float], case: str) -> None:
    run = CASES[case]
    benchmark.group = "fast path: map of 100k x+1"
    rounds = 5 if "pathos" in case or "dill" in case else 20
    result = benchmark.pedantic(run, args=(pools,), rounds=rounds, iterations=1, warmup_rounds=1)
    assert list(result) == [x + 1 for x in ITEMS]  # type: ignore[call-overload]
    if benchmark.stats is not None:
        medians[case] = benchmark.stats.stats.median
