"""One fixture drives the shared suites over every transport x start method."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from parallelpickle import Pool

TRANSPORTS = ["pickle", "dill", "cloudpickle", "auto"]
START_METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]
COMBOS = [(t, m) for t in TRANSPORTS for m in START_METHODS]


@pytest.fixture(params=COMBOS, ids=[f"{t}-{m}" for t, m in COMBOS])
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(transport, start_method) — every behaviour test runs over all of them."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_pool(combo: tuple[str, str]) -> Iterator[Callable[..., Pool]]:
    """Build pools for the current combo; every pool is terminated afterwards."""
    transport, start_method = combo
    pools: list[Pool] = []

    def factory(workers: int = 2, **kwargs: Any) -> Pool:
        kwargs.setdefault("transport", transport)
        kwargs.setdefault("start_method", start_method)
        pool = Pool(workers, **kwargs)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.terminate()


@pytest.fixture
def pool(make_pool: Callable[..., Pool]) -> Pool:
    return make_pool()


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[tuple[str, str], Pool]]:
    """Pools kept for a whole module, keyed by (transport, start_method); terminated at its end."""
    made: dict[tuple[str, str], Pool] = {}
    yield made
    for pool in made.values():
        pool.terminate()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the dask tests last.

    Importing dask installs tblib's reducers for every exception class that
    exists at that moment, process-wide (and into every worker forked later):
    exceptions and tracebacks that do not pickle anywhere else start to. The
    tests of what does not pickle must not depend on whether dask came first.
    """
    items.sort(key=lambda item: item.path.name == "test_dask.py")  # stable: the rest keep their order
