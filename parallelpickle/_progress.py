"""Progress bars for ``map``, ``imap``, ``imap_unordered`` and ``starmap``.

The bar lives on the caller's side only. It wraps the ResultIterator the
caller reads, so it needs nothing from the engine or the workers and costs
nothing when progress is off::

    Pool._start_job ─▶ ResultIterator ─▶ ProgressResults ─▶ caller
                       (one chunk's list     └─ bar += len(chunk): items, not chunks
                        at a time)

Results come a chunk at a time, so the bar is fed once per chunk, never once
per item. It is drawn ten times a second at most while chunks stream in, and
whenever the caller is about to wait for a slow chunk, so the count on screen
is not left behind while the caller waits.

The bar stays on screen when every result has been read; it is erased when
the iteration stops early (a worker's error, ``break``, ``close()``), so a
traceback or the caller's next output starts on a clean line.

tqdm is optional (``pip install 'parallelpickle[progress]'``): it is imported
only when a bar is asked for, and its absence is reported before any work
starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any

from ._jobs import ResultIterator

__all__ = ["ProgressResults", "check_progress", "load_tqdm"]

_REDRAW_S = 0.1  # tqdm's own default minimum interval between redraws
# Chunks arriving further apart than this are "slow": each wait gets a fresh count.
_STEADY_GAP_S = 0.005

_MISSING_TQDM = (
    "progress bars need tqdm, which is not installed here: "
    "pip install 'parallelpickle[progress]' (or pip install tqdm), or pass progress=False"
)


def check_progress(value: object) -> bool | None:
    """Validate a per-call ``progress`` argument: True, False or None (the pool's setting)."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"progress must be a bool or None, got {type(value).__name__}")
    return value


def load_tqdm() -> Callable[..., Any]:
    """The tqdm class to draw with; ``tqdm.auto`` picks a widget inside Jupyter."""
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError(_MISSING_TQDM) from exc
    # tqdm's monitor thread outlives the bar, and a Pool started afterwards
    # would fork a multi-threaded process (Python 3.12+ warns of deadlocks).
    # A subclass turns it off for our bars only; ProgressResults decides when
    # to draw, which is the job the monitor does.
    bar_class: Callable[..., Any] = type("ProgressBar", (tqdm,), {"monitor_interval": 0})
    return bar_class


class ProgressResults(Iterator[Any]):
    """A :class:`ResultIterator` whose results are counted on a tqdm bar.

    The same surface: iterate it, :meth:`collect` it (``map``), :meth:`close`
    it. The bar knows the total when the input is sized (``Job.total``). It
    stays on screen when every result has been read and is erased when the
    iteration stops early (a worker's error, ``break``, ``close()``, Ctrl-C),
    so a traceback or the caller's next output starts on a clean line.
    ``file`` is where the bar is drawn; None means tqdm's default, stderr.
    """

    def __init__(
        self,
        results: ResultIterator,
        bar_class: Callable[..., Any],
        *,
        desc: str | None = None,
        file: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._results = results
        self._clock = clock
        self._unshown = 0
        self._next_draw = 0.0
        self._last_chunk = clock()
        self._gap = _STEADY_GAP_S  # average time between chunks, until measured
        self._bar: Any = None
        self._gen = self._generate()
        # The bar draws on every update it is given; _count decides when.
        self._bar = bar_class(
            total=results.job.total,
            desc=desc,
            unit="item",
            file=file,
            leave=True,
            dynamic_ncols=True,
            miniters=1,
            mininterval=0,
        )

    def __iter__(self) -> Iterator[Any]:
        return self._gen

    def __next__(self) -> Any:
        return next(self._gen)

    def _generate(self) -> Generator[Any, None, None]:
        try:
            while (values := self.next_values()) is not None:
                yield from values
        finally:
            self._stop()

    def collect(self) -> list[Any]:
        """Every result, in order, as one list (``map``)."""
        out: list[Any] = []
        try:
            while (values := self.next_values()) is not None:
                out.extend(values)
        finally:
            self._stop()
        return out

    def next_values(self) -> list[Any] | None:
        """The next chunk's results, counted on the bar; None at the end."""
        try:
            values = self._results.next_values()
        except BaseException:
            self._stop()
            raise
        if values is None:
            self._finish(complete=True)
            return None
        self._count(len(values))
        return values

    def _count(self, n: int) -> None:
        self._unshown += n
        now = self._clock()
        self._gap += (now - self._last_chunk - self._gap) / 4  # moving average
        self._last_chunk = now
        # A redraw costs tens of microseconds of the CPU the workers use too.
        # Draw a tenth of a second after the last draw; earlier only when the
        # caller is about to wait and chunks come slowly, so a count on screen
        # is never stale for longer than it takes a few chunks to arrive.
        waits = not self._results.in_hand()
        if now >= self._next_draw or (waits and self._gap >= _STEADY_GAP_S):
            self._bar.update(self._unshown)
            self._unshown = 0
            self._next_draw = now + _REDRAW_S

    def _finish(self, *, complete: bool) -> None:
        bar, self._bar = self._bar, None
        if bar is None:
            return
        bar.update(self._unshown)
        if not complete:
            bar.leave = False  # tqdm erases a bar closed with leave=False
        bar.close()

    def _stop(self) -> None:
        """Stopped before the end (or after it: then this does nothing)."""
        self._finish(complete=False)
        self._results.close()

    def close(self) -> None:
        """Stop early: erase the bar and cancel the rest of the work."""
        self._stop()
        if not getattr(self._gen, "gi_running", False):  # not from the generator's own finally
            self._gen.close()

    def __del__(self) -> None:
        # Dropped after a ``break``: same as close(), so no bar is left half drawn.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
