"""What runs in a worker: load, call, dump — and the slot the parent watches.

Data flow for one chunk (one message each way)::

    parent ──TaskMsg──▶ worker: loads callable (cached by digest) and items
                                call fn on each item, in order, until one raises
    parent ◀─ResultMsg── worker: dumps results[0:n_ok] and the exception of item n_ok

The *slot* is a small shared int64 array the worker writes and the parent
reads: which stage (loading, calling, dumping), which chunk, which item, since
when. When a worker dies (``os._exit``, a signal, a segfault) or overruns
``task_timeout``, the parent reads the slot to name the item that was running;
no message from a dead process is needed.

``run_task`` is a pure function of the message, so other engines (threads,
dask) run the very same code.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._errors import RemoteError, RemoteTraceback, SerializationError
from ._shm import ShmConfig, ShmInfo, ShmTask, WorkerLink, pid_alive, remove_if_orphaned
from ._transports import Codec

# Slot layout: int64 fields.
STAGE, CHUNK, OFFSET, STARTED_NS, PID = range(5)
SLOT_SIZE = 5
# Stages.
IDLE, LOADING, CALLING, DUMPING, INITIALIZING = range(5)
STAGE_NAMES = {
    IDLE: "idle",
    LOADING: "loading the task",
    CALLING: "running",
    DUMPING: "sending back results",
    INITIALIZING: "running the initializer",
}

# Both sides keep this many callables; the parent mirrors the worker's LRU.
FN_CACHE_SIZE = 32

# How a task's items are passed to the callable.
CALL_ONE, CALL_STAR, CALL_KW = range(3)

# Kinds of error a result message can carry.
ERR_NONE, ERR_CALL, ERR_LOAD, ERR_DUMP = range(4)


class TaskMsg(NamedTuple):
    chunk_id: int
    digest: bytes
    fn_tag: str
    fn_bytes: bytes | None  # None: the worker already holds this digest
    data_tag: str
    data: bytes
    mode: int  # CALL_ONE: fn(x); CALL_STAR: fn(*x); CALL_KW: fn(*x[0], **x[1])
    shm: ShmInfo | None = None  # out-of-band buffers of ``data`` (see _shm)


class ResultMsg(NamedTuple):
    chunk_id: int
    res_tag: str
    results: bytes
    n_ok: int
    err_kind: int
    err_tag: str
    err: bytes
    loads_s: float
    dumps_s: float
    call_s: float
    shm: ShmInfo | None = None  # out-of-band buffers of ``results`` (see _shm)


class InitFailedMsg(NamedTuple):
    err_tag: str
    err: bytes


STOP = b"stop"


class _ExceptionWithTraceback:
    """Pickles an exception with its formatted traceback (CPython's pattern)."""

    def __init__(self, exc: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.exc = exc
        self.tb = f'\n"""\n{tb}"""'

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_exc, (self.exc, self.tb)


def _rebuild_exc(exc: BaseException, tb: str) -> BaseException:
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def dump_exception(codec: Codec, exc: BaseException) -> tuple[str, bytes]:
    """Serialize an exception with its traceback; substitute if it won't go."""
    wrapped = _ExceptionWithTraceback(exc)
    try:
        return codec.dumps_data(wrapped)
    except Exception as why:  # noqa: BLE001 - unpicklable exception: describe it
        stand_in = RemoteError(
            f"{type(exc).__module__}.{type(exc).__qualname__}",
            f"{exc} (the exception itself could not be serialized: {why})",
        )
        stand_in_wrapped = _ExceptionWithTraceback(stand_in)
        stand_in_wrapped.tb = wrapped.tb
        return "p", pickle.dumps(stand_in_wrapped, 5)


class FnCache:
    """Loaded callables by digest; a failed load is cached as its exception."""

    def __init__(self, size: int = FN_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[bytes, Any] = OrderedDict()

    def get(self, codec: Codec, msg: TaskMsg) -> Any:
        if msg.fn_bytes is None:
            value = self._items[msg.digest]
            self._items.move_to_end(msg.digest)
        else:
            try:
                value = codec.loads(msg.fn_tag, msg.fn_bytes)
            except BaseException as exc:  # noqa: BLE001 - cached, re-raised below
                value = _LoadFailure(exc)
            self._items[msg.digest] = value
            self._items.move_to_end(msg.digest)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        if isinstance(value, _LoadFailure):
            raise value.exc
        return value


class _LoadFailure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _call_items(
    fn: Callable[..., Any], items: Sequence[Any], mode: int, slot: Any, timed: bool
) -> tuple[list[Any], BaseException | None]:
    """Call ``fn`` on each item until one raises; results of the ones before it.

    The fast path runs the loop in C (``list.extend(map(...))`` keeps what it
    appended before an exception). It does not write the item offset to the
    slot, so when a worker dies in a chunk of several items the parent re-runs
    that chunk one item per task to name the culprit. With ``timed`` (the pool
    has a ``task_timeout``) every item's offset and start time are written.
    """
    out: list[Any] = []
    try:
        if timed:
            _call_tracked(fn, items, mode, slot, out)
        elif mode == CALL_ONE:
            out.extend(map(fn, items))
        elif mode == CALL_STAR:
            out.extend(itertools.starmap(fn, items))
        else:
            out.extend(fn(*args, **kwargs) for args, kwargs in items)
    except BaseException as exc:  # noqa: BLE001 - every failure goes home
        return out, exc
    return out, None


def _call_tracked(fn: Callable[..., Any], items: Sequence[Any], mode: int, slot: Any, out: list[Any]) -> None:
    append = out.append
    now = time.monotonic_ns
    for i, item in enumerate(items):
        slot[OFFSET] = i
        slot[STARTED_NS] = now()
        if mode == CALL_ONE:
            append(fn(item))
        elif mode == CALL_STAR:
            append(fn(*item))
        else:
            append(fn(*item[0], **item[1]))


def _dump_results(
    codec: Codec, results: list[Any], dump: Callable[[Any], tuple[str, bytes]]
) -> tuple[str, bytes, int, BaseException | None]:
    """Dump all results; on failure find the first result that will not go."""
    try:
        tag, data = dump(results)
        return tag, data, len(results), None
    except Exception:  # noqa: BLE001 - locate the culprit below
        pass
    for i, value in enumerate(results):
        try:
            codec.dumps_data(value)
        except Exception as exc:  # noqa: BLE001
            tag, data = dump(results[:i])
            return tag, data, i, exc
    raise SerializationError("results failed to serialize together but not one by one")


def run_task(
    msg: TaskMsg, codec: Codec, cache: FnCache, slot: Any, timed: bool, *, shm: WorkerLink | None = None
) -> ResultMsg:
    """Load, call and dump one chunk; never raises for the task's own errors."""
    if shm is None:
        return _run_task(msg, codec, cache, slot, timed, task=None)
    # Mapping the chunk's buffers is part of loading it: if that kills the
    # worker, the chunk fails instead of being retried on worker after worker.
    slot[CHUNK] = msg.chunk_id
    slot[STAGE] = LOADING
    with shm.running(msg.shm, codec, msg.chunk_id) as task:
        reply = _run_task(msg, codec, cache, slot, timed, task=task)
    # task.info is filled once _run_task's frame (and every argument it held) is gone.
    return reply._replace(shm=task.info)


def _run_task(msg: TaskMsg, codec: Codec, cache: FnCache, slot: Any, timed: bool, *, task: ShmTask | None) -> ResultMsg:
    slot[CHUNK] = msg.chunk_id
    slot[OFFSET] = 0
    slot[STARTED_NS] = time.monotonic_ns()
    slot[STAGE] = LOADING
    t0 = time.perf_counter()
    try:
        fn = cache.get(codec, msg)
        items = codec.loads(msg.data_tag, msg.data, None if task is None else task.take_buffers())
    except BaseException as exc:  # noqa: BLE001
        slot[STAGE] = DUMPING
        err_tag, err = dump_exception(codec, exc)
        slot[STAGE] = IDLE
        t = time.perf_counter() - t0
        return ResultMsg(msg.chunk_id, "p", b"", 0, ERR_LOAD, err_tag, err, t, 0.0, 0.0)
    t1 = time.perf_counter()
    slot[STAGE] = CALLING
    results, call_exc = _call_items(fn, items, msg.mode, slot, timed)
    t2 = time.perf_counter()
    slot[STAGE] = DUMPING
    res_tag, res, n_ok, dump_exc = _dump_results(codec, results, codec.dumps_data if task is None else task.dump)
    err_kind, err_tag, err = ERR_NONE, "p", b""
    if dump_exc is not None:
        err_kind = ERR_DUMP
        err_tag, err = dump_exception(codec, dump_exc)
    elif call_exc is not None:
        err_kind = ERR_CALL
        err_tag, err = dump_exception(codec, call_exc)
    slot[STAGE] = IDLE
    t3 = time.perf_counter()
    return ResultMsg(msg.chunk_id, res_tag, res, n_ok, err_kind, err_tag, err, t1 - t0, t3 - t2, t2 - t1)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs at start-up; pickled by the engine under spawn."""

    codec: Codec
    init: tuple[str, bytes, str, bytes] | None  # fn tag, fn bytes, args tag, args bytes
    max_tasks: int | None
    timed: bool
    shm: ShmConfig | None = None  # large buffers out of band (see _shm); None: in-band
    owner_pid: int = 0  # the pool's process: workers exit when it dies (0: not watched)


def _run_initializer(spec: WorkerSpec) -> None:
    assert spec.init is not None
    fn_tag, fn_bytes, args_tag, args_bytes = spec.init
    fn = spec.codec.loads(fn_tag, fn_bytes)
    args = spec.codec.loads(args_tag, args_bytes)
    fn(*args)


_PARENT_POLL_S = 0.2


def _watch_parent(owner: int, on_orphan: Callable[[], None] | None = None) -> None:
    """Exit when the pool's process dies, even while a task is running.

    Under fork a worker inherits the parent-side ends of its siblings' pipes
    (and of other pools' pipes), so a dead parent does not always show as
    EOF. A changed parent pid shows it (the orphan is re-parented), unless the
    parent died before this thread started (a slow spawn): so the pool's own
    process, ``owner``, is watched too (under forkserver it is not the parent).
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent or (owner > 0 and not pid_alive(owner)):
                if on_orphan is not None:
                    on_orphan()
                os._exit(1)

    threading.Thread(target=watch, name="parallelpickle-parent-watch", daemon=True).start()


def serve(conn: Any, slot_raw: Any, spec: WorkerSpec, in_process: bool = True) -> None:
    """A worker's main loop: one task message in, one result message out."""
    if in_process:
        # Ctrl-C goes to the whole process group; the parent decides, and
        # kills the workers itself (no tracebacks from every worker).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        shm_cfg = spec.shm
        # An orphan removes its pool's segments: nobody else is left to.
        _watch_parent(spec.owner_pid, None if shm_cfg is None else lambda: remove_if_orphaned(shm_cfg.prefix))
    slot = memoryview(slot_raw).cast("B").cast("q")
    slot[PID] = os.getpid()
    codec = spec.codec
    if spec.init is not None:
        slot[STAGE] = INITIALIZING
        try:
            _run_initializer(spec)
        except BaseException as exc:  # noqa: BLE001 - reported, then exit
            tag, err = dump_exception(codec, exc)
            conn.send_bytes(pickle.dumps(InitFailedMsg(tag, err), 5))
            return
        slot[STAGE] = IDLE
    link = WorkerLink(spec.shm) if spec.shm is not None else None
    parent_gone = False
    try:
        parent_gone = _serve_loop(conn, slot, spec, link)
    finally:
        if link is not None:
            link.close()
            if parent_gone and in_process:
                remove_if_orphaned(link.cfg.prefix)  # nobody else is left to


def _serve_loop(conn: Any, slot: Any, spec: WorkerSpec, link: WorkerLink | None) -> bool:
    """Serve tasks; True when the parent's end of the pipe closed without a STOP."""
    cache = FnCache()
    done = 0
    dumps = pickle.dumps
    while spec.max_tasks is None or done < spec.max_tasks:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return True
        if raw == STOP:
            return False
        msg = pickle.loads(raw)
        reply = run_task(msg, spec.codec, cache, slot, spec.timed, shm=link)
        conn.send_bytes(dumps(reply, 5))
        done += 1
    return False
