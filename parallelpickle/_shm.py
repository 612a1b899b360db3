"""Out-of-band buffers through shared memory, with guaranteed cleanup.

Scope: contiguous buffers of at least ``threshold`` bytes in task arguments
and results: numpy arrays, ``bytes``/``bytearray``, anything that pickles a
protocol-5 :class:`pickle.PickleBuffer`. The pickle stream then carries only a
descriptor ``(segment, offset, length)``; the bytes are copied once into a
POSIX shared-memory segment that the other side keeps mapped. Everything else
(object arrays, non-contiguous views, small buffers) stays in-band. Data flow
for one chunk ``cid``::

    parent  dump items (buffer_callback) ─▶ copy big buffers into arena lease cid
            TaskMsg.shm = ShmInfo(buffers, acks, dropped)
    worker  load items over zero-copy views of the parent's segment, call,
            dump results ─▶ copy big buffers into its own arena lease cid
            ResultMsg.shm = ShmInfo(buffers, dropped, kept)
    parent  load results over *copies* (the caller keeps them), free lease
            cid, and ack cid to that worker with its next task

Segments are reused, not created per array: a fresh shared page costs a page
fault and zeroing (about 0.9 GB/s measured on a 2-vCPU VM), a page already
mapped copies at memcpy speed (about 8 GB/s). So each side keeps an *arena* of
segments mapped and leases them per chunk. A task that keeps a reference into
its arguments (stores an array in a global, say) is detected when it ends:
the parent then retires that segment instead of writing over it.

Cleanup: every segment is named ``pp_<parent pid>_<pool token>_...``
(``p<n>`` parent arena, ``s<n>`` shared objects, ``w<pid>_<n>`` a worker's
arena). The parent removes a dead worker's segments by name, and shutting the
pool down (``close``, ``terminate``, Ctrl-C, garbage collection, interpreter
exit) removes the pool's whole prefix. Workers whose parent dies remove it on
their way out, and a new pool removes ``pp_<pid>_*`` left by dead processes.

Segments are opened with ``_posixshmem``, the primitive beneath
``multiprocessing.shared_memory``, not with ``SharedMemory`` itself: before
Python 3.13 (which added ``track=False``) a process that merely *attaches*
registers the segment with the resource tracker, which unlinks it when that
process exits and warns about a leak (cpython#82300); under ``multiprocess``
(the dill transport) attaching would even start a second tracker. The naming
scheme above replaces the tracker.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import io
import itertools
import mmap
import os
import pickle
import re
import secrets
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import cloudpickle
import dill

if TYPE_CHECKING:
    from ._transports import Codec

__all__ = [
    "DEFAULT_THRESHOLD",
    "PREFIX",
    "Collector",
    "ParentLink",
    "Shared",
    "ShmConfig",
    "ShmInfo",
    "ShmTask",
    "WorkerLink",
    "available",
    "oob_dumps",
    "pid_alive",
    "remove_if_orphaned",
    "remove_prefix",
    "shm_config",
    "sweep_stale",
]

T = TypeVar("T")

PREFIX = "pp_"
DEFAULT_THRESHOLD = 1 << 20
_ALIGN = 64  # buffers start on cache lines (and on any dtype's alignment)
_GRAIN = 1 << 20  # segment sizes are rounded up to this, so leases fit again
_WORKER_KEEP = 4  # free result segments a worker keeps mapped
_SHM_DIR = "/dev/shm"
_DYING_GRACE_S = 1.0  # how long an owner that closed our pipe may take to show as dead
_OWN_NAME = re.compile(r"pp_(\d+)_[0-9a-f]{8}_")

try:
    _posixshmem: Any = importlib.import_module("_posixshmem")
except ImportError:  # no POSIX shared memory (Windows): everything stays in-band
    _posixshmem = None

Desc = tuple[str, int, int]  # segment name, offset, length


def available() -> bool:
    return _posixshmem is not None


class ShmInfo(NamedTuple):
    """The shared-memory part of a task or result message."""

    buffers: tuple[Desc, ...] = ()  # the payload's out-of-band buffers, in order
    acks: tuple[int, ...] = ()  # parent to worker: results of these chunks were copied out
    dropped: tuple[str, ...] = ()  # segments the sender unlinked: unmap them
    kept: bool = False  # worker to parent: the task kept references into its arguments


@dataclass(frozen=True)
class ShmConfig:
    """What a worker needs to know; travels in the WorkerSpec."""

    threshold: int
    prefix: str  # pp_<parent pid>_<pool token>_


def shm_config(threshold: int | None, backend: str, builtin_transport: bool) -> ShmConfig | None:
    """A pool's setting: ``threshold`` bytes (None: 1 MiB; 0: off).

    Off for threads (no process boundary), for custom transports (their
    ``dumps`` has no ``buffer_callback``) and where POSIX shared memory is missing.
    """
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    if threshold == 0 or backend != "process" or not builtin_transport or not available():
        return None
    return ShmConfig(threshold, f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}_")


# -- names on disk -------------------------------------------------------------
def _unlink(name: str) -> None:
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass


def _listed(prefix: str) -> list[str]:
    try:
        return [n for n in os.listdir(_SHM_DIR) if n.startswith(prefix)]
    except OSError:  # no /dev/shm to list (macOS): only known names are removed
        return []


def remove_prefix(prefix: str) -> None:
    """Unlink every segment whose name starts with ``prefix``."""
    for name in _listed(prefix):
        _unlink(name)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not died (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped) still answers signal 0
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def remove_if_orphaned(prefix: str) -> None:
    """Unlink a pool's segments when the process that owns them has died.

    A worker's pipe can close while the pool's process lives on (it replaced
    or stopped that worker), so an EOF alone must not remove segments other
    workers are still reading.
    """
    match = _OWN_NAME.match(prefix)
    if not match:
        return
    owner = int(match.group(1))
    # A dying process closes its pipes before it shows as dead (a zombie):
    # give it a moment to finish dying before deciding it lives on.
    deadline = time.monotonic() + _DYING_GRACE_S
    while pid_alive(owner):
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    remove_prefix(prefix)


def sweep_stale() -> None:
    """Unlink segments of ours whose owning process no longer exists (a parent killed with SIGKILL)."""
    for name in _listed(PREFIX):
        match = _OWN_NAME.match(name)
        if match and not pid_alive(int(match.group(1))):
            _unlink(name)


# -- segments -------------------------------------------------------------------
class Segment:
    """One mapped shared-memory segment.

    Views are made on demand (``memoryview(map)[a:b]``) and never cached:
    every live view then holds exactly one reference to the map, so
    :meth:`in_use` can tell whether anything still looks into the segment.
    """

    def __init__(self, name: str, size: int = 0, *, create: bool = False) -> None:
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = _posixshmem.shm_open("/" + name, flags, mode=0o600)
        try:
            if create:
                # Reserve the pages now: on a full /dev/shm this raises
                # OSError here instead of SIGBUS at the first write.
                allocate = getattr(os, "posix_fallocate", None)
                if allocate is not None:
                    allocate(fd, 0, size)
                else:
                    os.ftruncate(fd, size)
            else:
                size = os.fstat(fd).st_size
            self._map = mmap.mmap(fd, size)
            if hasattr(mmap, "MADV_DONTFORK"):
                # Workers forked later (of this pool or another) must not
                # inherit the mapping: it would pin the memory after unlink.
                self._map.madvise(mmap.MADV_DONTFORK)
        except BaseException:
            if create:
                _unlink(name)
            raise
        finally:
            os.close(fd)
        self.name = name
        self.size = size

    def view(self, offset: int, nbytes: int) -> memoryview:
        return memoryview(self._map)[offset : offset + nbytes]

    def write(self, offset: int, data: memoryview) -> None:
        with memoryview(self._map) as whole:
            whole[offset : offset + data.nbytes] = data

    def in_use(self) -> bool:
        # One reference is ours, one is getrefcount's argument; each live view
        # (and each numpy array over one) holds one more.
        return sys.getrefcount(self._map) > 2

    def close(self) -> None:
        try:
            self._map.close()
        except BufferError:
            pass  # a view is still alive; the mapping goes away with it


def _layout(views: Sequence[memoryview]) -> tuple[list[int], int]:
    """Offsets of ``views`` packed into one segment, each aligned; the total size."""
    offsets = []
    total = 0
    for v in views:
        offsets.append(total)
        total += max(_ALIGN, -(-v.nbytes // _ALIGN) * _ALIGN)
    return offsets, total


class Arena:
    """Segments this process writes into, leased per chunk id and reused."""

    def __init__(self, prefix: str, keep: int) -> None:
        self._prefix = prefix
        self._keep = keep
        self._seq = itertools.count()
        self._free: list[Segment] = []
        self._leased: dict[int, Segment] = {}
        self.dropped: list[str] = []  # unlinked since the peers were last told

    def store(self, key: int, views: Sequence[memoryview]) -> tuple[Desc, ...]:
        """Copy ``views`` into one segment leased under ``key``; their descriptors."""
        self.release(key)
        if not views:
            return ()
        offsets, total = _layout(views)
        seg = self._take(total)
        self._leased[key] = seg
        for v, off in zip(views, offsets):
            seg.write(off, v)
        return tuple((seg.name, off, v.nbytes) for v, off in zip(views, offsets))

    def _take(self, size: int) -> Segment:
        fits = [s for s in self._free if s.size >= size]
        if fits:
            seg = min(fits, key=lambda s: s.size)
            self._free.remove(seg)
            return seg
        rounded = -(-size // _GRAIN) * _GRAIN
        return Segment(f"{self._prefix}{next(self._seq)}", rounded, create=True)

    def release(self, key: int) -> None:
        seg = self._leased.pop(key, None)
        if seg is None:
            return
        self._free.append(seg)
        if len(self._free) > self._keep:
            self._destroy(min(self._free, key=lambda s: s.size))

    def retire(self, key: int) -> None:
        """A reader kept views into this lease: never write into it again."""
        seg = self._leased.pop(key, None)
        if seg is not None:
            self._destroy(seg)

    def _destroy(self, seg: Segment) -> None:
        if seg in self._free:
            self._free.remove(seg)
        seg.close()
        _unlink(seg.name)
        self.dropped.append(seg.name)

    def take_dropped(self) -> list[str]:
        dropped, self.dropped = self.dropped, []
        return dropped

    def close(self, unlink: bool = True) -> None:
        """Unmap every segment, and unlink them unless a reader may still need them."""
        for seg in [*self._free, *self._leased.values()]:
            seg.close()
            if unlink:
                _unlink(seg.name)
        self._free.clear()
        self._leased.clear()


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _private_copy(view: memoryview) -> Any:
    """A private, writeable copy of ``view`` (a result the caller keeps).

    Fresh memory costs a page fault per 4 KiB page on first write; with
    MAP_POPULATE (Linux) the kernel maps all pages in one call, which made
    returning 50 MB arrays about 17% faster than ``bytearray(view)`` here.
    """
    if not _POPULATE:
        return bytearray(view)
    private = mmap.mmap(-1, view.nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)
    with memoryview(private) as whole:
        whole[:] = view
    return private


class Attachments:
    """Segments another process writes, mapped here once and kept mapped."""

    def __init__(self) -> None:
        self._maps: dict[str, Segment] = {}

    def get(self, name: str) -> Segment:
        seg = self._maps.get(name)
        if seg is None:
            seg = self._maps[name] = Segment(name)
        return seg

    def find(self, name: str) -> Segment | None:
        return self._maps.get(name)

    def views(self, descs: Iterable[Desc]) -> list[memoryview]:
        return [self.get(name).view(off, n) for name, off, n in descs]

    def copies(self, descs: Iterable[Desc]) -> list[Any]:
        out = []
        for name, off, n in descs:
            with self.get(name).view(off, n) as view:
                out.append(_private_copy(view))
        return out

    def drop(self, names: Iterable[str]) -> None:
        for name in names:
            seg = self._maps.pop(name, None)
            if seg is not None:
                seg.close()

    def drop_prefix(self, prefix: str) -> None:
        self.drop([n for n in self._maps if n.startswith(prefix)])

    def close(self) -> None:
        self.drop(list(self._maps))


# -- pickling with out-of-band buffers -----------------------------------------
class Collector:
    """``buffer_callback`` for one dump: buffers of ``threshold`` bytes or more go out of band."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.views: list[memoryview] = []

    def __call__(self, buf: pickle.PickleBuffer) -> bool:
        try:
            raw = buf.raw()
        except BufferError:  # not contiguous: in-band
            return True
        if raw.nbytes < self.threshold:
            return True
        self.views.append(raw)
        return False


def _reduce_large_bytes(obj: Any, threshold: int) -> Any:
    # bytes and bytearray pickle in-band even under protocol 5 (PEP 574);
    # wrapping them in a PickleBuffer lets the buffer_callback take them.
    kind = type(obj)
    if (kind is bytes or kind is bytearray) and len(obj) >= threshold:
        return kind, (pickle.PickleBuffer(obj),)
    return NotImplemented


class _PicklerBuffers(pickle.Pickler):
    def __init__(self, file: io.BytesIO, sink: Collector) -> None:
        super().__init__(file, 5, buffer_callback=sink)
        self.threshold = sink.threshold


class _PicklerOob(_PicklerBuffers):
    # A separate class: C pickle looks reducer_override up once, at __init__.
    def reducer_override(self, obj: Any) -> Any:
        return _reduce_large_bytes(obj, self.threshold)


class _ForkingPicklerBuffers(ForkingPickler):
    def __init__(self, file: io.BytesIO, sink: Collector) -> None:
        # ForkingPickler.__init__ takes positional arguments only (no buffer_callback).
        pickle.Pickler.__init__(self, file, 5, buffer_callback=sink)
        self.dispatch_table = ForkingPickler(io.BytesIO(), 5).dispatch_table
        self.threshold = sink.threshold


class _ForkingPicklerOob(_ForkingPicklerBuffers):
    def reducer_override(self, obj: Any) -> Any:
        return _reduce_large_bytes(obj, self.threshold)


class _CloudPicklerOob(cloudpickle.Pickler):  # type: ignore[misc]
    threshold = 0

    def reducer_override(self, obj: Any) -> Any:
        reduced = _reduce_large_bytes(obj, self.threshold)
        return reduced if reduced is not NotImplemented else super().reducer_override(obj)


class _DillPicklerOob(dill.Pickler):  # type: ignore[misc]
    threshold = 0

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        # dill saves ndarrays through obj.__reduce__() (always in-band);
        # numpy's own protocol-5 reduction hands over a PickleBuffer.
        if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
            return obj.__reduce_ex__(5)
        return _reduce_large_bytes(obj, self.threshold)


def oob_dumps(kind: str, obj: Any, sink: Collector) -> bytes:
    """Pickle ``obj`` with serializer ``kind``; big buffers land in ``sink.views``.

    ``kind`` is ``"pickle"``, ``"forking"`` (multiprocessing's reducers),
    ``"cloudpickle"`` or ``"dill"``. For C pickle a ``reducer_override`` costs
    a Python call per object, so the plain pickler runs first (numpy arrays
    already go out of band there) and the overriding one only when the stream
    still carries ``threshold`` bytes in-band (big ``bytes``, say).
    """
    sink.views = []
    buf = io.BytesIO()
    if kind == "cloudpickle":
        cp = _CloudPicklerOob(buf, protocol=5, buffer_callback=sink)
        cp.threshold = sink.threshold
        cp.dump(obj)
        return buf.getvalue()
    if kind == "dill":
        dp = _DillPicklerOob(buf, 5, byref=False, recurse=False, buffer_callback=sink)
        dp.threshold = sink.threshold
        dp.dump(obj)
        return buf.getvalue()
    plain, overriding = (
        (_ForkingPicklerBuffers, _ForkingPicklerOob) if kind == "forking" else (_PicklerBuffers, _PicklerOob)
    )
    plain(buf, sink).dump(obj)
    if buf.tell() < sink.threshold:
        return buf.getvalue()
    sink.views = []
    buf = io.BytesIO()
    overriding(buf, sink).dump(obj)
    return buf.getvalue()


# -- shared read-only objects ---------------------------------------------------
# The worker-side link of the task being loaded, so that a Shared handle met
# while unpickling finds its worker's cache. A context variable is scoped to
# the loading call, like decimal's local context: no process-wide cache.
_LINK: contextvars.ContextVar[WorkerLink | None] = contextvars.ContextVar("parallelpickle_shm_link", default=None)


class Shared(Generic[T]):
    """A large object placed in shared memory once: what :meth:`Pool.share` returns.

    Pass the handle as an argument (alone, or inside a tuple, list or dict):
    each worker maps and loads it once, and the task receives the object
    itself, its big buffers read-only and shared by every worker. The memory
    is freed when the pool shuts down. ``handle.value`` is the original object.
    """

    __slots__ = ("_buffers", "_data", "_key", "_tag", "value")

    def __init__(self, key: str, tag: str, data: bytes, buffers: tuple[Desc, ...], value: T) -> None:
        self._key = key
        self._tag = tag
        self._data = data
        self._buffers = buffers
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        if not self._tag:  # no shared memory (thread backend): the object itself
            return _inline, (self.value,)
        return _attach_shared, (self._key, self._tag, self._data, self._buffers)

    def __repr__(self) -> str:
        size = sum(n for _, _, n in self._buffers)
        return f"<parallelpickle.Shared {type(self.value).__name__} {size} bytes in shared memory>"


def _inline(value: Any) -> Any:
    return value


def _attach_shared(key: str, tag: str, data: bytes, buffers: tuple[Desc, ...]) -> Any:
    link = _LINK.get()
    if link is not None:
        return link.shared(key, tag, data, buffers)
    # Loaded outside a worker's task (a plain pickle.loads): a private copy.
    from ._transports import Codec

    maps = Attachments()
    try:
        return Codec("auto").loads(tag, data, maps.copies(buffers))
    finally:
        maps.close()


# -- the two ends -------------------------------------------------------------
class _Peer:
    def __init__(self) -> None:
        self.acks: list[int] = []
        self.dropped: list[str] = []


class ParentLink:
    """The engine's end: an arena for arguments, the workers' result segments mapped.

    Used from the engine thread only, except :meth:`share` (any thread).
    """

    def __init__(self, cfg: ShmConfig, workers: int) -> None:
        sweep_stale()
        self.cfg = cfg
        self._arena = Arena(f"{cfg.prefix}p", keep=2 * workers + 2)
        self._maps = Attachments()
        self._peers: dict[object, _Peer] = {}
        self._descs: dict[int, tuple[Desc, ...]] = {}  # chunk id -> its buffers in the arena
        self._lock = threading.Lock()
        self._shares = itertools.count()
        self._closed = False
        # Interpreter exit or a dropped pool: remove whatever is left.
        self._finalizer = weakref.finalize(self, remove_prefix, cfg.prefix)

    def encode(self, codec: Codec, cid: int, items: Any) -> tuple[str, bytes]:
        """Dump a chunk's items; big buffers go into the lease ``cid``."""
        sink = Collector(self.cfg.threshold)
        tag, data = codec.dumps_data(items, sink)
        try:
            self._descs[cid] = self._arena.store(cid, sink.views)
        except OSError:  # shared memory exhausted: send this chunk in-band
            self._arena.release(cid)
            self._descs.pop(cid, None)
            return codec.dumps_data(items)
        return tag, data

    def _peer(self, worker: object) -> _Peer:
        peer = self._peers.get(worker)
        if peer is None:
            peer = self._peers[worker] = _Peer()
        return peer

    def task_info(self, worker: object, cid: int) -> ShmInfo | None:
        """What travels with chunk ``cid`` to ``worker``: its buffers, acks, unlinked names."""
        dropped = self._arena.take_dropped()
        if dropped:
            for peer in self._peers.values():
                peer.dropped.extend(dropped)
        peer = self._peer(worker)
        info = ShmInfo(self._descs.get(cid, ()), tuple(peer.acks), tuple(peer.dropped))
        peer.acks.clear()
        peer.dropped.clear()
        return info if info.buffers or info.acks or info.dropped else None

    def result_buffers(self, info: ShmInfo | None) -> list[Any] | None:
        """Private copies of a result's buffers: the worker reuses its segment."""
        if info is None or not info.buffers:
            return None
        return self._maps.copies(info.buffers)

    def on_result(self, worker: object, cid: int, info: ShmInfo | None) -> None:
        """Chunk ``cid`` came back (its results already loaded): free its lease."""
        if self._descs.pop(cid, None) is not None:
            if info is not None and info.kept:
                self._arena.retire(cid)
            else:
                self._arena.release(cid)
        if info is not None:
            if info.buffers:
                self._peer(worker).acks.append(cid)
            self._maps.drop(info.dropped)

    def worker_gone(self, worker: object, pid: int | None, cids: Iterable[int]) -> None:
        """A worker ended: free the leases it held, remove its own segments."""
        for cid in cids:
            if self._descs.pop(cid, None) is not None:
                self._arena.release(cid)
        self._peers.pop(worker, None)
        if pid is not None:
            prefix = f"{self.cfg.prefix}w{pid}_"
            self._maps.drop_prefix(prefix)
            remove_prefix(prefix)

    def share(self, codec: Codec, obj: T) -> Shared[T]:
        """Place ``obj``'s buffers (however small) in a segment of their own."""
        sink = Collector(1)
        tag, data = codec.dumps_data(obj, sink)
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool's shared memory is closed")
            key = f"{self.cfg.prefix}s{next(self._shares)}"
            descs: tuple[Desc, ...] = ()
            if sink.views:
                offsets, total = _layout(sink.views)
                seg = Segment(key, total, create=True)
                for v, off in zip(sink.views, offsets):
                    seg.write(off, v)
                seg.close()  # workers map it; the pool's prefix removal unlinks it
                descs = tuple((key, off, v.nbytes) for v, off in zip(sink.views, offsets))
        return Shared(key, tag, data, descs, obj)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._arena.close()
        self._maps.close()
        self._peers.clear()  # drop the worker objects (and their pipes) with the pool's end
        self._descs.clear()
        self._finalizer()


class ShmTask:
    """One chunk's shared-memory state in a worker."""

    def __init__(self, link: WorkerLink, codec: Codec, cid: int, buffers: tuple[Desc, ...]) -> None:
        self._link = link
        self._codec = codec
        self.cid = cid
        self._buffers = buffers
        self.result_descs: tuple[Desc, ...] = ()
        self.info = ShmInfo()

    def take_buffers(self) -> list[memoryview] | None:
        """Views of the argument buffers, for ``loads`` (this object keeps none)."""
        return self._link.maps.views(self._buffers) if self._buffers else None

    def dump(self, obj: Any) -> tuple[str, bytes]:
        """``Codec.dumps_data`` with big buffers copied into the worker's arena."""
        sink = Collector(self._link.cfg.threshold)
        tag, data = self._codec.dumps_data(obj, sink)
        try:
            self.result_descs = self._link.arena.store(self.cid, sink.views)
        except OSError:  # shared memory exhausted: in-band
            self._link.arena.release(self.cid)
            self.result_descs = ()
            return self._codec.dumps_data(obj)
        return tag, data


class WorkerLink:
    """A worker's end: the parent's segments mapped, an arena for results."""

    def __init__(self, cfg: ShmConfig) -> None:
        self.cfg = cfg
        self.arena = Arena(f"{cfg.prefix}w{os.getpid()}_", keep=_WORKER_KEEP)
        self.maps = Attachments()
        self._shared: dict[str, Any] = {}
        self._codec: Codec | None = None

    @contextlib.contextmanager
    def running(self, info: ShmInfo | None, codec: Codec, cid: int) -> Iterator[ShmTask]:
        """Around one task: yields its buffers; afterwards ``task.info`` is the reply's part."""
        if info is None:
            info = ShmInfo()
        for key in info.acks:
            self.arena.release(key)
        self.maps.drop(info.dropped)
        task = ShmTask(self, codec, cid, info.buffers)
        self._codec = codec
        token = _LINK.set(self)
        try:
            yield task
        finally:
            _LINK.reset(token)
        names = {name for name, _, _ in info.buffers}
        task.info = ShmInfo(task.result_descs, (), tuple(self.arena.take_dropped()), self._kept(names))

    def _kept(self, names: set[str]) -> bool:
        segments = [seg for seg in map(self.maps.find, names) if seg is not None]
        if not any(s.in_use() for s in segments):
            return False
        import gc

        gc.collect()  # a reference cycle (an exception's traceback) may be all that holds a view
        return any(s.in_use() for s in segments)

    def shared(self, key: str, tag: str, data: bytes, buffers: tuple[Desc, ...]) -> Any:
        """A Shared object, loaded once per worker over read-only views."""
        if key not in self._shared:
            assert self._codec is not None
            views = [v.toreadonly() for v in self.maps.views(buffers)]
            self._shared[key] = self._codec.loads(tag, data, views)
        return self._shared[key]

    def close(self) -> None:
        """Unmap everything; the parent unlinks (it may still be reading results)."""
        self._shared.clear()
        self.maps.close()
        self.arena.close(unlink=False)
