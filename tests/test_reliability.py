"""Never hang, never lose a finished result, leave nothing running.

Deadlines (``task_timeout``), partial results before a failure, Ctrl-C and
``terminate()`` mid-map, and a count of processes, file descriptors, threads
and ``/dev/shm`` entries across hundreds of pool lifetimes. Everything that can
differ per transport or start method runs over all of them (``combo``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import psutil
import pytest

from parallelpickle import Pool, PoolClosedError, TaskTimeoutError, WorkerCrashedError

from . import faults, helpers

LIMIT_S = 2.0
ROOT = str(Path(__file__).resolve().parents[1])


def _gone(pid: int) -> bool:
    """Exited and reaped (a zombie counts as still there)."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


def _wait_gone(pids: list[int], limit: float = LIMIT_S) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.02)
    return all(_gone(p) for p in pids)


def _running_pids(pool: Pool, fn: Callable[[Any], Any], n: int) -> list[int]:
    """Pids of ``n`` distinct workers, found by asking them."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < n and time.monotonic() < deadline:
        seen.update(pool.map(fn, range(4 * n), chunksize=1))
    assert len(seen) >= n
    return sorted(seen)


# -- task_timeout -------------------------------------------------------------
def test_task_timeout_kills_the_task_and_the_rest_complete(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(2, task_timeout=0.5)
    delays = [0.01, 30.0, 0.01, 0.02, 0.01]
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        pool.map(helpers.sleep_return, delays)
    assert time.monotonic() - started < 0.5 + LIMIT_S
    assert info.value.index == 1
    assert "item 1" in str(info.value) and "task_timeout=0.5" in str(info.value)

    # Submitted one by one, the others finish with their values.
    futures = [pool.submit(helpers.sleep_return, d) for d in delays]
    _done, not_done = wait(futures, timeout=0.5 + 2 * LIMIT_S)
    assert not not_done
    assert isinstance(futures[1].exception(), TaskTimeoutError)
    assert [f.result() for i, f in enumerate(futures) if i != 1] == [d for i, d in enumerate(delays) if i != 1]
    # The killed worker was replaced.
    assert pool.map(helpers.inc, range(4)) == [1, 2, 3, 4]


def test_imap_unordered_with_timeout_delivers_the_others(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(2, task_timeout=0.5)
    got: list[float] = []
    with pytest.raises(TaskTimeoutError) as info:
        for value in pool.imap_unordered(helpers.sleep_return, [30.0, 0.01, 0.02, 0.03]):
            got.append(value)
    assert info.value.index == 0
    assert sorted(got) == [0.01, 0.02, 0.03]


# -- results that finished before a failure ----------------------------------
@pytest.mark.parametrize("how", ["raise", "exit"])
def test_imap_delivers_everything_before_the_failure(pool: Pool, how: str) -> None:
    items = [(0.0, "none")] * 5 + [(0.0, how)] + [(0.0, "none")] * 4
    got: list[float] = []
    expected = faults.InjectedError if how == "raise" else WorkerCrashedError
    with pytest.raises(expected) as info:
        for value in pool.imap(faults.sleep_then, items, chunksize=1):
            got.append(value)
    assert len(got) == 5
    assert getattr(info.value, "index", 5) == 5


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_imap_unordered_delivers_the_rest_before_a_slow_failure(pool: Pool, how: str) -> None:
    items = [(0.6, how)] + [(0.0, "none")] * 9
    got: list[float] = []
    expected = faults.InjectedError if how == "raise" else WorkerCrashedError
    with pytest.raises(expected):
        for value in pool.imap_unordered(faults.sleep_then, items, chunksize=1):
            got.append(value)
    # Every fast item finished before the failure, except that a worker holds
    # one chunk queued behind the one it runs: that one may still be waiting.
    assert got in ([0.0] * 9, [0.0] * 8)


# -- terminate and Ctrl-C ------------------------------------------------------
def test_terminate_mid_map_leaves_no_worker(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(2)
    pids = _running_pids(pool, helpers.pid, 2)
    result: dict[str, BaseException] = {}

    def run() -> None:
        try:
            pool.map(helpers.sleep_return, [30.0] * 4, chunksize=1)
        except BaseException as exc:
            result["exc"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    pool.terminate()
    assert _wait_gone(pids), "a worker outlived terminate()"
    assert time.monotonic() - started < LIMIT_S
    thread.join(LIMIT_S)
    assert not thread.is_alive()
    assert isinstance(result.get("exc"), PoolClosedError)


INTERRUPT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    import psutil
    from parallelpickle import Pool
    from tests import helpers

    if __name__ == "__main__":
        me = psutil.Process()
        try:
            with Pool(2, transport=sys.argv[1], start_method=sys.argv[2]) as pool:
                pids = sorted(set(pool.map(helpers.pid, range(40), chunksize=1)))
                print(json.dumps(pids), flush=True)
                pool.map(helpers.sleep_return, [30.0] * 4, chunksize=1)
        except KeyboardInterrupt:
            interrupted = time.monotonic()
            while time.monotonic() - interrupted < 2.0:
                alive = [p.pid for p in me.children() if p.pid in pids]
                if not alive:
                    break
                time.sleep(0.02)
            print(json.dumps({{"alive": alive, "seconds": time.monotonic() - interrupted}}), flush=True)
            time.sleep(0.5)  # still running: nobody may rely on the parent's exit
    """
)


def test_keyboard_interrupt_mid_map_stops_every_worker(tmp_path: Path, combo: tuple[str, str]) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPT_SCRIPT.format(root=ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(script), *combo], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        pids = json.loads(proc.stdout.readline())
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        report = json.loads(line)
        assert report["alive"] == [], "workers still running after Ctrl-C"
        assert report["seconds"] < LIMIT_S
        assert proc.wait(timeout=30) == 0
        assert all(_gone(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()


# -- leaks ---------------------------------------------------------------------
def _shm_entries() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return set()


def _resources() -> dict[str, Any]:
    me = psutil.Process()
    return {
        "children": sorted(p.pid for p in me.children(recursive=True)),
        "fds": me.num_fds(),
        "threads": threading.active_count(),
        "shm": _shm_entries(),
    }


def _leaks(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """What changed; for /dev/shm only entries that appeared (other programs may remove theirs)."""
    leaked = {key: (before[key], now[key]) for key in ("children", "fds", "threads") if now[key] != before[key]}
    if now["shm"] - before["shm"]:
        leaked["shm"] = sorted(now["shm"] - before["shm"])
    return leaked


def _one_lifetime(i: int, transport: str, start_method: str) -> None:
    """Create, use and close a pool; every fifth one loses a worker mid-call."""
    with Pool(2, transport=transport, start_method=start_method) as pool:
        assert pool.map(helpers.inc, range(8)) == list(range(1, 9))
        if i % 5 == 0:
            with pytest.raises(WorkerCrashedError):
                pool.map(faults.call_and_do, ["none", "exit", "none"], chunksize=1)
        if i % 7 == 0:
            pool.submit(helpers.sleep_return, 0.01).result()


def _assert_nothing_leaked(before: dict[str, Any]) -> None:
    """Give finishing threads and reaped children a moment, then compare."""
    deadline = time.monotonic() + 10
    leaked = _leaks(before, _resources())
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = _leaks(before, _resources())
    assert not leaked, f"resources left behind (before, after): {leaked}"


def test_500_lifetimes_leak_nothing() -> None:
    transports = ["pickle", "auto", "cloudpickle", "dill"]
    for transport in transports:  # imports, and each library's one shared-memory heap arena
        _one_lifetime(1, transport, "fork")
    before = _resources()
    for i in range(500):
        _one_lifetime(i, transports[i % 4], "fork")
    _assert_nothing_leaked(before)


def test_lifetimes_leak_nothing_on_every_combo(combo: tuple[str, str]) -> None:
    _one_lifetime(1, *combo)  # a forkserver and a resource tracker may start once
    before = _resources()
    for i in range(6):
        _one_lifetime(i, *combo)
    _assert_nothing_leaked(before)
