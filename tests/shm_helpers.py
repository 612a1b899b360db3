"""Functions the shared-memory tests run in workers (importable by name under spawn)."""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

from . import faults

KEPT: list[Any] = []


def describe(a: Any) -> tuple[Any, ...]:
    """What a task sees of an array: everything an in-band load would also give."""
    content = repr(a.tolist()) if a.dtype.hasobject else a.tobytes("A")
    return (type(a).__name__, a.dtype.str, a.shape, a.flags.c_contiguous, a.flags.f_contiguous, content)


def identity(x: Any) -> Any:
    return x


def total(a: Any) -> float:
    return float(a.sum())


def keep_and_check(a: Any) -> bool:
    """Keep the argument (a worker-global reference) and check that every kept one is intact."""
    KEPT.append(a)
    return all(bool((k == k.flat[0]).all()) for k in KEPT)


def shared_view(a: Any) -> tuple[int, int, bool, float]:
    return os.getpid(), id(a), bool(a.flags.writeable), float(a.sum())


def filled(n: int) -> Any:
    return np.full(n, 7, dtype=np.int64)


def big_then(arg: tuple[Any, str]) -> Any:
    """Carry a big argument, misbehave, return a big result."""
    array, how = arg
    faults.do(how)
    return array * 2


def big_at_dump(arg: tuple[Any, str]) -> Any:
    array, how = arg
    return [array, faults.AtDump(how)] if how != "none" else [array]


class Blob:
    """A user type that pickles its payload as a protocol-5 PickleBuffer (PEP 574)."""

    def __init__(self, data: bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Blob._rebuild, (pickle.PickleBuffer(self.data),)

    @staticmethod
    def _rebuild(buffer: Any) -> Blob:
        return Blob(bytearray(buffer))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]
