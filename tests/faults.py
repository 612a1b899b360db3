"""Objects that misbehave at one stage of a task's trip (fault injection).

Stage x how: each class below does its ``how`` when pickled (``At*Dump``) or
when unpickled (``At*Load``); the functions do it while running.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

HOWS = ("raise", "exit", "sigkill", "segfault")


class InjectedError(Exception):
    pass


def do(how: str) -> None:
    if how == "none":
        return
    if how == "raise":
        raise InjectedError(f"injected {how}")
    if how == "exit":
        os._exit(3)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":
        ctypes.string_at(0)
    raise ValueError(how)


def _load_and_do(how: str) -> Any:
    do(how)
    return None


class AtDump:
    """Misbehaves when pickled."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> Any:
        do(self.how)
        return (AtDump, (self.how,))


class AtLoad:
    """Pickles fine; misbehaves when unpickled."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> Any:
        return (_load_and_do, (self.how,))


def identity(x: Any) -> Any:
    return x


def call_and_do(how: str) -> None:
    do(how)


def return_at_dump(how: str) -> AtDump | None:
    return None if how == "none" else AtDump(how)


def return_at_load(how: str) -> AtLoad:
    return AtLoad(how)


def memory_error(_: object) -> None:
    raise MemoryError("injected")


class NeedsTwoArgs(Exception):
    """Pickles, but unpickling calls __init__(message) with one argument: fails."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def raise_unloadable(_: object) -> None:
    raise NeedsTwoArgs("cannot come back", 7)


def raising_initializer() -> None:
    raise InjectedError("initializer refused")


def getpid(_: object = None) -> int:
    return os.getpid()


def sleep_then(x: tuple[float, str]) -> float:
    """Sleep ``x[0]`` seconds, then do ``x[1]`` (see :func:`do`); returns the delay."""
    import time

    time.sleep(x[0])
    do(x[1])
    return x[0]
