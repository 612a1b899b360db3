"""The exception hierarchy, and how a worker's exception travels home.

Every error this package raises derives from :class:`ParallelPickleError`, and
also from the standard class a caller of ``multiprocessing`` or
``concurrent.futures`` already catches, so existing ``except`` clauses keep
working::

    SerializationError  -> pickle.PicklingError
    WorkerCrashedError  -> concurrent.futures.process.BrokenProcessPool
    TaskTimeoutError    -> TimeoutError
    PoolClosedError     -> RuntimeError, ValueError

A worker's own exception is re-raised in the parent with its original type.
The remote traceback becomes its ``__cause__`` (the same trick as CPython's
``concurrent.futures.process._ExceptionWithTraceback``) and the index of the
failing item is added as a note.
"""

from __future__ import annotations

import pickle
import sys
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = [
    "ParallelPickleError",
    "PoolClosedError",
    "RemoteError",
    "RemoteTraceback",
    "SerializationError",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "add_note",
]


class ParallelPickleError(Exception):
    """Root of every error raised by parallelpickle."""


class SerializationError(ParallelPickleError, pickle.PicklingError):
    """An object could not be dumped or loaded by the chosen transport.

    The message carries the diagnosis: what failed, where (a Python-like path
    to the culprit when one is known), why, and what to do instead.
    """

    def __init__(self, message: str, *, index: int | None = None, report: Any = None) -> None:
        super().__init__(message)
        self.index = index
        self.report = report


class WorkerCrashedError(ParallelPickleError, BrokenProcessPool):
    """A worker process died while it held a task (exit, signal, segfault)."""

    def __init__(self, message: str, *, index: int | None = None, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.exitcode = exitcode


class TaskTimeoutError(ParallelPickleError, TimeoutError):
    """A task ran longer than the pool's ``task_timeout``; its worker was killed."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class PoolClosedError(ParallelPickleError, RuntimeError, ValueError):
    """Work was given to a pool that is closed, shut down or terminated.

    It is a ``RuntimeError`` like ``concurrent.futures`` raises after shutdown
    and a ``ValueError`` like ``multiprocessing.Pool`` raises when not running.
    """


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback; shown as the ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class RemoteError(ParallelPickleError):
    """Stands in for a worker exception whose type could not be carried home."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteError, (self.type_name, self.message))


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note`` on 3.11+; on 3.10 the note is kept in ``__notes__`` too."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - exercised on 3.10 only
        notes = getattr(exc, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            try:
                exc.__notes__ = notes  # type: ignore[attr-defined]
            except AttributeError:
                return
        notes.append(note)
