"""Fault injection: every stage of a task's trip x every way to fail.

Stages: dump the task (parent), load it (worker), the call (worker), dump the
result (worker), load the result (parent). Ways: raise, ``os._exit(3)``,
SIGKILL, segfault. Each case must end within 2 s in a specific exception and
leave the pool usable; run over every transport x start method (``combo``).
A parent that itself exits or dies mid-call takes its workers with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from parallelpickle import Pool, SerializationError, WorkerCrashedError
from parallelpickle._errors import RemoteTraceback

from . import faults

LIMIT_S = 2.0


@pytest.fixture
def fault_pool(pools: dict[tuple[str, str], Pool], combo: tuple[str, str]) -> Pool:
    """One pool per combo for the whole table: it must survive every case."""
    if combo not in pools:
        pools[combo] = Pool(2, transport=combo[0], start_method=combo[1])
    return pools[combo]


def _expected(stage: str, how: str) -> type[BaseException]:
    if how != "raise":
        return WorkerCrashedError
    return faults.InjectedError if stage == "call" else SerializationError


WORKER_CASES: dict[str, Callable[[Pool, str], Any]] = {
    "load": lambda pool, how: pool.map(faults.identity, [1, faults.AtLoad(how), 3], chunksize=3),
    "call": lambda pool, how: pool.map(faults.call_and_do, ["none", how, "none"], chunksize=3),
    "dump_result": lambda pool, how: pool.map(faults.return_at_dump, ["none", how], chunksize=2),
}


@pytest.mark.parametrize("how", faults.HOWS)
@pytest.mark.parametrize("stage", list(WORKER_CASES))
def test_worker_side_faults(fault_pool: Pool, stage: str, how: str) -> None:
    replaced = fault_pool.stats.workers_replaced
    started = time.monotonic()
    with pytest.raises(_expected(stage, how)) as info:
        WORKER_CASES[stage](fault_pool, how)
    assert time.monotonic() - started < LIMIT_S
    exc = info.value
    if isinstance(exc, WorkerCrashedError):
        assert exc.index == 1
        assert {"exit": "exit code 3", "sigkill": "SIGKILL", "segfault": "SIGSEGV"}[how] in str(exc)
    if stage == "call" and how == "raise":
        assert isinstance(exc.__cause__, RemoteTraceback)
    # The pool replaced what died and goes on.
    started = time.monotonic()
    assert fault_pool.map(faults.identity, range(6)) == list(range(6))
    assert time.monotonic() - started < LIMIT_S
    # Exactly the workers that died were replaced: the chunk's crash, then the same
    # item's crash when it is re-run alone. A live worker is never taken for dead.
    assert fault_pool.stats.workers_replaced - replaced == (0 if how == "raise" else 2)


def test_parent_side_raise(fault_pool: Pool) -> None:
    with pytest.raises(SerializationError) as info:
        fault_pool.map(faults.identity, [1, faults.AtDump("raise"), 3])
    assert info.value.index is None or info.value.index == 1
    assert "item 1" in str(info.value) or any("item 1" in n for n in getattr(info.value, "__notes__", []))
    with pytest.raises(SerializationError):
        fault_pool.map(faults.return_at_load, ["raise"])
    assert fault_pool.map(faults.identity, [1, 2]) == [1, 2]


def test_memory_error_and_unloadable_exception(fault_pool: Pool) -> None:
    with pytest.raises(MemoryError):
        fault_pool.map(faults.memory_error, [1])
    with pytest.raises(SerializationError, match="cannot be loaded"):
        fault_pool.map(faults.raise_unloadable, [1])
    assert fault_pool.map(faults.identity, [1, 2]) == [1, 2]


def test_raising_initializer(combo: tuple[str, str]) -> None:
    started = time.monotonic()
    with Pool(2, transport=combo[0], start_method=combo[1], initializer=faults.raising_initializer) as pool:
        # Whether the call comes before or after the workers fail, it raises, and
        # the initializer's own exception (with its remote traceback) is visible.
        for _ in range(2):
            with pytest.raises((faults.InjectedError, WorkerCrashedError)) as info:
                pool.submit(faults.identity, 1).result(timeout=LIMIT_S)
            exc = info.value
            original = exc if isinstance(exc, faults.InjectedError) else exc.__cause__
            assert isinstance(original, faults.InjectedError), exc
            assert isinstance(original.__cause__, RemoteTraceback)
            assert "initializer refused" in str(original)
    assert time.monotonic() - started < 2 * LIMIT_S


PARENT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {root!r})
    from parallelpickle import Pool
    from tests import faults

    if __name__ == "__main__":
        pool = Pool(2, transport=sys.argv[1], start_method=sys.argv[2])
        pids = sorted(set(pool.map(faults.getpid, range(40), chunksize=1)))
        print(json.dumps(pids), flush=True)
        if sys.argv[3] == "dump":
            pool.map(faults.identity, [faults.AtDump(sys.argv[4])])
        else:
            pool.map(faults.return_at_load, [sys.argv[4]])
    """
)

EXIT_CODES = {"exit": 3, "sigkill": -signal.SIGKILL, "segfault": -signal.SIGSEGV}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("how", ["exit", "sigkill", "segfault"])
@pytest.mark.parametrize("stage", ["dump", "load_result"])
def test_parent_dies_mid_call_takes_workers_along(tmp_path: Path, combo: tuple[str, str], stage: str, how: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT.format(root=str(Path(__file__).resolve().parents[1])))
    proc = subprocess.Popen(
        [sys.executable, str(script), combo[0], combo[1], stage, how],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    pids = json.loads(proc.stdout.readline())
    assert len(pids) >= 1 and os.getpid() not in pids
    assert proc.wait(timeout=30) == EXIT_CODES[how]
    deadline = time.monotonic() + LIMIT_S
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids), "workers outlived their parent"


EARLY_DEATH_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {root!r})
    from parallelpickle import Pool

    if __name__ == "__main__":
        pool = Pool(2, transport=sys.argv[1], start_method=sys.argv[2])
        print(json.dumps(pool._engine.worker_pids()), flush=True)
        os._exit(0)  # before the workers have even finished starting
    """
)


def test_parent_dies_while_workers_start(tmp_path: Path, combo: tuple[str, str]) -> None:
    # A spawned worker that finds itself orphaned before its watch begins must
    # still notice (it watches the pool's process, not only its parent pid).
    script = tmp_path / "early.py"
    script.write_text(EARLY_DEATH_SCRIPT.format(root=str(Path(__file__).resolve().parents[1])))
    out = subprocess.run(
        [sys.executable, str(script), *combo], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    pids = json.loads(out)
    assert len(pids) == 2
    deadline = time.monotonic() + 30  # a spawned worker first imports everything
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids), "workers outlived a parent that died while they started"


UNGUARDED_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from parallelpickle import Pool, WorkerCrashedError

    # No `if __name__ == "__main__":` guard: under spawn and forkserver every
    # worker re-runs this file and dies creating a pool while bootstrapping.
    try:
        Pool(2, transport=sys.argv[1], start_method=sys.argv[2]).map(abs, range(10))
    except WorkerCrashedError as exc:
        print("CRASHED", exc, flush=True)
    """
)


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_that_die_while_starting_break_the_pool_instead_of_respawning(
    tmp_path: Path, start_method: str
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT.format(root=str(Path(__file__).resolve().parents[1])))
    out = subprocess.run(
        [sys.executable, str(script), "pickle", start_method], capture_output=True, text=True, timeout=60
    ).stdout
    assert "CRASHED" in out
    assert "__name__ == '__main__'" in out
