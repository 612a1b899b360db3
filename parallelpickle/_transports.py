"""Transports: how a callable, its arguments and its results become bytes.

A transport is a value handed down the data path, never a process-wide
setting (no ``dill.settings``, no ``copyreg`` registrations)::

    parent: Codec.dumps_callable(fn) -> (tag, bytes)   once per map
            Codec.dumps_data(chunk)  -> (tag, bytes)   once per chunk
    worker: Codec.loads(tag, bytes) -> call -> Codec.dumps_data(results)
    parent: Codec.loads(tag, bytes)

Every payload travels with a one-letter *tag* naming the serializer that made
it, so the receiving side never guesses. The four built-in transports:

=============  ===============================  ===========================
transport      callable                         data and results
=============  ===============================  ===========================
pickle         C pickle (by reference)          C pickle
dill           dill (by value where needed)     dill
cloudpickle    cloudpickle (by value)           cloudpickle
auto           C pickle, else cloudpickle,      C pickle protocol 5, else
               else dill; ``__main__`` objects  cloudpickle, else dill, for
               always by value                  that chunk only
=============  ===============================  ===========================

A user object with ``name``, ``dumps`` and ``loads`` is also a transport; it
must itself pickle by reference (a module-level instance or class) so that
spawned workers can receive it.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol, runtime_checkable

import cloudpickle
import dill

from ._shm import Collector, oob_dumps

__all__ = [
    "BUILTIN_TRANSPORTS",
    "Codec",
    "Transport",
    "digest_of",
    "loads_by_reference",
    "resolve_transport",
]

BUILTIN_TRANSPORTS = ("pickle", "dill", "cloudpickle", "auto")

# Tags: which serializer produced a payload.
PICKLE = "p"
CLOUDPICKLE = "c"
DILL = "d"
CUSTOM = "x"

_PROTOCOL = 5
# A pickle that names __main__ loads only where the worker's __main__ has the
# same attribute: not under spawn without a script file, not under fork for
# objects defined after the workers started. "auto" carries those by value.
_MAIN_MARKER = b"__main__"


@runtime_checkable
class Transport(Protocol):
    """The protocol a user-supplied transport object follows."""

    name: str

    def dumps(self, obj: Any, /) -> bytes: ...

    def loads(self, data: bytes, /) -> Any: ...


def loads_by_reference(data: bytes) -> bool:
    """Whether a C pickle of a callable will load in a worker.

    It must not name ``__main__`` (a spawned worker's ``__main__`` is another
    module), and its references must resolve: a method bound from a lambda
    dumps as ``getattr(obj, '<lambda>')``, which no worker can look up. Loading
    it here is what a forked worker does; a by-reference pickle is tiny.
    """
    if _MAIN_MARKER in data:
        return False
    try:
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - any failure means: carry it by value
        return False
    return True


def resolve_transport(transport: object) -> str | Transport:
    """Validate a ``transport=`` argument; return a built-in name or the object."""
    if isinstance(transport, str):
        if transport not in BUILTIN_TRANSPORTS:
            valid = ", ".join(repr(n) for n in BUILTIN_TRANSPORTS)
            raise ValueError(f"unknown transport {transport!r}; valid names: {valid}")
        return transport
    if (
        isinstance(getattr(transport, "name", None), str)
        and callable(getattr(transport, "dumps", None))
        and callable(getattr(transport, "loads", None))
    ):
        return transport  # type: ignore[return-value]
    valid = ", ".join(repr(n) for n in BUILTIN_TRANSPORTS)
    raise TypeError(
        f"transport must be one of {valid} or an object with a str 'name' and "
        f"callable 'dumps' and 'loads'; got {type(transport).__name__}"
    )


def digest_of(data: bytes) -> bytes:
    """A short content digest: workers cache loaded callables under it."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _pickle_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, _PROTOCOL)


def _forking_dumps(obj: Any) -> bytes:
    # What stdlib multiprocessing itself uses: C pickle plus its reducers.
    buf = io.BytesIO()
    ForkingPickler(buf, _PROTOCOL).dump(obj)
    return buf.getvalue()


def _cloudpickle_dumps(obj: Any) -> bytes:
    data: bytes = cloudpickle.dumps(obj, protocol=_PROTOCOL)
    return data


def _dill_dumps(obj: Any) -> bytes:
    # Explicit arguments, so dill.settings (process-wide) never leaks in.
    data: bytes = dill.dumps(obj, protocol=_PROTOCOL, byref=False, recurse=False)
    return data


def _dill_loads(data: bytes, buffers: list[Any] | None = None) -> Any:
    # dill binds a __main__ function's globals to the __main__ it saw when dill
    # was imported. In a spawned worker that is the bootstrap module, not the
    # user's re-imported script, so bind to the __main__ in force now (per
    # unpickler: no global setting is changed).
    unpickler = dill.Unpickler(io.BytesIO(data), ignore=False, buffers=buffers)
    unpickler._main = sys.modules["__main__"]
    return unpickler.load()


_DUMPS: dict[str, Callable[[Any], bytes]] = {
    PICKLE: _pickle_dumps,
    CLOUDPICKLE: _cloudpickle_dumps,
    DILL: _dill_dumps,
}

# Out-of-band pickling (``sink``): the serializer kind each tag uses.
_OOB_KINDS = {PICKLE: "pickle", CLOUDPICKLE: "cloudpickle", DILL: "dill"}

_SERIALIZER_NAMES = {PICKLE: "pickle", CLOUDPICKLE: "cloudpickle", DILL: "dill", CUSTOM: "custom"}


class Codec:
    """Turns callables and data into tagged bytes for one transport.

    A Codec is small and picklable: each worker receives its pool's Codec at
    start-up, so both ends agree without any global setting.
    """

    def __init__(self, transport: str | Transport) -> None:
        self.transport = transport
        self.name = transport if isinstance(transport, str) else str(transport.name)
        self.builtin = isinstance(transport, str)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Codec, (self.transport,))

    def serializer_name(self, tag: str) -> str:
        return _SERIALIZER_NAMES.get(tag, tag)

    # -- callables ---------------------------------------------------------
    def callable_tags(self) -> tuple[str, ...]:
        """The serializers tried for a callable, in order."""
        t = self.transport
        if t == "pickle":
            return (PICKLE,)
        if t == "dill":
            return (DILL,)
        if t == "cloudpickle":
            return (CLOUDPICKLE,)
        if t == "auto":
            return (PICKLE, CLOUDPICKLE, DILL)
        return (CUSTOM,)

    def dumps_with(self, tag: str, obj: Any, sink: Collector | None = None) -> bytes:
        """Serialize with one serializer; with a ``sink``, big buffers go out of band into it."""
        if sink is not None and tag != CUSTOM:  # a custom transport has no buffer_callback
            kind = "forking" if tag == PICKLE and self.transport == "pickle" else _OOB_KINDS[tag]
            return oob_dumps(kind, obj, sink)
        if tag == CUSTOM:
            assert not isinstance(self.transport, str)
            return bytes(self.transport.dumps(obj))
        if tag == PICKLE and self.transport == "pickle":
            return _forking_dumps(obj)
        return _DUMPS[tag](obj)

    def dumps_callable(self, fn: Any, first_tag: str | None = None) -> tuple[str, bytes]:
        """Serialize a callable; ``first_tag`` is a cached earlier decision."""
        tags = self.callable_tags()
        if first_tag is not None and first_tag in tags:
            tags = tags[tags.index(first_tag) :]
        errors: list[BaseException] = []
        for tag in tags:
            try:
                data = self.dumps_with(tag, fn)
            except Exception as exc:  # noqa: BLE001 - try the next serializer
                errors.append(exc)
                continue
            if self.transport == "auto" and tag == PICKLE and not loads_by_reference(data):
                continue  # by reference to __main__, or to a name that does not resolve: by value
            return tag, data
        raise errors[0] if errors else pickle.PicklingError(f"cannot serialize {fn!r}")

    # -- data --------------------------------------------------------------
    def data_tags(self) -> tuple[str, ...]:
        return self.callable_tags()

    def dumps_data(self, obj: Any, sink: Collector | None = None) -> tuple[str, bytes]:
        """Serialize arguments or results; ``auto`` falls back per payload.

        With a ``sink`` (see ``_shm``) buffers above its threshold are left
        out of the stream and collected there; the sink holds the buffers of
        the attempt whose bytes are returned.
        """
        if self.transport != "auto":
            tag = self.data_tags()[0]
            return tag, self.dumps_with(tag, obj, sink)
        try:
            data = self.dumps_with(PICKLE, obj, sink)
        except Exception as first:  # noqa: BLE001 - C pickle refused: go by value
            return self._dumps_by_value(obj, first, sink)
        if _MAIN_MARKER in data:
            try:
                return CLOUDPICKLE, self.dumps_with(CLOUDPICKLE, obj, sink)
            except Exception:  # noqa: BLE001 - keep the by-reference pickle
                return PICKLE, self.dumps_with(PICKLE, obj, sink)
        return PICKLE, data

    def _dumps_by_value(self, obj: Any, first: BaseException, sink: Collector | None) -> tuple[str, bytes]:
        try:
            return CLOUDPICKLE, self.dumps_with(CLOUDPICKLE, obj, sink)
        except Exception:  # noqa: BLE001
            pass
        try:
            return DILL, self.dumps_with(DILL, obj, sink)
        except Exception:  # noqa: BLE001
            raise first from None

    # -- both --------------------------------------------------------------
    def loads(self, tag: str, data: bytes, buffers: list[Any] | None = None) -> Any:
        """Load tagged bytes; ``buffers`` are the out-of-band buffers, in order."""
        if tag == DILL:
            return _dill_loads(data, buffers)
        if tag == CUSTOM:
            assert not isinstance(self.transport, str)
            return self.transport.loads(data)
        return pickle.loads(data, buffers=buffers)
