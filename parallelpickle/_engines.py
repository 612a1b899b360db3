"""Engines: the processes (or threads) that run chunks, and the thread that feeds them.

One engine thread per pool owns every worker and every job's dispatch state.
Workers each have their own duplex pipe, so the engine always knows which
worker holds which chunk::

    caller threads ──commands──▶ engine thread ──TaskMsg──▶ worker i (pipe i)
                                       ▲  ◀──ResultMsg────┘
                                       └── process sentinels, slots, deadlines

* ``"pickle"``, ``"cloudpickle"``, ``"auto"`` and custom transports run on
  stdlib :mod:`multiprocessing`; ``"dill"`` runs on :mod:`multiprocess`, the
  fork of multiprocessing that pathos is built on.
* A worker that dies is noticed through its sentinel, not through a missing
  reply, so nothing waits forever (stdlib ``Pool`` hangs here, cpython#96062).
  The chunk it held fails at the item its slot names; chunks it had not
  started go to other workers; a new worker takes its place.
* A task message larger than ``_PREFETCH_MAX_BYTES`` is sent only to an idle
  worker, which is blocked reading it: the engine thread never blocks writing
  to a worker that is itself blocked writing a large result back.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import queue
import signal
import socket
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from ._errors import (
    PoolClosedError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from ._jobs import Chunk, Job
from ._shm import ParentLink, Shared
from ._stats import StatsCounter
from ._transports import Codec
from ._worker import (
    CALLING,
    CHUNK,
    DUMPING,
    ERR_CALL,
    ERR_DUMP,
    ERR_LOAD,
    ERR_NONE,
    FN_CACHE_SIZE,
    LOADING,
    OFFSET,
    PID,
    SLOT_SIZE,
    STAGE,
    STARTED_NS,
    STOP,
    InitFailedMsg,
    ResultMsg,
    TaskMsg,
    WorkerSpec,
    serve,
)

START_METHODS = ("fork", "spawn", "forkserver")
# Chunks queued per worker: one running, one ready in the pipe behind it.
_PREFETCH = 2
_JOIN_GRACE_S = 1.0
# Workers that die before reaching their main loop, in a row, before the pool
# gives up: replacing them would only fail again (an unguarded main module under
# spawn, a missing module, an exhausted machine), and a respawn loop is a hang.
_MAX_STARTUP_DEATHS = 3
_TIMEOUT_POLL_S = 0.05


def get_context(transport_name: str, start_method: str | None) -> Any:
    """The multiprocessing-like module whose processes carry this transport."""
    if transport_name == "dill":
        import multiprocess

        return multiprocess.get_context(start_method)
    return multiprocessing.get_context(start_method)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "an unknown exit status"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


# -- workers ----------------------------------------------------------------
class _WorkerBase:
    conn: Any
    slot: Any
    sentinel: Any = None

    def __init__(self) -> None:
        self.pending: deque[Chunk] = deque()
        self.known: OrderedDict[bytes, None] = OrderedDict()  # mirrors FnCache
        self.sent = 0
        self.timed_out: tuple[Chunk, int] | None = None
        self.retiring = False
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def start_sender(self) -> None:
        """Writes to the worker happen on their own thread, so the engine thread
        never blocks on a full pipe while the worker blocks writing a result."""
        self._sender = threading.Thread(target=self._send_loop, name="parallelpickle-sender", daemon=True)
        self._sender.start()

    def _send_loop(self) -> None:
        conn = self.conn
        while True:
            raw = self.outbox.get()
            if raw is None:
                return
            try:
                conn.send_bytes(raw)
            except OSError:
                return  # the worker is gone; the engine re-runs what it held

    def stop_sender(self) -> None:
        self.outbox.put(None)

    def remember(self, digest: bytes) -> bool:
        """Record that the worker now holds ``digest``; True if it had it."""
        had = digest in self.known
        self.known[digest] = None
        self.known.move_to_end(digest)
        while len(self.known) > FN_CACHE_SIZE:
            self.known.popitem(last=False)
        return had

    def read_slot(self) -> tuple[int, int, int, int]:
        view = memoryview(self.slot).cast("B").cast("q")
        return view[STAGE], view[CHUNK], view[OFFSET], view[STARTED_NS]

    def started(self) -> bool:
        """Whether the worker reached its main loop (it writes its pid first)."""
        return bool(memoryview(self.slot).cast("B").cast("q")[PID])

    def kill(self) -> None:
        raise NotImplementedError

    def join(self, timeout: float) -> None:
        raise NotImplementedError

    @property
    def exitcode(self) -> int | None:
        return None

    def alive(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        """Free what the ended worker still holds (nothing for a thread)."""


class _ProcessWorker(_WorkerBase):
    def __init__(self, ctx: Any, spec: WorkerSpec, name: str) -> None:
        super().__init__()
        self.slot = ctx.RawArray("q", SLOT_SIZE)
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=serve, args=(child, self.slot, spec), name=name, daemon=True)
        self.process.start()
        child.close()
        self.sentinel = self.process.sentinel
        self._final_exitcode: int | None = None
        self._released = False
        self.start_sender()

    def kill(self) -> None:
        if not self._released and self.process.is_alive():
            self.process.kill()

    def join(self, timeout: float) -> None:
        if not self._released:
            self.process.join(timeout)

    @property
    def exitcode(self) -> int | None:
        if self._released:
            return self._final_exitcode
        code: int | None = self.process.exitcode
        return code

    def alive(self) -> bool:
        return not self._released and bool(self.process.is_alive())

    def release(self) -> None:
        """Close the ended process's sentinel now, not whenever a cycle is collected."""
        if self._released or self.process.exitcode is None:
            return
        self._final_exitcode = self.process.exitcode
        self._released = True
        self.process.close()


class _SocketConn:
    """A Connection-like end of a socketpair, for thread workers."""

    def __init__(self, sock: socket.socket) -> None:
        from multiprocessing.connection import Connection

        self._conn = Connection(sock.detach())

    def fileno(self) -> int:
        return self._conn.fileno()

    def send_bytes(self, data: bytes) -> None:
        self._conn.send_bytes(data)

    def recv_bytes(self) -> bytes:
        return self._conn.recv_bytes()

    def poll(self, timeout: float = 0.0) -> bool:
        return self._conn.poll(timeout)

    def close(self) -> None:
        self._conn.close()


class _ThreadWorker(_WorkerBase):
    def __init__(self, spec: WorkerSpec, name: str) -> None:
        super().__init__()
        self.slot = bytearray(8 * SLOT_SIZE)
        a, b = socket.socketpair()
        self.conn = _SocketConn(a)
        child = _SocketConn(b)

        def main() -> None:
            try:
                serve(child, self.slot, spec, in_process=False)
            finally:
                child.close()

        self.thread = threading.Thread(target=main, name=name, daemon=True)
        self.thread.start()
        self.start_sender()

    def kill(self) -> None:
        pass  # threads cannot be killed; task_timeout is refused for them

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def alive(self) -> bool:
        return self.thread.is_alive()


# -- the engine ---------------------------------------------------------------
@dataclass(frozen=True)
class EngineConfig:
    workers: int
    codec: Codec
    backend: str  # "process" | "thread" | "dask"
    start_method: str | None
    spec: WorkerSpec
    task_timeout: float | None


class LocalEngine:
    """Runs jobs on local worker processes or threads (see module docstring)."""

    def __init__(self, cfg: EngineConfig, stats: StatsCounter) -> None:
        self.cfg = cfg
        self.stats = stats
        self._ctx = get_context(cfg.codec.name, cfg.start_method) if cfg.backend == "process" else None
        self._cmds: deque[tuple[str, Any]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        self._fd_lock = threading.Lock()
        self._fds_closed = False
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._jobs: deque[Job] = deque()
        self._cids = itertools.count()
        self._names = itertools.count()
        self._closing = False
        self._terminating = False
        self.broken: BaseException | None = None
        self._startup_deaths = 0
        self._workers: list[_WorkerBase] = []
        self.finished = threading.Event()
        self.end_reason: BaseException = PoolClosedError("the pool is not running")
        # Large buffers out of band (see _shm); None: everything in the pipe.
        self.shm = ParentLink(cfg.spec.shm, cfg.workers) if cfg.spec.shm is not None else None
        try:
            self._start_workers()
        except BaseException:
            for w in self._workers:
                w.kill()
            self._close_fds()
            if self.shm is not None:
                self.shm.close()
            raise
        self._thread = threading.Thread(target=self._run, name="parallelpickle-engine", daemon=True)
        self._thread.start()

    # -- caller side -------------------------------------------------------
    def submit(self, job: Job) -> None:
        job.on_consumed = self._wake
        self._command("job", job)

    def cancel(self, job: Job) -> None:
        if not job.cancelled.is_set():
            job.cancelled.set()
            self._command("cancel", job)

    def close(self) -> None:
        self._command("close", None)

    def cancel_queued_futures(self) -> None:
        self._command("cancel_futures", None)

    def terminate(self) -> None:
        self._command("terminate", None)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def share(self, obj: Any) -> Shared[Any]:
        """See ``Pool.share``; without shared memory the handle carries the object."""
        if self.shm is None:
            return Shared("", "", b"", (), obj)
        return self.shm.share(self.cfg.codec, obj)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if isinstance(w, _ProcessWorker)]

    def _command(self, kind: str, arg: Any) -> None:
        if self.finished.is_set() and kind == "job":
            job: Job = arg
            job.end(self.end_reason)
            return
        self._cmds.append((kind, arg))
        self._wake()

    def _wake(self) -> None:
        with self._fd_lock:
            if self._fds_closed:
                return
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass  # a wake-up is already pending

    # -- engine thread -----------------------------------------------------
    def _start_workers(self) -> None:
        """Start the workers; runs in the caller's thread, before the engine thread."""
        for _ in range(self.cfg.workers):
            self._workers.append(self._new_worker())

    def _new_worker(self) -> _WorkerBase:
        name = f"parallelpickle-worker-{next(self._names)}"
        if self._ctx is None:
            return _ThreadWorker(self.cfg.spec, name)
        return _ProcessWorker(self._ctx, self.cfg.spec, name)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - an engine bug must not hang callers
            error = exc
        finally:
            self._shutdown_workers(graceful=error is None and not self._terminating)
            reason = error or self.broken or PoolClosedError("the pool was terminated")
            self.end_reason = reason
            for job in list(self._jobs):
                self._end_job(job, reason)
            while self._cmds:
                kind, arg = self._cmds.popleft()
                if kind == "job":
                    arg.end(reason)
            if self.shm is not None:
                self.shm.close()  # the workers are gone: unlink every segment
            self.finished.set()
            self._close_fds()

    def _loop(self) -> None:
        while True:
            self._drain_commands()
            if self._terminating:
                return
            self._dispatch()
            self._retire_finished_jobs()
            if self._closing and not self._jobs:
                return
            # Only the workers that were waited on: a sentinel is a bare fd
            # number, and a replacement started below may reuse the number of
            # one that just closed (it would be taken for dead, and cut off).
            waited = list(self._workers)
            ready = set(wait(self._waitables(), self._next_timeout()))
            for w in waited:
                if w in self._workers and w.conn in ready and not self._receive(w):
                    self._on_exit(w)
            for w in waited:
                if w in self._workers and w.sentinel is not None and w.sentinel in ready:
                    self._on_exit(w)
            self._check_timeouts()

    def _waitables(self) -> list[Any]:
        objs: list[Any] = [self._wake_r]
        for w in self._workers:
            objs.append(w.conn)
            if w.sentinel is not None:
                objs.append(w.sentinel)
        return objs

    def _drain_commands(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while self._cmds:
            kind, arg = self._cmds.popleft()
            if kind == "job":
                if self.broken is not None:
                    arg.end(self.broken)
                else:
                    self._jobs.append(arg)
            elif kind == "cancel":
                pass  # the job's flag is set; it is retired once nothing is in flight
            elif kind == "close":
                self._closing = True
                for job in self._jobs:
                    job.max_buffered = None  # nobody may be reading: never pause
            elif kind == "cancel_futures":
                for job in self._jobs:
                    if job.future is not None and not job.inflight and job.future.cancel():
                        job.cancelled.set()
            elif kind == "terminate":
                self._terminating = True

    def _retire_finished_jobs(self) -> None:
        if any(job.done() for job in self._jobs):
            for job in [j for j in self._jobs if j.done()]:
                self._jobs.remove(job)
                self._end_job(job, None)

    def _end_job(self, job: Job, exc: BaseException | None) -> None:
        if job.kind != "future" and exc is not None and job.done():
            exc = None  # every item was accounted for
        job.end(exc)

    # -- sending -----------------------------------------------------------
    def _can_take(self, w: _WorkerBase) -> bool:
        if w.retiring or (w.sentinel is not None and not w.alive()):
            return False
        limit = self.cfg.spec.max_tasks
        if limit is not None and w.sent >= limit:
            return False
        # Under a task_timeout nothing waits in a worker's pipe behind a task
        # that may have to be killed: the others run elsewhere meanwhile.
        return len(w.pending) < (1 if self.cfg.task_timeout is not None else _PREFETCH)

    def _next_chunk(self) -> Chunk | None:
        for job in self._jobs:
            try:
                chunk = job.take_chunk(next(self._cids))
            except Exception as exc:  # noqa: BLE001 - the caller's iterable raised
                job.input_error(exc)
                continue
            if chunk is not None:
                # A requeued chunk (its worker died before starting it) finds the future running already.
                future = job.future
                if future is not None and not future.running() and not future.set_running_or_notify_cancel():
                    job.finish_chunk(chunk)
                    job.exhausted = True
                    continue
                return chunk
        return None

    def _dispatch(self) -> None:
        for w in self._workers:
            while self._can_take(w):
                chunk = self._next_chunk()
                if chunk is None:
                    return
                if not self._encode(chunk):
                    continue
                self._send(w, chunk)

    def _encode(self, chunk: Chunk) -> bool:
        """Serialize a chunk's items; on failure fail the culprit item only."""
        if chunk.data:
            return True
        t0 = time.perf_counter()
        try:
            if self.shm is not None:
                chunk.data_tag, chunk.data = self.shm.encode(self.cfg.codec, chunk.cid, chunk.items)
            else:
                chunk.data_tag, chunk.data = self.cfg.codec.dumps_data(chunk.items)
            self.stats.add_parent(dumps_s=time.perf_counter() - t0)
            return True
        except Exception:  # noqa: BLE001 - find which item will not go
            pass
        job = chunk.job
        for i, item in enumerate(chunk.items):
            try:
                self.cfg.codec.dumps_data(item)
            except Exception as exc:  # noqa: BLE001
                from ._diagnose import serialization_error

                err = serialization_error(
                    exc, item, self.cfg.codec.name, what=f"argument of item {chunk.start + i}", stage="dump"
                )
                job.fail(chunk.start + i, err, f"parallelpickle: while sending item {chunk.start + i} to a worker")
                chunk.items = chunk.items[:i]
                break
        job.finish_chunk(chunk)
        if chunk.items:  # the items before the culprit still run
            job.requeue(chunk)
        return False

    def _send(self, w: _WorkerBase, chunk: Chunk) -> None:
        ref = chunk.job.fn_ref
        had = w.remember(ref.digest)
        msg = TaskMsg(
            chunk.cid,
            ref.digest,
            ref.tag,
            None if had else ref.data,
            chunk.data_tag,
            chunk.data,
            chunk.job.mode,
            None if self.shm is None else self.shm.task_info(w, chunk.cid),
        )
        raw = pickle.dumps(msg, 5)
        w.pending.append(chunk)
        w.sent += 1
        w.outbox.put(raw)
        self.stats.add_sent(len(raw), chunks=1, tasks=len(chunk.items))

    # -- receiving ---------------------------------------------------------
    def _receive(self, w: _WorkerBase) -> bool:
        """Handle one message from ``w``; False when its pipe is closed."""
        try:
            raw = w.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        self.stats.add_received(len(raw))
        msg = pickle.loads(raw)
        if isinstance(msg, InitFailedMsg):
            self._on_init_failed(w, msg)
            return True
        assert isinstance(msg, ResultMsg)
        chunk = w.pending.popleft()
        assert chunk.cid == msg.chunk_id, "result for a chunk this worker does not hold"
        self.stats.add_worker(loads_s=msg.loads_s, dumps_s=msg.dumps_s)
        self._complete(chunk, msg)
        if self.shm is not None:
            self.shm.on_result(w, msg.chunk_id, msg.shm)
        return True

    def _complete(self, chunk: Chunk, msg: ResultMsg) -> None:
        job = chunk.job
        job.finish_chunk(chunk)
        if job.cancelled.is_set():
            return
        codec = self.cfg.codec
        t0 = time.perf_counter()
        values: list[Any] = []
        if msg.n_ok:
            try:
                buffers = None if self.shm is None else self.shm.result_buffers(msg.shm)
                values = codec.loads(msg.res_tag, msg.results, buffers)
            except Exception as exc:  # noqa: BLE001
                self._result_load_failed(chunk, exc)
                return
        self.stats.add_parent(loads_s=time.perf_counter() - t0)
        job.note_timing(len(chunk.items), msg.call_s)
        job.deliver(chunk, values)
        if msg.err_kind != ERR_NONE:
            self._complete_error(chunk, msg)

    def _result_load_failed(self, chunk: Chunk, exc: BaseException) -> None:
        from ._diagnose import serialization_error

        err = serialization_error(exc, None, self.cfg.codec.name, what=f"result of {chunk.describe()}", stage="load")
        chunk.job.fail(
            chunk.start, err, f"parallelpickle: while loading the results of {chunk.describe()} in the parent"
        )

    def _complete_error(self, chunk: Chunk, msg: ResultMsg) -> None:
        job = chunk.job
        index = chunk.start + msg.n_ok
        try:
            exc = self.cfg.codec.loads(msg.err_tag, msg.err)
        except Exception as why:  # noqa: BLE001 - an exception that will not unpickle
            exc = SerializationError(
                f"the worker raised an exception for item {index} that cannot be loaded in the "
                f"parent ({type(why).__name__}: {why}); define the exception at module level and "
                "make its __init__ accept the arguments in its .args",
                index=index,
            )
        if msg.err_kind == ERR_CALL:
            job.fail(index, exc)
            return
        from ._diagnose import serialization_error

        if msg.err_kind == ERR_LOAD and len(chunk.items) > 1:
            self._split(chunk)  # nothing ran; load item by item to name the culprit
            return
        if msg.err_kind == ERR_LOAD:
            err = serialization_error(exc, None, self.cfg.codec.name, what=f"task of {chunk.describe()}", stage="load")
            job.fail(chunk.start, err, f"parallelpickle: while loading {chunk.describe()} in the worker")
        elif msg.err_kind == ERR_DUMP:
            err = serialization_error(exc, None, self.cfg.codec.name, what=f"result of item {index}", stage="dump")
            job.fail(index, err, f"parallelpickle: while sending back the result of item {index}")

    def _split(self, chunk: Chunk) -> None:
        job = chunk.job
        job.finish_chunk(chunk)
        for i, item in enumerate(chunk.items):
            job.requeue(Chunk(job, next(self._cids), chunk.start + i, [item]))

    def _on_init_failed(self, w: _WorkerBase, msg: InitFailedMsg) -> None:
        try:
            exc = self.cfg.codec.loads(msg.err_tag, msg.err)
        except Exception as why:  # noqa: BLE001
            exc = WorkerCrashedError(f"the initializer failed and its exception cannot be loaded: {why}")
        from ._errors import add_note

        add_note(exc, "parallelpickle: raised by the pool's initializer; the pool is broken")
        self.broken = exc
        self._terminating = True

    # -- deaths and deadlines ----------------------------------------------
    def _on_exit(self, w: _WorkerBase) -> None:
        if w not in self._workers:
            return
        try:  # results sent just before the exit still count
            while w.conn.poll(0) and self._receive(w) and self.broken is None:
                pass
        except OSError:
            pass
        w.join(_JOIN_GRACE_S)
        w.stop_sender()
        self._workers.remove(w)
        try:
            w.conn.close()
        except OSError:
            pass
        if self.shm is not None:
            pid = w.process.pid if isinstance(w, _ProcessWorker) else None
            self.shm.worker_gone(w, pid, [chunk.cid for chunk in w.pending])
        self._fail_pending(w)
        self._count_startup_death(w)
        w.release()
        if not self._terminating and self.broken is None and not self._interpreter_exiting():
            self._workers.append(self._new_worker())
            self.stats.add_replaced()

    def _interpreter_exiting(self) -> bool:
        """multiprocessing's atexit hook has begun: it kills daemon children and then
        joins every child, so a replacement started now would be waited for forever."""
        if self._ctx is None:
            return False
        util = sys.modules.get(type(self._ctx).__module__.split(".")[0] + ".util")
        return bool(getattr(util, "_exiting", False))

    def _count_startup_death(self, w: _WorkerBase) -> None:
        if w.started():
            self._startup_deaths = 0
            return
        self._startup_deaths += 1
        if self._startup_deaths < _MAX_STARTUP_DEATHS or self.broken is not None:
            return
        hint = ""
        if self.cfg.start_method in ("spawn", "forkserver"):
            hint = (
                f"; under {self.cfg.start_method!r} each worker imports your main module: "
                "create the pool under `if __name__ == '__main__':`"
            )
        self.broken = WorkerCrashedError(
            f"{self._startup_deaths} workers in a row died with {describe_exit(w.exitcode)} "
            f"before they could run a task{hint}",
            exitcode=w.exitcode,
        )
        self._terminating = True

    def _fail_pending(self, w: _WorkerBase) -> None:
        stage, cid, offset, _ = w.read_slot()
        how = describe_exit(w.exitcode)
        for chunk in w.pending:
            job = chunk.job
            if chunk.cid != cid or stage not in (LOADING, CALLING, DUMPING):
                job.requeue(chunk)  # never started: safe to run elsewhere
                continue
            self._fail_running(w, chunk, stage, offset, how)
        w.pending.clear()

    def _fail_running(self, w: _WorkerBase, chunk: Chunk, stage: int, offset: int, how: str) -> None:
        job = chunk.job
        job.finish_chunk(chunk)
        if len(chunk.items) > 1 and (stage != CALLING or not self.cfg.spec.timed):
            # Only the chunk is known, not the item (the fast path does not
            # record it): re-run the chunk one item per task, so that a repeat
            # of the crash names its item. Items before it may run twice.
            self._split(chunk)
            return
        if stage == CALLING:
            index = chunk.start + offset
            what = "the submitted call" if job.kind == "future" else f"item {index}"
            if w.timed_out is not None:
                err: BaseException = TaskTimeoutError(
                    f"{what} ran longer than task_timeout={self.cfg.task_timeout}s; its worker was killed and replaced",
                    index=index,
                )
                rest = chunk.items[offset + 1 :]
                if rest:
                    job.requeue(Chunk(job, next(self._cids), index + 1, rest))
            else:
                err = WorkerCrashedError(
                    f"a worker died with {how} while running {what}", index=index, exitcode=w.exitcode
                )
            job.fail(index, err, f"parallelpickle: {what} was running when its worker ended")
            if offset:  # the items before it finished but their results died with the worker
                job.requeue(Chunk(job, next(self._cids), chunk.start, chunk.items[:offset]))
            return
        doing = "loading" if stage == LOADING else "sending back the results of"
        err = WorkerCrashedError(
            f"a worker died with {how} while {doing} {chunk.describe()}", index=chunk.start, exitcode=w.exitcode
        )
        job.fail(chunk.start, err, f"parallelpickle: {chunk.describe()} were in the worker that ended")

    def _next_timeout(self) -> float | None:
        if self.cfg.task_timeout is None:
            return None
        now = time.monotonic_ns()
        best: float | None = None
        for w in self._workers:
            if not w.pending:
                continue
            stage, _, _, started = w.read_slot()
            if stage == CALLING:
                left = self.cfg.task_timeout - (now - started) / 1e9
            else:
                # The worker has not begun the call yet (still starting, or
                # loading): it sends no word when it does, so look again soon.
                left = min(_TIMEOUT_POLL_S, self.cfg.task_timeout)
            best = left if best is None else min(best, left)
        return None if best is None else max(best, 0.0) + 0.001

    def _check_timeouts(self) -> None:
        if self.cfg.task_timeout is None:
            return
        limit_ns = int(self.cfg.task_timeout * 1e9)
        now = time.monotonic_ns()
        for w in self._workers:
            stage, cid, offset, started = w.read_slot()
            overdue = w.pending and stage == CALLING and w.pending[0].cid == cid and now - started > limit_ns
            if overdue and w.timed_out is None:
                w.timed_out = (w.pending[0], offset)
                w.kill()

    # -- stopping ----------------------------------------------------------
    def _shutdown_workers(self, graceful: bool) -> None:
        for w in self._workers:
            if graceful:
                w.outbox.put(STOP)
            else:
                w.kill()
            w.stop_sender()
        deadline = time.monotonic() + (_JOIN_GRACE_S if graceful else 0.5)
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))
            if w.alive():
                w.kill()
                w.join(_JOIN_GRACE_S)
            try:
                w.conn.close()
            except OSError:
                pass
            w.release()
        self._workers.clear()

    def _close_fds(self) -> None:
        with self._fd_lock:
            if self._fds_closed:
                return
            self._fds_closed = True
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
