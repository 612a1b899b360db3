"""Jobs: one ``map``/``imap``/``submit`` call, cut into chunks, and its results.

The engine thread (the only writer of a job's dispatch state) pulls chunks
with :meth:`Job.take_chunk` and reports outcomes with :meth:`Job.deliver` and
:meth:`Job.fail`. The caller's thread reads outcomes as events from a queue::

    caller ── Pool.imap ─▶ Job ──take_chunk──▶ engine ──▶ workers
    caller ◀─ ResultIterator ◀── events ◀── deliver / fail ◀── engine

Input is consumed lazily: a chunk is cut from the user's iterable only when a
worker can take it, so a generator of ten million items needs memory for a
few chunks, not for the whole input.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FuturesTimeoutError
from dataclasses import dataclass, field
from typing import Any

from ._errors import ParallelPickleError, add_note

# Chunk sizing for inputs of unknown length: aim for chunks of this duration.
_TARGET_CHUNK_S = 0.02
_MAX_ADAPTIVE_CHUNK = 4096
_FIRST_ADAPTIVE_CHUNK = 8


@dataclass(frozen=True)
class FnRef:
    """A callable serialized once per job; chunks carry only its digest."""

    digest: bytes
    tag: str
    data: bytes


@dataclass
class Chunk:
    job: Job
    cid: int
    start: int  # index of the first item in the job's input
    items: list[Any]
    data_tag: str = ""
    data: bytes = b""

    @property
    def stop(self) -> int:
        return self.start + len(self.items)

    def describe(self) -> str:
        if len(self.items) == 1:
            return f"item {self.start}"
        return f"items {self.start}-{self.stop - 1}"


@dataclass
class _Event:
    kind: str  # "ok" | "err" | "abort" | "end"
    start: int = 0
    values: list[Any] = field(default_factory=list)
    exc: BaseException | None = None


def sized_length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    lengths = []
    for it in iterables:
        try:
            lengths.append(len(it))  # type: ignore[arg-type]
        except TypeError:
            return None
    return min(lengths) if lengths else None


def auto_chunksize(n_items: int, workers: int) -> int:
    """multiprocessing.Pool.map's rule: about four chunks per worker."""
    size, extra = divmod(n_items, workers * 4)
    return max(1, size + (1 if extra else 0))


class Job:
    """One call's worth of work. Dispatch state belongs to the engine thread."""

    _ids = itertools.count()

    def __init__(
        self,
        fn_ref: FnRef,
        items: Iterator[Any],
        *,
        mode: int,
        kind: str,
        chunksize: int | None,
        total: int | None,
        future: Future[Any] | None = None,
        max_buffered: int | None = None,
    ) -> None:
        self.jid = next(self._ids)
        self.fn_ref = fn_ref
        self.mode = mode
        self.kind = kind  # "ordered" | "unordered" | "future"
        self.total = total
        self.future = future
        self._items = items
        self._next_index = 0
        self._fixed_chunksize = chunksize
        self._adaptive = chunksize is None
        self._chunksize = chunksize or _FIRST_ADAPTIVE_CHUNK
        self.retry: deque[Chunk] = deque()
        self.inflight: dict[int, Chunk] = {}
        self.exhausted = False
        self.failed_at: int | None = None
        self.cancelled = threading.Event()
        self.events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self.ended = False
        # Backpressure for lazy iterators: stop cutting chunks while this many
        # delivered chunks wait for the caller. None: unbounded.
        self.max_buffered = max_buffered
        self.buffered = 0
        self._buffer_lock = threading.Lock()
        self.on_consumed: Callable[[], None] = lambda: None

    # -- engine side -------------------------------------------------------
    def paused(self) -> bool:
        return self.max_buffered is not None and self.buffered >= self.max_buffered

    def take_chunk(self, cid: int) -> Chunk | None:
        if self.cancelled.is_set():
            return None
        if self.retry:
            chunk = self.retry.popleft()
            self.inflight[chunk.cid] = chunk
            return chunk
        if self.exhausted or self.failed_at is not None or self.paused():
            return None
        items = list(itertools.islice(self._items, self._chunksize))
        if not items:
            self.exhausted = True
            return None
        chunk = Chunk(self, cid, self._next_index, items)
        self._next_index += len(items)
        if len(items) < self._chunksize or (self.total is not None and self._next_index >= self.total):
            self.exhausted = True
        self.inflight[cid] = chunk
        return chunk

    def note_timing(self, n_items: int, call_s: float) -> None:
        """Adapt the chunk size of an unsized input to the observed task cost."""
        if not self._adaptive or n_items <= 0:
            return
        per_item = max(call_s / n_items, 1e-7)
        wanted = int(_TARGET_CHUNK_S / per_item)
        self._chunksize = max(1, min(wanted, self._chunksize * 2, _MAX_ADAPTIVE_CHUNK))

    def deliver(self, chunk: Chunk, values: list[Any]) -> None:
        """Results of ``values`` for items ``chunk.start …`` have arrived."""
        if self.kind == "future":
            assert self.future is not None
            if values and not self.future.done():
                self.future.set_result(values[0])
            return
        if values:
            with self._buffer_lock:
                self.buffered += 1
            self.events.put(_Event("ok", chunk.start, values))

    def fail(self, index: int, exc: BaseException, note: str | None = None) -> None:
        """Item ``index`` failed with ``exc``; later chunks are not cut any more."""
        add_note(exc, note or f"parallelpickle: raised by item {index} of the input")
        if self.kind == "future":
            assert self.future is not None
            if not self.future.done():
                self.future.set_exception(exc)
            return
        if self.failed_at is None or index < self.failed_at:
            self.failed_at = index
        self.events.put(_Event("err", index, exc=exc))

    def finish_chunk(self, chunk: Chunk) -> None:
        self.inflight.pop(chunk.cid, None)

    def putback(self, chunk: Chunk) -> None:
        """Return a chunk that was cut but not sent; it goes out next."""
        self.inflight.pop(chunk.cid, None)
        self.retry.appendleft(chunk)

    def requeue(self, chunk: Chunk) -> None:
        self.inflight.pop(chunk.cid, None)
        if chunk.items and not self.cancelled.is_set():
            chunk.data = b""
            self.retry.append(chunk)

    def done(self) -> bool:
        if self.inflight or self.retry:
            return self.cancelled.is_set() and not self.inflight
        return self.exhausted or self.failed_at is not None or self.cancelled.is_set()

    def end(self, exc: BaseException | None = None) -> None:
        """No more events will come; ``exc`` fails whatever is still waiting."""
        if self.ended:
            return
        self.ended = True
        if self.kind == "future":
            assert self.future is not None
            if not self.future.done():
                if exc is None:
                    self.future.cancel()
                else:
                    self.future.set_exception(exc)
            return
        if exc is not None:
            self.events.put(_Event("abort", exc=exc))
        self.events.put(_Event("end", self._next_index))

    def input_error(self, exc: BaseException) -> None:
        """The caller's iterable raised while a chunk was being cut."""
        self.exhausted = True
        self.fail(self._next_index, exc, f"parallelpickle: raised by the input iterable at item {self._next_index}")

    # -- caller side -------------------------------------------------------
    def consumed_one(self) -> None:
        with self._buffer_lock:
            self.buffered -= 1
            wake = self.max_buffered is not None and self.buffered == self.max_buffered - 1
        if wake:
            self.on_consumed()


class ResultIterator(Iterator[Any]):
    """The lazy iterator ``imap``/``imap_unordered`` return.

    Ordered mode yields results in input order and raises at the first failing
    index, after every earlier result; unordered mode yields in completion
    order and raises when a failure arrives. Closing it (or dropping it)
    cancels the rest of the job.

    Results arrive a chunk at a time; ``iter()`` hands out a generator that
    yields from each chunk's list at C speed, and :meth:`collect` (what
    ``map`` uses) extends one list chunk by chunk.
    """

    def __init__(
        self,
        job: Job,
        cancel: Callable[[Job], None],
        timeout: float | None = None,
        on_interrupt: Callable[[], None] | None = None,
    ) -> None:
        self._job = job
        self._cancel = cancel
        self._ordered = job.kind == "ordered"
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._on_interrupt = on_interrupt
        self._pending: dict[int, list[Any]] = {}
        self._unordered: deque[list[Any]] = deque()
        self._next = 0
        self._error: tuple[int, BaseException] | None = None
        self._end: int | None = None
        self._abort: BaseException | None = None
        self._closed = False
        self._gen = self._generate()

    @property
    def job(self) -> Job:
        return self._job

    def __iter__(self) -> Iterator[Any]:
        return self._gen

    def __next__(self) -> Any:
        return next(self._gen)

    def _generate(self) -> Generator[Any, None, None]:
        try:
            while (values := self.next_values()) is not None:
                yield from values
        finally:
            self.close()

    def collect(self) -> list[Any]:
        """Every result, in order, as one list (``map``)."""
        out: list[Any] = []
        try:
            while (values := self.next_values()) is not None:
                out.extend(values)
        finally:
            self.close()
        return out

    def next_values(self) -> list[Any] | None:
        """The next chunk's results; None at the end; raises the job's error."""
        while True:
            if self._closed:
                return None
            if self._ordered and self._next in self._pending:
                values = self._pending.pop(self._next)
                self._next += len(values)
                self._job.consumed_one()  # buffered until it is next in line
                return values
            if self._unordered:
                self._job.consumed_one()
                return self._unordered.popleft()
            if self._error is not None and (not self._ordered or self._error[0] <= self._next):
                exc = self._error[1]
                self.close()
                raise exc
            if self._abort is not None:
                self.close()
                raise self._abort
            if self._end is not None:
                self.close()
                if self._ordered and self._next < self._end:
                    raise ParallelPickleError(f"results from item {self._next} on never arrived")
                return None
            self._wait_event()

    def _wait_event(self) -> None:
        timeout = None
        if self._deadline is not None:
            timeout = self._deadline - time.monotonic()
            if timeout <= 0:
                self.close()
                raise FuturesTimeoutError("the results did not arrive within the timeout")
        try:
            event = self._job.events.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise FuturesTimeoutError("the results did not arrive within the timeout") from None
        except KeyboardInterrupt:
            self.close()
            if self._on_interrupt is not None:
                self._on_interrupt()
            raise
        if event.kind == "ok":
            if self._ordered:
                self._pending[event.start] = event.values
            else:
                self._unordered.append(event.values)
        elif event.kind == "abort":
            self._abort = event.exc
        elif event.kind == "err":
            assert event.exc is not None
            if self._error is None or event.start < self._error[0]:
                self._error = (event.start, event.exc)
        else:
            self._end = event.start

    def in_hand(self) -> bool:
        """Whether :meth:`next_values` has a chunk to return without waiting for a worker."""
        return bool(self._unordered) or (self._ordered and self._next in self._pending)

    def close(self) -> None:
        """Stop: the rest of the job is cancelled and nothing more is yielded."""
        if not self._closed:
            self._closed = True
            self._pending.clear()
            self._unordered.clear()
            self._cancel(self._job)
            if not getattr(self._gen, "gi_running", False):  # not from the generator's own finally
                self._gen.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
