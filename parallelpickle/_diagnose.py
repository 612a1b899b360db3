"""Turn a serialization failure inside a Pool call into an explained error.

The pool calls :func:`serialization_error` wherever a dump or load fails; the
message says what failed, why in plain words, and which transports would
carry the object. The full analysis (paths to the culprit, verdicts per start
method) lives in the checker; this module is the pool's entry point to it.
"""

from __future__ import annotations

import pickle
import types
from typing import Any

import cloudpickle
import dill

from ._errors import SerializationError


def _dill(obj: Any) -> bytes:
    data: bytes = dill.dumps(obj, protocol=5, byref=False, recurse=False)
    return data


def _cloudpickle(obj: Any) -> bytes:
    data: bytes = cloudpickle.dumps(obj, protocol=5)
    return data


def _pickle(obj: Any) -> bytes:
    return pickle.dumps(obj, 5)


_TRIALS = {"cloudpickle": _cloudpickle, "dill": _dill, "pickle": _pickle}


def _reason(obj: Any, exc: BaseException) -> str:
    if isinstance(obj, types.FunctionType):
        if obj.__name__ == "<lambda>":
            return (
                "stdlib pickle stores a function by reference (module and name), and a lambda "
                "has no name to import in the worker"
            )
        if "<locals>" in obj.__qualname__:
            return (
                f"{obj.__qualname__} is defined inside another function; pickle can only store "
                "functions importable by module and name"
            )
    text = str(exc)
    if "__main__" in text:
        return "the object is defined in __main__, which the worker may not be able to import by name"
    return f"{type(exc).__name__}: {text}"


def carriers(obj: Any) -> list[str]:
    """The built-in transports that can at least dump ``obj`` in this process."""
    names = []
    for name, dumps in _TRIALS.items():
        try:
            dumps(obj)
        except Exception:  # noqa: BLE001 - that one cannot carry it
            continue
        names.append(name)
    if names:
        names.append("auto")
    return names


def serialization_error(exc: BaseException, obj: Any, transport: str, *, what: str, stage: str) -> SerializationError:
    """Build the SerializationError a Pool call raises; ``exc`` becomes its cause."""
    if isinstance(exc, SerializationError):
        return exc
    verb = "serialize" if stage == "dump" else "load"
    lines = [f"transport {transport!r} cannot {verb} the {what}: {type(exc).__name__}: {exc}"]
    if obj is not None:
        lines.append(f"why: {_reason(obj, exc)}")
        others = [n for n in carriers(obj) if n != transport]
        if others:
            lines.append(f"fix: use transport={others[0]!r} (these can carry it: {', '.join(others)})")
        else:
            lines.append("fix: no built-in transport can serialize it; pass what it is built from instead")
    elif stage == "load":
        lines.append(
            "why: the bytes were written but could not be turned back into objects on the other side "
            "(a class or function the receiving process cannot import, or a __setstate__/__init__ that raised)"
        )
        lines.append(
            "fix: define classes and functions at module level in an importable module, or use "
            "transport='cloudpickle' to carry them by value"
        )
    err = SerializationError("\n".join(lines))
    err.__cause__ = exc
    return err
