"""Trial dumps and loads that mirror what a Pool does with each transport.

Each built-in transport is reproduced with the exact pickler and options the
pool's :class:`~parallelpickle._transports.Codec` uses (stdlib
``ForkingPickler`` for ``pickle``, ``dill.Pickler(byref=False,
recurse=False)``, ``cloudpickle.Pickler``, and ``auto``'s fall-through with
its ``__main__`` rule), at protocol 5::

    obj ─▶ dump(obj, transport, role) ─▶ Payload(serializer, data, leaves, buffers)
                                          │
                         load(payload) ◀──┘  (in this process: what a forked worker does)

Checking must stay cheap for large arguments, so nothing large is copied:
protocol-5 out-of-band buffers are collected, not written, and large inert
leaves (exact ``bytes``/``str``/``bytearray`` and plain numpy arrays of a
non-object dtype, which every transport carries by a reference to numpy or
builtins) become persistent ids; the load hands the same objects back.
"""

from __future__ import annotations

import io
import pickle
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from typing import Any

import cloudpickle
import dill

from .._transports import loads_by_reference

__all__ = ["Payload", "TrialError", "dump", "load"]

_PROTOCOL = 5
_INERT_MIN = 1 << 16  # smaller leaves are cheap to write; no need to elide them
_MAIN_MARKER = b"__main__"  # the Codec's rule: auto carries __main__ objects by value


@dataclass
class Payload:
    """A successful trial dump: the bytes plus what was kept out of them."""

    serializer: str
    data: bytes
    leaves: list[Any] = field(default_factory=list)
    buffers: list[pickle.PickleBuffer] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """What the real payload would weigh (in-band bytes plus what was elided)."""
        extra = sum(memoryview(b).nbytes for b in self.buffers)
        for leaf in self.leaves:
            extra += int(getattr(leaf, "nbytes", len(leaf)))
        return len(self.data) + extra


class TrialError(Exception):
    """A trial dump failed; ``errors`` holds each serializer's exception, in order tried."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(str(errors[0]))
        self.errors = errors

    @property
    def first(self) -> BaseException:
        return self.errors[0]


def _inert(obj: Any) -> bool:
    kind = type(obj)
    if kind is bytes or kind is str or kind is bytearray:
        return len(obj) >= _INERT_MIN
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        return not obj.dtype.hasobject and obj.nbytes >= _INERT_MIN
    return False


class _Leaves:
    """Persistent-id hooks shared by every trial pickler: large inert leaves become ids."""

    leaves: list[Any]

    def persistent_id(self, obj: Any) -> Any:
        if _inert(obj):
            self.leaves.append(obj)
            return len(self.leaves) - 1
        return None


class _ForkingTrial(_Leaves, ForkingPickler):
    def __init__(self, file: io.BytesIO, buffers: list[pickle.PickleBuffer]) -> None:
        ForkingPickler.__init__(self, file, _PROTOCOL, True, buffers.append)
        self.leaves = []


class _PickleTrial(_Leaves, pickle.Pickler):
    def __init__(self, file: io.BytesIO, buffers: list[pickle.PickleBuffer]) -> None:
        pickle.Pickler.__init__(self, file, _PROTOCOL, buffer_callback=buffers.append)
        self.leaves = []


class _CloudTrial(_Leaves, cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, buffers: list[pickle.PickleBuffer]) -> None:
        cloudpickle.Pickler.__init__(self, file, protocol=_PROTOCOL, buffer_callback=buffers.append)
        self.leaves = []


class _DillTrial(_Leaves, dill.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, buffers: list[pickle.PickleBuffer]) -> None:
        # Explicit settings, as the Codec passes them: dill.settings never leaks in.
        dill.Pickler.__init__(self, file, protocol=_PROTOCOL, byref=False, recurse=False)
        self.leaves = []


_PICKLERS: dict[str, type[Any]] = {
    "forking": _ForkingTrial,
    "pickle": _PickleTrial,
    "cloudpickle": _CloudTrial,
    "dill": _DillTrial,
}


def dump_with(serializer: str, obj: Any) -> Payload:
    """Dump ``obj`` with one serializer; exceptions propagate unchanged."""
    file = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    pickler = _PICKLERS[serializer](file, buffers)
    with warnings.catch_warnings():
        # dill warns before it fails or falls back; the report says it better.
        warnings.simplefilter("ignore", getattr(dill, "PicklingWarning", Warning))
        pickler.dump(obj)
    name = "pickle" if serializer == "forking" else serializer
    return Payload(name, file.getvalue(), pickler.leaves, buffers)


def dump(obj: Any, transport: str, role: str) -> Payload:
    """Dump ``obj`` as ``transport`` would for a callable or data (``role``).

    Raises :class:`TrialError` with every serializer's exception when none works.
    """
    if transport != "auto":
        try:
            return dump_with("forking" if transport == "pickle" else transport, obj)
        except Exception as exc:
            raise TrialError([exc]) from exc
    return _dump_auto(obj, role)


def _dump_auto(obj: Any, role: str) -> Payload:
    """``auto`` exactly as the Codec runs it (``dumps_callable`` / ``dumps_data``)."""
    errors: list[BaseException] = []
    first: Payload | None = None
    try:
        first = dump_with("pickle", obj)
    except Exception as exc:  # noqa: BLE001 - C pickle refused: go by value
        errors.append(exc)
    if first is not None and role != "data" and not loads_by_reference(first.data):
        first = None  # a callable whose C pickle would not load in a worker goes by value
    if first is not None and _MAIN_MARKER not in first.data:
        return first
    if first is not None and role == "data":
        # Data that names __main__ goes by cloudpickle, else keeps its C pickle.
        try:
            return dump_with("cloudpickle", obj)
        except Exception:  # noqa: BLE001 - keep the by-reference pickle
            return first
    for serializer in ("cloudpickle", "dill"):
        try:
            return dump_with(serializer, obj)
        except Exception as exc:  # noqa: BLE001 - try the next one
            errors.append(exc)
    raise TrialError(errors)


# Loader callables whose first argument is a module to import by name.
_IMPORTERS = {("dill._dill", "_import_module"), ("cloudpickle.cloudpickle", "subimport")}

OnGlobal = Callable[[str, str], None]
# dill rebuilds a file handle by reopening its name, or wrapping its descriptor
# number; done here that would open (or, when the handle is collected, close)
# the caller's own file. The rules judge file handles without loading them.
_DILL_FILE = ("dill._dill", "_create_filehandle")


def _file_stand_in(*args: Any, **kwargs: Any) -> io.StringIO:
    return io.StringIO()


class _Recording:
    """find_class that reports every global (and every module an importer is asked for)."""

    on_global: OnGlobal | None = None

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _DILL_FILE:
            if self.on_global is not None:
                self.on_global(module, name)
            return _file_stand_in
        found = super().find_class(module, name)  # type: ignore[misc]
        note = self.on_global
        if note is None:
            return found
        note(module, name)
        if (module, name) in _IMPORTERS:
            return _noting_importer(found, note)
        return found


def _noting_importer(importer: Callable[..., Any], note: OnGlobal) -> Callable[..., Any]:
    def imports(module_name: str, *args: Any, **kwargs: Any) -> Any:
        note(module_name, "")
        return importer(module_name, *args, **kwargs)

    return imports


class _PickleLoader(_Recording, pickle.Unpickler):
    pass


class _DillLoader(_Recording, dill.Unpickler):  # type: ignore[misc]
    pass


def load(payload: Payload, on_global: OnGlobal | None = None) -> Any:
    """Load ``payload`` in this process, as a worker forked from it would.

    ``on_global(module, name)`` hears of every global the load imports (name
    "" for a whole module), at C speed for C pickle payloads.
    """
    file = io.BytesIO(payload.data)
    unpickler: Any
    if payload.serializer == "dill":
        unpickler = _DillLoader(file, ignore=False)
        # The Codec binds __main__ functions to the __main__ in force (see _transports._dill_loads).
        unpickler._main = sys.modules["__main__"]
    else:
        unpickler = _PickleLoader(file, buffers=payload.buffers)
    unpickler.on_global = on_global
    unpickler.persistent_load = payload.leaves.__getitem__
    return unpickler.load()
