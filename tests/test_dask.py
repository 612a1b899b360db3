"""``Pool(backend="dask")`` on a real dask.distributed cluster on loopback.

One LocalCluster serves the module: the pool that owns it (``owned``) and one
pool per transport that connects to its scheduler by address. Tests that
start their own cluster or scheduler do so only to watch it being stopped
(or left alone).
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

if importlib.util.find_spec("distributed") is None:
    pytest.skip("backend='dask' needs the [dask] extra (dask.distributed is not installed)", allow_module_level=True)
# Not imported here: importing dask makes every exception and traceback picklable
# process-wide (it installs tblib's reducers), which would change what the other
# test modules observe as soon as pytest collects this one. The first dask pool
# imports it, when this module's tests run.

from parallelpickle import Pool, SerializationError, WorkerCrashedError
from parallelpickle._errors import RemoteTraceback

from . import faults, helpers

TRANSPORTS: list[Any] = ["pickle", "dill", "cloudpickle", "auto", helpers.UPPER]
IDS = ["pickle", "dill", "cloudpickle", "auto", "custom"]
WAIT_S = 120.0  # generous: the machine is shared; nothing here should come near it
ROOT = Path(__file__).resolve().parent.parent
_NO_FORK = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _children() -> set[int]:
    """Child processes, less multiprocessing's resource tracker (one per process, kept for good)."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if not any("resource_tracker" in part for part in child.cmdline()):
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    return alive


@pytest.fixture(scope="module")
def owned() -> Iterator[Pool]:
    """The pool that starts (and stops) the module's LocalCluster."""
    pool = Pool(2, backend="dask", transport="auto")
    yield pool
    pids = pool._engine.worker_pids()  # type: ignore[union-attr]  # after any restarts
    pool.terminate()
    assert _wait_gone(pids) == [], "the LocalCluster's worker processes outlived the pool"


@pytest.fixture(scope="module")
def address(owned: Pool) -> str:
    addr: str = owned._engine._cluster.scheduler_address  # type: ignore[union-attr, attr-defined]
    return addr


@pytest.fixture(scope="module")
def by_address() -> Iterator[dict[str, Pool]]:
    made: dict[str, Pool] = {}
    yield made
    for pool in made.values():
        pool.terminate()


@pytest.fixture(params=TRANSPORTS, ids=IDS)
def dpool(request: pytest.FixtureRequest, by_address: dict[str, Pool], address: str) -> Pool:
    """A pool per transport on the shared cluster, connected by its address."""
    transport = request.param
    name = transport if isinstance(transport, str) else transport.name
    if name not in by_address:
        by_address[name] = Pool(backend="dask", address=address, transport=transport)
    return by_address[name]


# -- the API ------------------------------------------------------------------
def test_api_like_the_process_pool(dpool: Pool) -> None:
    assert dpool.workers == 2  # the cluster's threads, read from the scheduler
    assert dpool.map(helpers.square, range(50)) == [x * x for x in range(50)]
    assert dpool.map(helpers.add, range(5), range(10, 15)) == [a + b for a, b in zip(range(5), range(10, 15))]
    assert list(dpool.imap(helpers.inc, (x for x in range(40)))) == list(range(1, 41))
    assert sorted(dpool.imap_unordered(helpers.square, range(30), chunksize=4)) == [x * x for x in range(30)]
    assert dpool.starmap(helpers.add, [(1, 2), (3, 4)]) == [3, 7]
    future = dpool.submit(helpers.kwargs_echo, 1, k=2)
    assert future.result(timeout=WAIT_S) == ((1,), {"k": 2})
    assert dpool.map(helpers.inc, []) == []
    stats = dpool.stats
    assert stats.tasks >= 50 and stats.bytes_sent > 0 and stats.bytes_received > 0


def test_transport_keeps_its_meaning(dpool: Pool) -> None:
    """Dask's cloudpickle sees only bytes: the pool's transport decides what can go."""
    offset = 10
    fn: Callable[[int], int] = lambda x: x + offset  # noqa: E731 - a lambda with a closure is the point
    if dpool.transport in ("pickle", "upper"):
        before = dpool.stats
        with pytest.raises(SerializationError) as on_dask:
            dpool.map(fn, range(3))
        assert dpool.stats.tasks == before.tasks  # refused before anything was submitted
        # forkserver: this process runs Dask's threads, and fork() from a threaded process is unsafe.
        local = Pool(1, transport=dpool._codec.transport, start_method=_NO_FORK)
        with local, pytest.raises(SerializationError) as on_processes:
            local.map(fn, range(3))
        assert str(on_dask.value) == str(on_processes.value)
        assert "lambda" in str(on_dask.value)
    else:
        assert dpool.map(fn, range(3)) == [10, 11, 12]


def test_worker_exception_has_type_traceback_and_index(dpool: Pool) -> None:
    with pytest.raises(ValueError, match="bad item 3") as caught:
        dpool.map(helpers.fail_on, range(10), chunksize=4)
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "fail_on" in str(caught.value.__cause__)
    assert any("item 3" in note for note in caught.value.__notes__)
    exc = dpool.submit(helpers.raise_key_error, 7).exception(timeout=WAIT_S)
    assert isinstance(exc, KeyError)
    assert isinstance(exc.__cause__, RemoteTraceback)


def test_serialization_failures_name_the_item(dpool: Pool) -> None:
    with pytest.raises(SerializationError) as on_dump:
        dpool.map(faults.identity, [1, (x for x in ()), 3])
    assert on_dump.value.index == 1 or any("item 1" in n for n in on_dump.value.__notes__)
    with pytest.raises(SerializationError) as on_load:  # fails while the Dask worker loads it
        dpool.map(faults.identity, [1, faults.AtLoad("raise"), 3], chunksize=3)
    assert any("item 1" in n for n in on_load.value.__notes__)
    assert dpool.map(helpers.inc, [1, 2]) == [2, 3]  # the pool is still usable


def test_closing_imap_cancels_the_rest(owned: Pool) -> None:
    results = owned.imap(helpers.sleep_return, [0.2] * 40, chunksize=1)
    assert next(results) == 0.2
    results.close()
    owned.map(helpers.inc, [0], timeout=WAIT_S)  # the engine has seen the cancel (commands run in order)
    sent = owned.stats.tasks
    assert owned.map(helpers.inc, range(3), timeout=WAIT_S) == [1, 2, 3]
    assert owned.stats.tasks == sent + 3  # nothing more of the closed iterator was sent
    assert owned._engine._running == {}  # type: ignore[union-attr]  # its Dask futures were cancelled


def test_large_chunks_are_scattered_not_put_in_the_graph(owned: Pool) -> None:
    blob = b"x" * (2 << 20)  # over the 1 MiB scatter threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Dask warns about large task graphs
        assert owned.map(len, [blob, blob[:10], blob], chunksize=1, timeout=WAIT_S) == [2 << 20, 10, 2 << 20]


@pytest.mark.parametrize("transport", TRANSPORTS, ids=IDS)
def test_initializer_runs_in_every_worker(address: str, transport: Any) -> None:
    name = transport if isinstance(transport, str) else transport.name
    init = Pool(backend="dask", address=address, transport=transport, initializer=helpers.set_state, initargs=(name,))
    with init:
        assert init.map(helpers.get_state, range(8), chunksize=1) == [name] * 8


@pytest.mark.parametrize("own", [False, True], ids=["by-address", "own-cluster"])
def test_raising_initializer_breaks_the_pool(address: str, own: bool) -> None:
    before = _children()
    where = {} if own else {"address": address}
    with Pool(1, backend="dask", initializer=faults.raising_initializer, **where) as pool:
        with pytest.raises(WorkerCrashedError) as info:
            pool.submit(faults.identity, 1)
        original = info.value.__cause__
        assert isinstance(original, faults.InjectedError)
        assert isinstance(original.__cause__, RemoteTraceback)
        assert "initializer refused" in str(original)
    pool.join()
    assert _wait_gone(list(_children() - before)) == []


# -- the cluster: owned, or somebody else's -------------------------------------
@pytest.mark.parametrize("end", ["with", "shutdown", "close_join", "terminate"])
def test_owned_cluster_ends_with_the_pool(end: str) -> None:
    before = _children()
    pool = Pool(1, backend="dask", transport="cloudpickle", initializer=helpers.set_state, initargs=("own",))
    pids = pool._engine.worker_pids()  # type: ignore[union-attr]
    assert len(pids) == 1 and set(pids) <= _children()
    if end == "with":
        with pool:
            assert pool.map(helpers.get_state, [1, 2]) == ["own", "own"]
    elif end == "shutdown":
        pool.submit(helpers.sleep_return, 0.1)
        pool.shutdown(wait=True)
    elif end == "close_join":
        results = pool.imap(helpers.sleep_return, [0.05] * 4, chunksize=1)
        pool.close()  # work already given still finishes
        assert list(results) == [0.05] * 4
        pool.join()
    else:
        future = pool.submit(helpers.sleep_return, 30)
        pool.terminate()
        assert future.exception(timeout=WAIT_S) is not None
    assert _wait_gone(pids) == []
    assert _children() - before == set()


def test_pool_by_address_leaves_the_cluster_running(owned: Pool, address: str) -> None:
    workers = owned._engine.worker_pids()  # type: ignore[union-attr]
    with Pool(backend="dask", address=address, transport="cloudpickle") as pool:
        assert pool.map(lambda x: -x, [1, 2]) == [-1, -2]
    pool.join()
    assert owned.map(helpers.inc, [1, 2]) == [2, 3]
    assert owned._engine.worker_pids() == workers  # type: ignore[union-attr]


def test_scheduler_and_worker_started_by_hand(tmp_path: Path) -> None:
    """The README's recipe: `dask scheduler`, `dask worker tcp://…`, then Pool(address=…)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    sched_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    dask_cli = [sys.executable, "-m", "dask"]
    scheduler = subprocess.Popen(
        [*dask_cli, "scheduler", "--port", "0", "--scheduler-file", str(sched_file), *common],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline and scheduler.poll() is None:
            time.sleep(0.05)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [*dask_cli, "worker", address, "--nworkers", "1", "--nthreads", "1", *common],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with Pool(1, backend="dask", address=address, transport="cloudpickle") as pool:
            assert pool.map(lambda x: x * 2, range(5), timeout=WAIT_S) == [0, 2, 4, 6, 8]
        pool.join()
        assert scheduler.poll() is None and worker.poll() is None  # the pool never stops them
        # Losing the scheduler fails the call in progress; nothing waits forever.
        lost = Pool(1, backend="dask", address=address, transport="cloudpickle")
        results = lost.imap(helpers.sleep_return, [0.1] * 100, chunksize=1)
        assert next(results) == 0.1
        scheduler.kill()
        scheduler.wait()
        with pytest.raises(WorkerCrashedError, match="cancelled"):
            list(results)
        lost.terminate()
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
        for proc in (worker, scheduler):
            if proc is not None:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_unguarded_script_fails_with_a_hint(tmp_path: Path) -> None:
    """Dask spawns its workers: a script that makes a pool at import time must not hang."""
    script = tmp_path / "unguarded.py"
    script.write_text("from parallelpickle import Pool\nPool(1, backend='dask').map(abs, [-1])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode != 0
    assert "WorkerCrashedError" in done.stderr
    assert "if __name__ == '__main__':" in done.stderr


# -- crashes ----------------------------------------------------------------------
def test_worker_killed_mid_task_names_the_item(owned: Pool) -> None:
    items = ["none"] * 5 + ["sigkill"] + ["none"] * 2
    with pytest.raises(WorkerCrashedError) as caught:
        owned.map(faults.call_and_do, items, chunksize=4, timeout=WAIT_S)
    assert caught.value.index == 5
    assert any("item 5" in note for note in caught.value.__notes__)
    exc = owned.submit(faults.call_and_do, "exit").exception(timeout=WAIT_S)
    assert isinstance(exc, WorkerCrashedError)
    assert owned.map(helpers.square, range(10), timeout=WAIT_S) == [x * x for x in range(10)]


def test_worker_killed_once_is_retried_by_dask(owned: Pool, tmp_path: Path) -> None:
    """Dask's documented retry (allowed_failures): a task whose first worker died runs again."""
    marker = tmp_path / "died-once"

    def die_first_time(x: int) -> int:
        if x == 2 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return x * 10

    assert owned.map(die_first_time, range(4), chunksize=4, timeout=WAIT_S) == [0, 10, 20, 30]
    assert marker.exists()


# -- bad input ------------------------------------------------------------------
BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"address": 8786}, TypeError, "address"),
    ({"address": "127.0.0.1:8786"}, ValueError, "address"),
    ({"address": "tcp://127.0.0.1"}, ValueError, "address"),
    ({"address": "tcp://127.0.0.1:99999"}, ValueError, "address"),
    ({"address": "tcp://host:80/path"}, ValueError, "address"),
    ({"start_method": "spawn"}, ValueError, "start_method"),
    ({"task_timeout": 5}, ValueError, "task_timeout"),
    ({"max_tasks_per_child": 3}, ValueError, "max_tasks_per_child"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"), BAD, ids=[f"{next(iter(k))}={next(iter(k.values()))!r}" for k, _, _ in BAD]
)
def test_bad_arguments_fail_before_anything_starts(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    before = _children()
    with pytest.raises(error, match=name):
        Pool(2, backend="dask", **kwargs)
    assert _children() == before


def test_address_needs_the_dask_backend() -> None:
    with pytest.raises(ValueError, match="address"):
        Pool(2, address="tcp://127.0.0.1:8786")


def test_missing_distributed_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"parallelpickle\[dask\]"):
        Pool(2, backend="dask")
