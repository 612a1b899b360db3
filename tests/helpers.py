"""Module-level functions the workers import by name (spawn needs them importable)."""

from __future__ import annotations

import os
import time
from typing import Any

STATE: dict[str, Any] = {}


def square(x: int) -> int:
    return x * x


def inc(x: int) -> int:
    return x + 1


def add(a: int, b: int) -> int:
    return a + b


def pid(_: object = None) -> int:
    return os.getpid()


def sleep_return(x: float) -> float:
    time.sleep(x)
    return x


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def raise_key_error(x: int) -> int:
    raise KeyError(x)


def kwargs_echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def set_state(value: str) -> None:
    STATE["value"] = value


def get_state(_: object = None) -> Any:
    return STATE.get("value")


def failing_initializer() -> None:
    raise RuntimeError("initializer refused")


class Upper:
    """A custom transport: pickle, with a marker so tests see it was used."""

    name = "upper"

    def dumps(self, obj: Any) -> bytes:
        import pickle

        return b"UP" + pickle.dumps(obj, 5)

    def loads(self, data: bytes) -> Any:
        import pickle

        assert data[:2] == b"UP", "payload did not come from this transport"
        return pickle.loads(data[2:])


UPPER = Upper()


def call_or_return(x: Any) -> Any:
    return x() if callable(x) else x
