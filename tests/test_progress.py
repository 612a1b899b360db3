"""Progress bars: items counted, totals known for sized input, erased on error, silent when off.

The bar is drawn on the caller's side and never depends on the transport or
the start method, so one process pool (the defaults) serves every test here.
"""

from __future__ import annotations

import functools
import gc
import io
import itertools
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from tqdm import tqdm

from parallelpickle import Pool
from parallelpickle._progress import ProgressResults, load_tqdm

N = 40
CHUNK = 5  # N // CHUNK == 8 chunks: a bar that counted chunks would stop at 8


def double(x: int) -> int:
    return 2 * x


def add(a: int, b: int) -> int:
    return a + b


def fail_at_17(x: int) -> int:
    if x == 17:
        raise ValueError("item 17 is bad")
    return x


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with Pool(2) as p:
        yield p


def frames(output: str) -> list[str]:
    """What the terminal showed, one entry per redraw (tqdm redraws after a carriage return)."""
    return [f for f in re.split(r"[\r\n]", output) if f.strip()]


def call(pool: Pool, form: str, sized: bool, **kwargs: Any) -> list[int]:
    xs: Any = list(range(N)) if sized else (x for x in range(N))
    if form == "map":
        return pool.map(double, xs, chunksize=CHUNK, **kwargs)
    if form == "imap":
        return list(pool.imap(double, xs, chunksize=CHUNK, **kwargs))
    if form == "imap_unordered":
        return sorted(pool.imap_unordered(double, xs, chunksize=CHUNK, **kwargs))
    pairs: Any = [(x, x) for x in range(N)] if sized else ((x, x) for x in range(N))
    return pool.starmap(add, pairs, CHUNK, **kwargs)


FORMS = ["map", "imap", "imap_unordered", "starmap"]


@pytest.mark.parametrize("sized", [True, False], ids=["sized", "unsized"])
@pytest.mark.parametrize("form", FORMS)
def test_bar_counts_items_and_knows_sized_totals(
    pool: Pool, form: str, sized: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert call(pool, form, sized, progress=True) == [2 * x for x in range(N)]
    out = capsys.readouterr().err
    shown = frames(out)
    final = shown[-1]
    assert out.endswith("\n"), "a finished bar stays on screen"
    if sized:
        assert f"{N}/{N}" in final and "100%" in final
        assert all(f"/{N}" in f for f in shown), "every redraw knows the total"
    else:
        assert f"{N}item " in final and "%" not in final
    counts = [int(m.group(1)) for f in shown if (m := re.search(r"(\d+)(?:/\d+| ?item )", f))]
    assert counts[0] == 0 and counts[-1] == N and counts == sorted(counts)


def slow_at_9(x: int) -> int:
    if x == 9:
        time.sleep(0.3)
    return x


@pytest.mark.parametrize("form", ["imap", "imap_unordered"])
def test_count_is_current_while_the_caller_waits(pool: Pool, form: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The first chunk's five results arrive together, then the next chunk takes
    # a while: the bar must show 5 during that wait, not the count it had
    # when the first of the five came in.
    results = getattr(pool, form)(slow_at_9, range(10), chunksize=5, progress=True)
    assert sorted(next(results) for _ in range(5)) == [0, 1, 2, 3, 4]
    assert frames(capsys.readouterr().err)[-1].split("|")[-1].lstrip().startswith("5/10")
    assert sorted(results) == [5, 6, 7, 8, 9]


@pytest.mark.parametrize("form", ["map", "imap", "imap_unordered"])
def test_bar_is_erased_when_a_worker_fails(pool: Pool, form: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="item 17 is bad"):
        if form == "map":
            pool.map(fail_at_17, range(N), chunksize=1, progress=True)
        else:
            for _ in getattr(pool, form)(fail_at_17, range(N), chunksize=1, progress=True):
                pass
    out = capsys.readouterr().err
    assert f"/{N}" in out, "the bar was drawn before the error"
    assert "\n" not in out, "nothing of the bar is left on its own line"
    assert re.search(r"\r +\r$", out), "the last redraw blanks the line and returns the cursor"
    assert not tqdm._instances, "the bar was closed"
    assert pool.map(double, range(3)) == [0, 2, 4], "the pool still works"


def test_bar_is_erased_on_early_stop(pool: Pool, capsys: pytest.CaptureFixture[str]) -> None:
    results = pool.imap(double, range(10_000), chunksize=1, progress=True)
    assert next(results) == 0
    results.close()  # type: ignore[attr-defined]
    for _ in pool.imap_unordered(double, range(10_000), chunksize=1, progress=True):
        break
    gc.collect()
    out = capsys.readouterr().err
    assert "/10000" in out and "\n" not in out
    assert not tqdm._instances
    assert pool.map(double, range(3)) == [0, 2, 4]


@pytest.mark.parametrize("form", FORMS)
def test_no_output_when_progress_is_off(pool: Pool, form: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert call(pool, form, True) == [2 * x for x in range(N)]
    assert call(pool, form, True, progress=False) == [2 * x for x in range(N)]
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_pool_default_and_per_call_override(capfd: pytest.CaptureFixture[str]) -> None:
    def monitors() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if type(t).__name__ == "TMonitor"}

    before = monitors()  # another library's plain tqdm bar may have started one
    with Pool(2, progress=True) as p:
        assert p.map(double, range(N)) == [2 * x for x in range(N)]
        # Our bars start no helper thread: a pool started next forks a single-threaded parent.
        assert monitors() <= before
        assert f"{N}/{N}" in capfd.readouterr().err
        assert p.map(double, range(N), progress=False) == [2 * x for x in range(N)]
        assert capfd.readouterr() == ("", "")


def test_missing_tqdm_fails_before_any_work(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks_before = pool.stats.tasks
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"parallelpickle\[progress\]"):
        pool.map(double, range(N), progress=True)
    assert pool.stats.tasks == tasks_before, "no work was sent"
    assert pool.map(double, range(3)) == [0, 2, 4], "progress off needs no tqdm"


def test_progress_argument_is_validated(pool: Pool) -> None:
    with pytest.raises(TypeError, match="progress must be a bool or None"):
        pool.map(double, range(3), progress="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress must be a bool"):
        Pool(1, progress=1)  # type: ignore[arg-type]


class Chunks:
    """Stands in for a ResultIterator: hands out prepared chunks; ``waits_after`` says which chunks run out what is in hand."""

    def __init__(self, chunks: list[list[str]], waits_after: set[int]) -> None:
        self.job = SimpleNamespace(total=sum(len(c) for c in chunks))
        self._chunks = chunks
        self._given = 0
        self._waits_after = waits_after
        self.closed = False

    def next_values(self) -> list[str] | None:
        if self._given == len(self._chunks):
            return None
        self._given += 1
        return self._chunks[self._given - 1]

    def in_hand(self) -> bool:
        return self._given < len(self._chunks) and self._given - 1 not in self._waits_after

    def close(self) -> None:
        self.closed = True


def shown_counts(stream: io.StringIO) -> list[int]:
    return [int(f.split("|")[-1].split("/")[0]) for f in frames(stream.getvalue())]


def ticking(step_s: float) -> Callable[[], float]:
    """A clock that advances ``step_s`` each time it is read."""
    return functools.partial(next, itertools.count(0.0, step_s))


def counted(chunks: list[list[str]], waits_after: set[int], step_s: float) -> tuple[list[str], list[int]]:
    stream = io.StringIO()
    source = Chunks(chunks, waits_after)
    results = ProgressResults(source, load_tqdm(), file=stream, clock=ticking(step_s))  # type: ignore[arg-type]
    return results.collect(), shown_counts(stream)


def test_bar_is_drawn_when_the_caller_would_wait_for_a_slow_chunk() -> None:
    chunks = [["a", "b"], ["c"], ["d", "e"]]
    # Chunks 10 ms apart: a draw each time the caller runs out of results...
    assert counted(chunks, {0, 1, 2}, 0.01) == (list("abcde"), [0, 2, 3, 5, 5])
    # ...but not while the next chunk is already in hand.
    assert counted(chunks, {2}, 0.01) == (list("abcde"), [0, 2, 5, 5])
    # Chunks streaming in 0.1 ms apart: at most ten draws a second.
    assert counted(chunks, {0, 1, 2}, 0.0001) == (list("abcde"), [0, 2, 5, 5])


def test_close_erases_and_closes_the_results() -> None:
    stream = io.StringIO()
    source = Chunks([["a", "b"], ["c"]], waits_after={0, 1})
    counted = ProgressResults(source, load_tqdm(), file=stream)  # type: ignore[arg-type]
    assert next(counted) == "a"
    counted.close()
    assert source.closed and list(counted) == []
    assert re.search(r"\r +\r$", stream.getvalue()) and "\n" not in stream.getvalue()
