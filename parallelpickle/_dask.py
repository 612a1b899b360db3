"""The ``"dask"`` backend: the same jobs and chunks, run as tasks on dask.distributed.

Scope: ``Pool(backend="dask")``. With ``address=None`` the pool starts (and
later closes) its own ``LocalCluster`` of worker processes on loopback; with
``address="tcp://host:port"`` it connects a ``Client`` to a scheduler someone
else runs, and never shuts that scheduler or its workers down.

Data flow for one chunk::

    engine thread: codec.dumps_data(items) ─▶ TaskMsg ─▶ pickle((codec, msg)) = payload (bytes)
                   client.submit(run_chunk, payload) ──▶ scheduler ──▶ a Dask worker
    Dask worker:   run_chunk(payload): run_task (load with the transport, call, dump) ─▶ ResultMsg bytes
    engine thread: ◀── done callback (Dask's callback thread) wakes it; gather; _complete

Dask only ever sees bytes and the module-level function :func:`run_chunk`, so
the transport keeps its meaning: a lambda under ``transport="pickle"`` fails in
the parent with the same :class:`SerializationError` as on processes, instead
of being carried by Dask's own cloudpickle.

A Dask task costs milliseconds of scheduling, so items travel in chunks (the
same chunk sizes as the process backend); a payload over 1 MiB is scattered to
a worker rather than put in the task graph. A worker that dies is restarted by
its nanny and the scheduler retries the task on another worker up to its
``allowed_failures``; after that the task ends in ``KilledWorker``. As that
also hits tasks that only waited on the dying worker, the engine re-runs the
items of such a task one per task, each with nothing else in flight, and turns
a ``KilledWorker`` of a lone single item into :class:`WorkerCrashedError`
naming it. A lost scheduler cancels the futures: the call fails, nothing waits.
The ``initializer`` runs through a worker plugin (see ``_dask_init``).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pickle
import re
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError
from multiprocessing.connection import wait
from typing import Any

from ._engines import EngineConfig, LocalEngine
from ._errors import WorkerCrashedError, add_note
from ._jobs import Chunk
from ._stats import StatsCounter
from ._worker import SLOT_SIZE, FnCache, ResultMsg, TaskMsg, run_task

__all__ = ["DaskEngine", "check_dask_arguments", "run_chunk"]

# Worker deaths a task may see before the pool's own LocalCluster gives up on it
# (Dask's default is 3). One retry keeps an innocent task that was merely queued
# on a dying worker alive, without re-running a crashing item four times.
LOCAL_ALLOWED_FAILURES = 1
# Chunks in flight per worker thread: one running, one waiting behind it.
_PER_THREAD = 2
_CONNECT_TIMEOUT_S = 10.0
_SCATTER_BYTES = 1 << 20
_CLOSE_TIMEOUT_S = 10.0
# terminate(): how long a worker may take to stop before it is killed.
_KILL_TIMEOUT_S = 0.5
_ADDRESS = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")
_INSTALL_HINT = "pip install 'parallelpickle[dask]'"


def check_dask_arguments(
    address: object, *, start_method: str | None, task_timeout: float | None, max_tasks_per_child: int | None
) -> None:
    """Refuse what the dask backend cannot honour, before anything starts."""
    if address is not None:
        if not isinstance(address, str):
            raise TypeError(f"address must be a str like 'tcp://127.0.0.1:8786' or None, got {type(address).__name__}")
        match = _ADDRESS.fullmatch(address)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ValueError(
                f"address must be a dask scheduler address 'tcp://HOST:PORT' (as `dask scheduler` "
                f"prints it) or None to start a local cluster, got {address!r}"
            )
    if start_method is not None:
        raise ValueError("start_method applies to backend='process' only; Dask starts its own worker processes")
    if task_timeout is not None:
        raise ValueError("task_timeout is not supported with backend='dask': Dask cannot stop a running task")
    if max_tasks_per_child is not None:
        raise ValueError("max_tasks_per_child is not supported with backend='dask': Dask workers are long-lived")
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"backend='dask' needs dask.distributed: {_INSTALL_HINT}") from exc


def run_chunk(payload: bytes) -> bytes:
    """The Dask task: load a chunk with the pool's transport, call, dump the results.

    A pure function of its bytes, like the process workers' loop body; the
    callable is loaded anew per chunk (no cache lives in the Dask worker).
    """
    codec, msg = pickle.loads(payload)
    slot = memoryview(bytearray(8 * SLOT_SIZE)).cast("q")
    reply = run_task(msg, codec, FnCache(), slot, False)
    return pickle.dumps(reply, 5)


class DaskEngine(LocalEngine):
    """Runs jobs as Dask tasks; reuses :class:`LocalEngine`'s job and result handling.

    Only the parts that touch workers differ: starting (a cluster and a client
    instead of processes), sending (``client.submit``), waiting (Dask's done
    callbacks write to the wake pipe) and stopping.
    """

    def __init__(self, cfg: EngineConfig, stats: StatsCounter, address: str | None, *, workers_given: bool) -> None:
        self._address = address
        self._workers_given = workers_given
        self._cluster: Any = None
        self._client: Any = None
        self._running: dict[str, tuple[Chunk, Any]] = {}  # dask key -> (chunk, dask future)
        self._done: deque[Any] = deque()  # dask futures whose done callback ran
        # After a KilledWorker: chunks to run with nothing else in flight, and the
        # chunks in flight that have had no company since they were submitted.
        self._suspects: set[int] = set()
        self._alone: set[int] = set()
        self._key_prefix = f"parallelpickle-{uuid.uuid4().hex}"
        self._plugin_name = f"{self._key_prefix}-initializer"
        self.workers = cfg.workers
        super().__init__(cfg, stats)

    # -- starting ------------------------------------------------------------
    def _start_workers(self) -> None:
        try:
            self._connect()
            if self.cfg.spec.init is not None:
                self._register_initializer(self.cfg.spec.init)
        except BaseException:
            self._shutdown_workers(graceful=False)  # whatever was started before the failure
            raise

    def _connect(self) -> None:
        # Typed as Any: distributed's own annotations are partial and vary by version.
        distributed: Any = importlib.import_module("distributed")
        if self._address is None:
            self._cluster = _local_cluster(distributed, self.cfg.workers)
            self._client = distributed.Client(self._cluster, set_as_default=False)
        else:
            try:
                self._client = distributed.Client(self._address, timeout=_CONNECT_TIMEOUT_S, set_as_default=False)
            except OSError as exc:
                raise ConnectionError(f"cannot reach a dask scheduler at address={self._address!r}: {exc}") from exc
            if not self._workers_given:
                # Plan chunks and in-flight tasks for the threads the cluster has now.
                self.workers = max(1, sum(self._client.nthreads().values()))

    def _register_initializer(self, init: tuple[str, bytes, str, bytes]) -> None:
        """Run the initializer in every worker, now and in those that join later.

        A failure breaks the pool, as on processes: calls raise WorkerCrashedError.
        """
        from ._dask_init import InitializerFailed, InitializerPlugin, load_failure

        plugin = InitializerPlugin(pickle.dumps((self.cfg.codec, init), 5))
        try:
            self._client.register_plugin(plugin, name=self._plugin_name)
        except InitializerFailed as failed:
            exc = load_failure(self.cfg.codec, failed)
            add_note(exc, "parallelpickle: raised by the pool's initializer in a Dask worker; the pool is broken")
            self.broken = exc
            self._terminating = True

    def worker_pids(self) -> list[int]:
        client = self._client
        if client is None:
            return []
        return sorted(client.run(os.getpid).values())

    # -- engine thread -------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._drain_commands()
            if self._terminating:
                return
            self._drop_cancelled()
            self._collect()
            self._dispatch()
            self._retire_finished_jobs()
            if self._closing and not self._jobs:
                return
            wait([self._wake_r])

    def _dispatch(self) -> None:
        while len(self._running) < _PER_THREAD * self.workers:
            if any(chunk.cid in self._suspects for chunk, _ in self._running.values()):
                return  # a suspect runs alone
            chunk = self._next_chunk()
            if chunk is None:
                return
            if chunk.cid in self._suspects and self._running:
                chunk.job.putback(chunk)  # it goes out once the others are done
                return
            if self._encode(chunk):
                self._submit(chunk)

    def _submit(self, chunk: Chunk) -> None:
        ref = chunk.job.fn_ref
        msg = TaskMsg(chunk.cid, ref.digest, ref.tag, ref.data, chunk.data_tag, chunk.data, chunk.job.mode)
        payload = pickle.dumps((self.cfg.codec, msg), 5)
        key = f"{self._key_prefix}-{chunk.cid}"
        arg: Any = payload
        if len(payload) > _SCATTER_BYTES:
            # Straight to a worker, not inside the task graph through the scheduler
            # (Dask warns about, and is slow with, graphs of many megabytes).
            arg = self._client.scatter(payload, hash=False)
        future = self._client.submit(run_chunk, arg, key=key, pure=False)
        if self._running:
            self._alone.clear()  # whatever runs now has company
        else:
            self._alone.add(chunk.cid)
        self._running[key] = (chunk, future)
        future.add_done_callback(self._on_done)
        self.stats.add_sent(len(payload), chunks=1, tasks=len(chunk.items))

    def _on_done(self, future: Any) -> None:
        # Runs in Dask's callback thread: hand over and wake the engine thread.
        self._done.append(future)
        self._wake()

    def _drop_cancelled(self) -> None:
        dropped = [key for key, (chunk, _) in self._running.items() if chunk.job.cancelled.is_set()]
        if not dropped:
            return
        futures = []
        for key in dropped:
            chunk, future = self._running.pop(key)
            self._alone.discard(chunk.cid)
            self._suspects.discard(chunk.cid)
            chunk.job.finish_chunk(chunk)
            futures.append(future)
        try:
            self._client.cancel(futures)
        except Exception:  # noqa: BLE001 - nothing to cancel where the scheduler is gone
            pass

    def _collect(self) -> None:
        finished: list[tuple[Chunk, Any]] = []
        failed: list[tuple[Chunk, Any]] = []
        while self._done:
            future = self._done.popleft()
            entry = self._running.pop(future.key, None)
            if entry is None:  # cancelled by the engine, already accounted for
                continue
            # Not "finished" but "lost" or "pending" again: the worker holding the
            # result died and Dask recomputes it; gather waits for that.
            (failed if future.status in ("error", "cancelled") else finished).append(entry)
        for (chunk, future), raw in zip(finished, self._gather([f for _, f in finished])):
            self._alone.discard(chunk.cid)
            if isinstance(raw, BaseException):
                self._task_failed(chunk, raw, alone=False)
            else:
                self._received(chunk, raw)
            future.release()
        for chunk, future in failed:
            alone = chunk.cid in self._alone
            self._alone.discard(chunk.cid)
            self._task_failed(chunk, _exception_of(future), alone=alone)
            future.release()

    def _gather(self, futures: list[Any]) -> list[Any]:
        """Results of finished futures in one round trip; one by one if that fails."""
        if not futures:
            return []
        try:
            return list(self._client.gather(futures))
        except Exception:  # noqa: BLE001 - find out which future failed
            pass
        out: list[Any] = []
        for future in futures:
            try:
                out.append(future.result())
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def _received(self, chunk: Chunk, raw: bytes) -> None:
        self._suspects.discard(chunk.cid)
        self.stats.add_received(len(raw))
        msg = pickle.loads(raw)
        assert isinstance(msg, ResultMsg)
        self.stats.add_worker(loads_s=msg.loads_s, dumps_s=msg.dumps_s)
        self._complete(chunk, msg)

    def _task_failed(self, chunk: Chunk, exc: BaseException, *, alone: bool) -> None:
        """The Dask task itself failed (``run_chunk`` never raises for the call's errors).

        ``KilledWorker`` also hits tasks that merely waited on a worker that a
        crashing task killed. So a chunk is blamed only when it ran alone and
        holds one item; otherwise its items are re-run one per task, each
        alone, so that a repeat of the crash names its item (items before it
        may run twice).
        """
        job = chunk.job
        self._suspects.discard(chunk.cid)
        if job.cancelled.is_set():
            job.finish_chunk(chunk)
            return
        if _is_killed_worker(exc) and (len(chunk.items) > 1 or not alone):
            job.finish_chunk(chunk)
            for i, item in enumerate(chunk.items):
                suspect = Chunk(job, next(self._cids), chunk.start + i, [item])
                self._suspects.add(suspect.cid)
                job.requeue(suspect)
            return
        job.finish_chunk(chunk)
        what = "the submitted call" if job.kind == "future" else chunk.describe()
        err, note = _crash_error(what, exc)
        err.index = chunk.start
        job.fail(chunk.start, err, note)

    # -- stopping ------------------------------------------------------------
    def _shutdown_workers(self, graceful: bool) -> None:
        futures = [future for _, future in self._running.values()]
        self._running.clear()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        # Errors while closing must not keep the engine from ending its jobs.
        if client is not None:
            steps = [lambda: client.cancel(futures)] if futures else []
            if self.cfg.spec.init is not None and cluster is None:
                # Somebody else's cluster: workers that join later must not run this pool's initializer.
                steps.append(lambda: client.unregister_worker_plugin(self._plugin_name))
            steps.append(lambda: client.close(timeout=_CLOSE_TIMEOUT_S))
            _each(steps)
        if cluster is not None:  # only a cluster this pool started; never a remote one
            steps = [] if graceful else [lambda: cluster.sync(_stop_nannies, list(cluster.workers.values()))]
            steps.append(lambda: cluster.close(timeout=_CLOSE_TIMEOUT_S))
            _each(steps)


def _each(steps: list[Callable[[], object]]) -> None:
    """Run every step of a shutdown, whatever the ones before it raised."""
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - shutting down: keep going
            pass


def _local_cluster(distributed: Any, workers: int) -> Any:
    """The pool's own cluster: worker processes of one thread each, on loopback only."""
    try:
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # Without a dashboard the scheduler still serves health routes over
            # HTTP, by default on port 8787: a free loopback port lets pools coexist.
            scheduler_kwargs={"allowed_failures": LOCAL_ALLOWED_FAILURES, "dashboard_address": "127.0.0.1:0"},
        )
    except Exception as exc:
        raise WorkerCrashedError(
            f"the Dask LocalCluster could not start its workers ({type(exc).__name__}: {exc}); Dask starts "
            "them with spawn, which imports your main module again: in a script, create the pool under "
            "`if __name__ == '__main__':`"
        ) from exc


async def _stop_nannies(nannies: list[Any]) -> None:
    """Stop the worker processes now: a nanny's own close waits 4 s for a running task first."""
    await asyncio.gather(*(nanny.close(timeout=_KILL_TIMEOUT_S) for nanny in nannies), return_exceptions=True)


def _is_killed_worker(exc: BaseException) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker)


def _crash_error(what: str, exc: BaseException) -> tuple[WorkerCrashedError, str]:
    """The error (and note) for a Dask task that ended without running to its end."""
    if _is_killed_worker(exc):
        return (
            WorkerCrashedError(f"Dask workers died while running {what}: {exc}"),
            f"parallelpickle: {what} was running when its Dask worker ended",
        )
    if isinstance(exc, CancelledError):
        err = WorkerCrashedError(
            f"Dask cancelled the task for {what} ({exc}): the connection to the scheduler was lost, "
            "or the cluster was shut down"
        )
        note = f"parallelpickle: {what} did not finish on the cluster"
    else:
        err = WorkerCrashedError(
            f"Dask could not run the task for {what}: {type(exc).__name__}: {exc} "
            "(the scheduler and the workers need parallelpickle and the packages your callable uses)"
        )
        note = f"parallelpickle: the Dask task for {what} failed outside the call"
    err.__cause__ = exc
    return err, note


def _exception_of(future: Any) -> BaseException:
    """What an erred or cancelled Dask future holds (cancelled: the reason, in a CancelledError)."""
    try:
        future.result()
    except BaseException as exc:  # noqa: BLE001 - the exception is the answer
        return exc
    return RuntimeError(f"Dask task ended as {future.status!r}")
