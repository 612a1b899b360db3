"""``Pool``: the public face — validation, callables, chunking, results.

``Pool`` checks every argument before any process starts, serializes the
callable once per call (``Codec.dumps_callable``), wraps the input in a
:class:`~parallelpickle._jobs.Job`, and hands it to its engine. It keeps no
state outside the instance: two pools share nothing.
"""

from __future__ import annotations

import numbers
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from ._diagnose import serialization_error
from ._engines import START_METHODS, EngineConfig, LocalEngine
from ._errors import PoolClosedError, WorkerCrashedError
from ._jobs import FnRef, Job, ResultIterator, auto_chunksize, sized_length
from ._progress import ProgressResults, check_progress, load_tqdm
from ._shm import Shared, shm_config
from ._stats import PoolStats, StatsCounter
from ._transports import Codec, Transport, digest_of, resolve_transport
from ._worker import CALL_KW, CALL_ONE, CALL_STAR, WorkerSpec

__all__ = ["BACKENDS", "Pool"]

T = TypeVar("T")
BACKENDS = ("process", "thread", "dask")
_DECISION_CACHE_SIZE = 128
# Lazy iterators stop cutting new chunks while this many delivered chunks per
# worker wait unread, so an endless input needs bounded memory.
_BUFFERED_CHUNKS_PER_WORKER = 4


def _check_int(name: str, value: object, *, minimum: int = 1, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_choice(name: str, value: object, choices: tuple[str, ...], *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    valid = ", ".join(repr(c) for c in choices) + (" or None" if allow_none else "")
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {valid}; got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid names: {valid}")


def _default_workers() -> int:
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return max(1, count or 1)


def _finalize(engine: LocalEngine) -> None:
    engine.terminate()
    engine.join(2.0)


class Pool(Executor):
    """Map functions over worker processes with the serializer of your choice.

    ``transport`` is ``"pickle"`` (stdlib multiprocessing, C pickle),
    ``"dill"`` (pathos' multiprocess, dill), ``"cloudpickle"``, ``"auto"``
    (the fastest that works, per callable and per chunk) or an object with
    ``name``, ``dumps`` and ``loads``.

    ``backend`` is ``"process"``, ``"thread"`` or ``"dask"``: dask.distributed,
    on a LocalCluster the pool starts and stops (``address=None``) or on the
    scheduler at ``address`` (``"tcp://host:port"``), which it leaves running.

    ``shm_threshold``: buffers of at least this many bytes in arguments and
    results (numpy arrays, bytes) travel through shared memory instead of the
    pipe; None means 1 MiB, 0 turns it off (see ``_shm``).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        transport: str | Transport = "auto",
        start_method: str | None = None,
        chunksize: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        max_tasks_per_child: int | None = None,
        task_timeout: float | None = None,
        progress: bool = False,
        backend: str = "process",
        address: str | None = None,
        shm_threshold: int | None = None,
    ) -> None:
        self._engine: LocalEngine | None = None
        n_workers = _check_int("workers", workers)
        self._workers = n_workers if n_workers is not None else _default_workers()
        self._codec = Codec(resolve_transport(transport))
        _check_choice("start_method", start_method, START_METHODS, allow_none=True)
        _check_choice("backend", backend, BACKENDS, allow_none=False)
        self._chunksize = _check_int("chunksize", chunksize)
        self._max_tasks = _check_int("max_tasks_per_child", max_tasks_per_child)
        self._task_timeout = self._check_timeout(task_timeout)
        self._check_backend(backend, start_method, address)
        if not isinstance(progress, bool):
            raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
        self._progress = progress
        shm = shm_config(_check_int("shm_threshold", shm_threshold, minimum=0), backend, self._codec.builtin)
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable or None, got {type(initializer).__name__}")
        if isinstance(initargs, (str, bytes)) or not isinstance(initargs, Iterable):
            raise TypeError(f"initargs must be a tuple of arguments, got {type(initargs).__name__}")
        self.transport = self._codec.name
        self.start_method = start_method
        self.backend = backend
        self._decisions: OrderedDict[int, tuple[Any, str]] = OrderedDict()
        self._stats = StatsCounter()
        spec = WorkerSpec(
            self._codec,
            self._encode_init(initializer, tuple(initargs)),
            self._max_tasks,
            self._task_timeout is not None,
            shm,
            owner_pid=os.getpid(),
        )
        cfg = EngineConfig(self._workers, self._codec, backend, start_method, spec, self._task_timeout)
        self._closed = False
        self._engine = self._make_engine(cfg, address, workers_given=n_workers is not None)
        self._finalizer = weakref.finalize(self, _finalize, self._engine)

    # -- validation helpers --------------------------------------------------
    @staticmethod
    def _check_timeout(task_timeout: object) -> float | None:
        if task_timeout is None:
            return None
        if isinstance(task_timeout, bool) or not isinstance(task_timeout, numbers.Real):
            raise TypeError(f"task_timeout must be a number of seconds or None, got {type(task_timeout).__name__}")
        if not float(task_timeout) > 0:
            raise ValueError(f"task_timeout must be > 0, got {task_timeout}")
        return float(task_timeout)

    def _check_backend(self, backend: str, start_method: str | None, address: object) -> None:
        if address is not None and backend != "dask":
            raise ValueError("address is only used with backend='dask'")
        if backend == "thread":
            if start_method is not None:
                raise ValueError("start_method applies to backend='process' only")
            if self._task_timeout is not None:
                raise ValueError("task_timeout needs backend='process': a thread cannot be killed")
        if backend == "dask":
            from ._dask import check_dask_arguments

            check_dask_arguments(
                address, start_method=start_method, task_timeout=self._task_timeout, max_tasks_per_child=self._max_tasks
            )
            return
        if start_method is not None:
            import multiprocessing

            available = multiprocessing.get_all_start_methods()
            if start_method not in available:
                raise ValueError(f"start_method {start_method!r} is not available here; available: {available}")

    def _make_engine(self, cfg: EngineConfig, address: str | None, *, workers_given: bool) -> LocalEngine:
        if cfg.backend != "dask":
            return LocalEngine(cfg, self._stats)
        from ._dask import DaskEngine

        engine = DaskEngine(cfg, self._stats, address, workers_given=workers_given)
        self._workers = engine.workers  # with an address: the cluster's threads, unless given
        return engine

    def _encode_init(
        self, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
    ) -> tuple[str, bytes, str, bytes] | None:
        if initializer is None:
            return None
        ref = self._encode_callable(initializer, "initializer")
        try:
            args_tag, args = self._codec.dumps_data(initargs)
        except Exception as exc:
            raise serialization_error(exc, initargs, self._codec.name, what="initargs", stage="dump") from exc
        return ref.tag, ref.data, args_tag, args

    # -- callables -----------------------------------------------------------
    def _encode_callable(self, fn: Callable[..., Any], what: str = "callable") -> FnRef:
        """Serialize ``fn`` now; the per-callable serializer choice is cached."""
        if not callable(fn):
            raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        cached = self._decisions.get(id(fn))
        hint = cached[1] if cached is not None and cached[0] is fn else None
        try:
            tag, data = self._codec.dumps_callable(fn, hint)
        except Exception as exc:
            err = serialization_error(exc, fn, self._codec.name, what=f"{what} {_fn_name(fn)}", stage="dump")
            raise err from exc
        if len(self._codec.callable_tags()) > 1:
            self._decisions[id(fn)] = (fn, tag)
            self._decisions.move_to_end(id(fn))
            while len(self._decisions) > _DECISION_CACHE_SIZE:
                self._decisions.popitem(last=False)
        return FnRef(digest_of(data), tag, data)

    # -- work ----------------------------------------------------------------
    def _engine_or_raise(self) -> LocalEngine:
        engine = self._engine
        if engine is not None and engine.broken is not None:
            raise WorkerCrashedError(
                f"the pool is broken: its initializer raised {type(engine.broken).__name__}: {engine.broken}"
            ) from engine.broken
        if self._closed or engine is None or engine.finished.is_set():
            raise PoolClosedError("this pool is closed; create a new Pool to run more work")
        return engine

    def _start_job(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        *,
        mode: int,
        kind: str,
        chunksize: int | None,
        timeout: float | None = None,
    ) -> ResultIterator:
        engine = self._engine_or_raise()
        if not iterables:
            raise TypeError("at least one iterable is required")
        iterators = _iterators(iterables)
        ref = self._encode_callable(fn)
        chunksize = _check_int("chunksize", chunksize) or self._chunksize
        total = sized_length(iterables)
        if chunksize is None and (self._task_timeout is not None):
            chunksize = 1
        if chunksize is None and total is not None:
            chunksize = auto_chunksize(total, self._workers)
        items: Iterator[Any] = iterators[0] if len(iterators) == 1 else zip(*iterators)
        if len(iterables) > 1:
            mode = CALL_STAR
        lazy = kind == "unordered" or total is None
        job = Job(
            ref,
            items,
            mode=mode,
            kind=kind,
            chunksize=chunksize,
            total=total,
            max_buffered=_BUFFERED_CHUNKS_PER_WORKER * self._workers if lazy else None,
        )
        engine.submit(job)
        return ResultIterator(job, engine.cancel, timeout=timeout, on_interrupt=self.terminate)

    def _results(
        self, progress: object, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...], **job: Any
    ) -> ResultIterator | ProgressResults:
        """``_start_job``, counted on a progress bar when this call (or else the pool) asks for one."""
        per_call = check_progress(progress)
        show = self._progress if per_call is None else per_call
        # Load tqdm before any work starts, so a missing tqdm fails the call, not a running job.
        bar_class = load_tqdm() if show else None
        results = self._start_job(fn, iterables, **job)
        return results if bar_class is None else ProgressResults(results, bar_class, desc=_fn_name(fn))

    def imap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | None = None,
    ) -> Iterator[T]:
        """Lazy ``map``: results in input order, as soon as each is ready."""
        return self._results(progress, fn, iterables, mode=CALL_ONE, kind="ordered", chunksize=chunksize)

    def imap_unordered(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | None = None,
    ) -> Iterator[T]:
        """Lazy ``map`` in completion order."""
        return self._results(progress, fn, iterables, mode=CALL_ONE, kind="unordered", chunksize=chunksize)

    def map(  # type: ignore[override]
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        timeout: float | None = None,
        progress: bool | None = None,
    ) -> list[T]:
        """``[fn(x) for x in zip(*iterables)]`` computed by the workers; a list, in order."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)):
            raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
        seconds = None if timeout is None else float(timeout)
        return self._results(
            progress, fn, iterables, mode=CALL_ONE, kind="ordered", chunksize=chunksize, timeout=seconds
        ).collect()

    def starmap(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        *,
        progress: bool | None = None,
    ) -> list[T]:
        """``[fn(*args) for args in iterable]`` computed by the workers."""
        return self._results(progress, fn, (iterable,), mode=CALL_STAR, kind="ordered", chunksize=chunksize).collect()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; returns a ``concurrent.futures.Future``."""
        engine = self._engine_or_raise()
        ref = self._encode_callable(fn)
        future: Future[T] = Future()
        job = Job(ref, iter([(args, kwargs)]), mode=CALL_KW, kind="future", chunksize=1, total=1, future=future)
        engine.submit(job)
        return future

    def share(self, obj: T) -> Shared[T]:
        """Put ``obj`` in shared memory once; pass the handle instead of the object.

        Each worker loads the handle once and every task given it receives
        ``obj`` itself, its large buffers (numpy arrays, bytes) read-only in
        memory shared by all workers. It lives until the pool shuts down.
        """
        engine = self._engine_or_raise()
        return engine.share(obj)

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        """Accept no more work; workers exit once the work already given is done."""
        self._closed = True
        if self._engine is not None:
            self._engine.close()

    def join(self) -> None:
        """Wait for the workers to exit; call :meth:`close` or :meth:`terminate` first."""
        if not self._closed:
            raise ValueError("join() needs close() or terminate() first: the pool is still running")
        if self._engine is not None:
            self._engine.join()

    def terminate(self) -> None:
        """Kill the workers now; unfinished work fails with :class:`PoolClosedError`."""
        self._closed = True
        if self._engine is not None:
            self._engine.terminate()
            self._engine.join()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``concurrent.futures`` shutdown: close, optionally cancel queued futures, wait."""
        if not isinstance(wait, bool):
            raise TypeError(f"wait must be a bool, got {type(wait).__name__}")
        if not isinstance(cancel_futures, bool):
            raise TypeError(f"cancel_futures must be a bool, got {type(cancel_futures).__name__}")
        if cancel_futures and self._engine is not None:
            self._engine.cancel_queued_futures()
        self.close()
        if wait:
            self.join()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool | None:
        # Ctrl-C (or SystemExit) inside the block must not wait for running tasks.
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.terminate()
            return None
        return super().__exit__(exc_type, exc, tb)

    @property
    def stats(self) -> PoolStats:
        """Counters for this pool: tasks, chunks, bytes, seconds in dumps/loads."""
        return self._stats.snapshot()

    @property
    def workers(self) -> int:
        return self._workers

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<parallelpickle.Pool workers={self._workers} transport={self.transport!r} backend={self.backend!r} {state}>"


def _iterators(iterables: tuple[Iterable[Any], ...]) -> list[Iterator[Any]]:
    """``iter()`` of each argument, with builtin map's message for one that is not iterable."""
    out = []
    for position, iterable in enumerate(iterables, start=2):
        try:
            out.append(iter(iterable))
        except TypeError:
            raise TypeError(
                f"argument {position} (the data to map) must be iterable, got {type(iterable).__name__}"
            ) from None
    return out


def _fn_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else repr(fn)
