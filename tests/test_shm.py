"""Large buffers out of band through shared memory, over every transport x start method.

Results must equal the in-band path for every dtype and layout, the bytes
must really leave the pipe, ``pool.share`` must load once per worker, and no
``/dev/shm`` entry may outlive a pool: after worker crashes, ``terminate()``,
Ctrl-C, interpreter exit, or a parent killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parallelpickle import Pool, SerializationError, WorkerCrashedError

from . import faults, shm_helpers

ROOT = str(Path(__file__).resolve().parents[1])
THRESHOLD = 4096  # small, so that small arrays exercise the out-of-band path
N = 20_000  # elements: every array below is above THRESHOLD unless it is meant not to be

pytestmark = pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm to count segments")


def ours(pid: int | None = None) -> list[str]:
    """This process's segments (or ``pid``'s)."""
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"pp_{pid or os.getpid()}_"))


def prefix_of(pool: Pool) -> str:
    shm = pool._engine.shm  # type: ignore[union-attr]
    assert shm is not None
    return str(shm.cfg.prefix)


def left(prefix: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]


@pytest.fixture(scope="module", autouse=True)
def no_segment_left() -> Iterator[None]:
    """Set up before the module's ``pools`` (conftest), so checked after they are terminated."""
    yield
    assert ours() == []


@pytest.fixture
def shm_pool(pools: dict[tuple[str, str], Pool], combo: tuple[str, str]) -> Pool:
    if combo not in pools:
        pools[combo] = Pool(2, transport=combo[0], start_method=combo[1], shm_threshold=THRESHOLD)
    return pools[combo]


def _arrays() -> list[Any]:
    base = np.arange(N)
    out: list[Any] = [base.astype(t) for t in np.typecodes["All"] if t not in "OMmVSUa"]
    out += [
        base.astype("datetime64[ns]"),
        base.astype("timedelta64[s]"),
        base.astype("S8"),
        base.astype("U6"),
        np.zeros(N, dtype=[("a", "<i4"), ("b", ">f8"), ("c", "S3")]),
        np.asfortranarray(base.reshape(100, -1).astype(np.float32)),  # Fortran order
        base.reshape(100, -1)[:, ::3],  # non-contiguous view: in-band copy
        base[::-1],
        base.reshape(100, -1).T,  # Fortran-contiguous view
        np.zeros((0, 5)),  # zero-size
        np.array(5.0),  # 0-d
        np.array([{"k": i} for i in range(50)], dtype=object),  # object dtype: in-band
        np.arange(N, dtype=">i8"),  # non-native byte order
    ]
    return out


def test_arrays_equal_in_band_results(shm_pool: Pool) -> None:
    arrays = _arrays()
    expected = [shm_helpers.describe(pickle.loads(pickle.dumps(a, 5))) for a in arrays]
    # Arguments: what each task sees equals what an in-band load gives.
    assert shm_pool.map(shm_helpers.describe, arrays, chunksize=3) == expected
    # Results: arrays coming back equal the in-band round trip too, and are writeable.
    back = shm_pool.map(shm_helpers.identity, arrays, chunksize=4)
    assert [shm_helpers.describe(b) for b in back] == expected
    assert all(b.flags.writeable for b in back if b.size)


def test_buffers_leave_the_pipe(shm_pool: Pool) -> None:
    arrays = [np.random.default_rng(i).random(125_000) for i in range(4)]  # 1 MB each
    before = shm_pool.stats
    back = shm_pool.map(shm_helpers.identity, arrays, chunksize=1)
    after = shm_pool.stats
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back))
    assert after.bytes_sent - before.bytes_sent < 100_000
    assert after.bytes_received - before.bytes_received < 100_000


def test_any_pickle_buffer_goes_out_of_band(shm_pool: Pool) -> None:
    blobs = [shm_helpers.Blob(bytearray(os.urandom(300_000))) for _ in range(3)]
    before = shm_pool.stats.bytes_sent
    assert shm_pool.map(shm_helpers.identity, blobs) == blobs
    assert shm_pool.stats.bytes_sent - before < 100_000


def test_bytes_and_bytearray_nested_in_containers(shm_pool: Pool) -> None:
    big = bytes(range(256)) * 64
    items = [
        {"raw": big, "mutable": bytearray(big), "small": b"tiny"},
        [big, (bytearray(big), [big])],
        (np.arange(N), {"inner": [bytearray(b"x" * 5000)]}),
    ]
    back = shm_pool.map(shm_helpers.identity, items, chunksize=2)
    assert back[0] == items[0] and type(back[0]["mutable"]) is bytearray
    assert back[1] == items[1] and type(back[1][1][0]) is bytearray
    assert np.array_equal(back[2][0], items[2][0]) and back[2][1] == items[2][1]  # type: ignore[index]


def test_kept_argument_is_not_overwritten(shm_pool: Pool) -> None:
    arrays = [np.full(N, i, dtype=np.int64) for i in range(8)]
    # Every task keeps its argument in its worker; later tasks must not write over it.
    assert all(shm_pool.map(shm_helpers.keep_and_check, arrays, chunksize=1))
    assert all(shm_pool.map(shm_helpers.keep_and_check, arrays[::-1], chunksize=1))


def test_share_loads_once_per_worker_read_only(shm_pool: Pool) -> None:
    data = np.arange(3 * N, dtype=np.float64)
    handle = shm_pool.share(data)
    assert handle.value is data
    seen = shm_pool.map(shm_helpers.shared_view, [handle] * 12, chunksize=1)
    assert {s[3] for s in seen} == {float(data.sum())}
    assert not any(s[2] for s in seen), "shared arrays must be read-only"
    ids_by_pid: dict[int, set[int]] = {}
    for pid, ident, _, _ in seen:
        ids_by_pid.setdefault(pid, set()).add(ident)
    assert all(len(ids) == 1 for ids in ids_by_pid.values()), ids_by_pid
    # Inside a tuple (starmap) the task receives the object too.
    assert shm_pool.starmap(np.add, [(handle, 1.0)])[0][-1] == data[-1] + 1.0


def test_shm_threshold_is_checked_and_zero_turns_it_off() -> None:
    with pytest.raises(TypeError, match="shm_threshold"):
        Pool(1, shm_threshold="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shm_threshold"):
        Pool(1, shm_threshold=-1)
    with Pool(1, shm_threshold=0) as pool:
        before = pool.stats.bytes_sent
        assert pool.map(shm_helpers.total, [np.ones(125_000)]) == [125_000.0]
        assert pool.stats.bytes_sent - before > 1_000_000


# -- cleanup -----------------------------------------------------------------------
FAULTS = [
    ("call", "raise", ValueError),
    ("call", "exit", WorkerCrashedError),
    ("call", "sigkill", WorkerCrashedError),
    ("dump_result", "raise", SerializationError),
    ("dump_result", "exit", WorkerCrashedError),
]


def test_no_segment_outlives_faults_or_the_pool(combo: tuple[str, str]) -> None:
    big = np.arange(N, dtype=np.float64)
    pool = Pool(2, transport=combo[0], start_method=combo[1], shm_threshold=THRESHOLD)
    try:
        for stage, how, expected in FAULTS:
            items = [(big, "none"), (big, how), (big, "none")]
            fn = shm_helpers.big_then if stage == "call" else shm_helpers.big_at_dump
            with pytest.raises(expected if how != "raise" or stage != "call" else faults.InjectedError):
                pool.map(fn, items, chunksize=1)
            # The pool still works, with big arguments and results.
            assert float(pool.map(shm_helpers.filled, [N])[0].sum()) == 7.0 * N
        pids = pool._engine.worker_pids()  # type: ignore[union-attr]
        workers = prefix_of(pool) + "w"
        alive = {n[len(workers) :].split("_")[0] for n in left(workers)}
        assert alive <= {str(p) for p in pids}, "segments of dead workers remain"
    finally:
        pool.terminate()
    assert left(prefix_of(pool)) == []


def test_terminate_mid_map_leaves_nothing(combo: tuple[str, str]) -> None:
    pool = Pool(2, transport=combo[0], start_method=combo[1], shm_threshold=THRESHOLD)
    results = pool.imap(shm_helpers.big_then, [(np.arange(N), "none")] * 50, chunksize=1)
    next(results)
    assert left(prefix_of(pool))
    pool.terminate()
    assert left(prefix_of(pool)) == []


SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    import numpy as np
    from parallelpickle import Pool
    from tests import shm_helpers

    if __name__ == "__main__":
        transport, method, ending = sys.argv[1:4]
        pool = Pool(2, transport=transport, start_method=method, shm_threshold=4096)
        pool.map(shm_helpers.total, [np.ones(20_000)] * 4)
        handle = pool.share(np.ones(20_000))
        seen = pool.map(shm_helpers.shared_view, [handle] * 4, chunksize=1)
        try:
            print(json.dumps(seen), flush=True)  # inside the try: Ctrl-C may follow at once
            if ending == "interrupt":
                pool.map(shm_helpers.big_then, [(np.ones(20_000), "none")] * 10**6, chunksize=1)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            pool = Pool(2, transport=transport, start_method=method, shm_threshold=4096)
            pool.map(shm_helpers.total, [np.ones(20_000)] * 4)
        if ending == "sigkill":
            os.kill(os.getpid(), 9)
        # "exit" and after the interrupt: leave without closing the pool
    """
)


def _run_script(tmp_path: Path, combo: tuple[str, str], ending: str) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "parent.py"
    script.write_text(SCRIPT.format(root=ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(script), combo[0], combo[1], ending],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, sorted({int(v[0]) for v in json.loads(line)})


def test_interrupt_and_interpreter_exit_leave_nothing(tmp_path: Path, combo: tuple[str, str]) -> None:
    proc, _ = _run_script(tmp_path, combo, "interrupt")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted" in out
    assert "resource_tracker" not in err and "leaked" not in err, err
    assert ours(proc.pid) == []


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_remove_segments_of_a_killed_parent(tmp_path: Path, method: str) -> None:
    proc, _ = _run_script(tmp_path, ("auto", method), "sigkill")
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while ours(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours(proc.pid) == []


def test_share_on_threads_carries_the_object() -> None:
    with Pool(2, backend="thread") as pool:
        data = np.arange(N)
        handle = pool.share(data)
        assert pool.map(shm_helpers.total, [handle] * 3) == [float(data.sum())] * 3


def test_shared_handle_loads_outside_a_worker(shm_pool: Pool) -> None:
    handle = shm_pool.share({"a": np.arange(N), "b": b"x" * 10_000})
    copy = pickle.loads(pickle.dumps(handle))
    assert np.array_equal(copy["a"], np.arange(N)) and copy["b"] == b"x" * 10_000


def test_no_replacement_workers_once_multiprocessing_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    """At interpreter exit multiprocessing kills daemon children, then joins every child:
    a worker started in between (to replace a killed one) would be joined forever."""
    import multiprocessing.util

    pool = Pool(2, transport="pickle", start_method="fork", shm_threshold=THRESHOLD)
    try:
        first, second = pool._engine.worker_pids()  # type: ignore[union-attr]
        monkeypatch.setattr(multiprocessing.util, "_exiting", True)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while first in pool._engine.worker_pids() and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.02)
        assert pool._engine.worker_pids() == [second]  # type: ignore[union-attr]
    finally:
        pool.terminate()
    assert left(prefix_of(pool)) == []


def test_full_shared_memory_falls_back_in_band(monkeypatch: pytest.MonkeyPatch) -> None:
    from parallelpickle import _shm

    def no_space(self: Any, name: str, size: int = 0, *, create: bool = False) -> None:
        raise OSError(28, "No space left on device")

    # Under fork the workers inherit the patch: both directions fall back.
    monkeypatch.setattr(_shm.Segment, "__init__", no_space)
    arrays = [np.arange(N) * i for i in range(4)]
    with Pool(2, transport="auto", start_method="fork", shm_threshold=THRESHOLD) as pool:
        back = pool.map(shm_helpers.identity, arrays, chunksize=1)
        assert pool.stats.bytes_sent > 4 * arrays[0].nbytes
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back))
