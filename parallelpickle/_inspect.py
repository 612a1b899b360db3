"""Read a pickle file without running it: protocol, size, the globals it would import.

A pickle is a program for a small stack machine, and loading it runs that
program: every global it names is imported and may be called. This module
reads the program instead of running it::

    path ─▶ open_pickle: magic bytes pick gzip / bz2 / xz / lzma, else plain
         ─▶ scan_stream: pickletools' opcode table, one opcode at a time; a
            symbolic stack and memo of string constants name the operands of
            STACK_GLOBAL (protocol 4+), which GLOBAL (protocols 0-3) carries inline
         ─▶ ScanReport: pickles, protocols, globals, buffers, warnings

Nothing on that path imports a module named in the file or calls anything it
names. :func:`trusted_load` is the one function here that does: it is plain
``pickle.load``, and the CLI calls it only under ``--trust``.

Scope: the pickle stream itself (several pickles written one after another
included). Archives that contain pickles (zip, as PyTorch checkpoints and
``.npz`` files are) are recognised and refused with a hint, not unpacked.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import codecs
import copyreg
import gzip
import lzma
import os
import pickle
import pickletools
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Final, Protocol, cast

__all__ = [
    "Binary",
    "FileReport",
    "GlobalRef",
    "NotAPickleError",
    "ScanReport",
    "danger_of",
    "open_pickle",
    "scan_file",
    "scan_stream",
    "trusted_load",
]

# -- what a global can do ------------------------------------------------------
_PROGRAMS = "runs a shell command or another program"
_PYCODE = "runs Python code given as text or bytecode"
_IMPORTS = "imports any module named by the file"
_BUILDS_CODE = "builds a function from bytecode in the file (it runs when called)"
_NESTED = "loads more pickled or marshalled data, which is not scanned here"
_FILES = "opens, writes or deletes files"
_OS = "calls the operating system (files, processes, environment)"
_ATTRS = "reaches any attribute by name (the usual step from a harmless object to os.system)"
_NETWORK = "opens network connections"
_INTERP = "changes the interpreter's state or calls C functions directly"

# Whole modules (and their submodules) whose globals have no place in data.
_MODULES: Final = {
    "subprocess": _PROGRAMS,
    "pty": _PROGRAMS,
    "commands": _PROGRAMS,  # Python 2
    "popen2": _PROGRAMS,  # Python 2
    "asyncio": _PROGRAMS,
    "os": _OS,
    "posix": _OS,
    "nt": _OS,
    "shutil": _FILES,
    "runpy": _PYCODE,
    "code": _PYCODE,
    "codeop": _PYCODE,
    "timeit": _PYCODE,
    "pdb": _PYCODE,
    "bdb": _PYCODE,
    "trace": _PYCODE,
    "profile": _PYCODE,
    "cProfile": _PYCODE,
    "pip": _PYCODE,
    "importlib": _IMPORTS,
    "pkgutil": _IMPORTS,
    "pickle": _NESTED,
    "_pickle": _NESTED,
    "cPickle": _NESTED,  # Python 2
    "marshal": _NESTED,
    "shelve": _NESTED,
    "dill": _NESTED,
    "socket": _NETWORK,
    "urllib": _NETWORK,
    "urllib2": _NETWORK,  # Python 2
    "http": _NETWORK,
    "httplib": _NETWORK,  # Python 2
    "ftplib": _NETWORK,
    "smtplib": _NETWORK,
    "telnetlib": _NETWORK,
    "webbrowser": _NETWORK,
    "requests": _NETWORK,
    "aiohttp": _NETWORK,
    "sys": _INTERP,
    "ctypes": _INTERP,
    "_ctypes": _INTERP,
}
# Types from the modules above that ordinary data does contain (os.stat results).
_HARMLESS: Final = frozenset(
    (module, name)
    for module in ("os", "posix", "nt")
    for name in ("stat_result", "statvfs_result", "terminal_size", "times_result", "uname_result")
)
# Single names in modules that are otherwise fine to meet in data.
_NAMES: Final = {
    ("os", "system"): _PROGRAMS,
    ("posix", "system"): _PROGRAMS,
    ("nt", "system"): _PROGRAMS,
    ("os", "popen"): _PROGRAMS,
    ("builtins", "eval"): _PYCODE,
    ("builtins", "exec"): _PYCODE,
    ("builtins", "compile"): _PYCODE,
    ("builtins", "execfile"): _PYCODE,  # Python 2, reached through fix_imports
    ("builtins", "__import__"): _IMPORTS,
    ("builtins", "reload"): _IMPORTS,  # Python 2
    ("builtins", "getattr"): _ATTRS,
    ("builtins", "setattr"): _ATTRS,
    ("builtins", "delattr"): _ATTRS,
    ("builtins", "globals"): _ATTRS,
    ("builtins", "locals"): _ATTRS,
    ("builtins", "vars"): _ATTRS,
    ("builtins", "apply"): "calls any callable with any arguments",  # Python 2
    ("builtins", "open"): _FILES,
    ("builtins", "file"): _FILES,  # Python 2
    ("builtins", "breakpoint"): _PYCODE,
    ("builtins", "input"): _PYCODE,
    ("io", "open"): _FILES,
    ("_io", "open"): _FILES,
    ("io", "FileIO"): _FILES,
    ("_io", "FileIO"): _FILES,
    ("codecs", "open"): _FILES,
    ("operator", "attrgetter"): _ATTRS,
    ("operator", "methodcaller"): _ATTRS,
    ("types", "CodeType"): _BUILDS_CODE,
    ("types", "FunctionType"): _BUILDS_CODE,
    ("cloudpickle.cloudpickle", "_builtin_type"): _BUILDS_CODE,
    ("cloudpickle.cloudpickle", "_make_function"): _BUILDS_CODE,
    ("cloudpickle.cloudpickle", "subimport"): _IMPORTS,
    ("numpy", "load"): _NESTED,
    ("numpy.testing._private.utils", "runstring"): _PYCODE,
}


def _py3_name(module: str, name: str) -> tuple[str, str]:
    """The name a Python 2 global loads as under ``fix_imports`` (``__builtin__`` is ``builtins``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        mapped: tuple[str, str] = _compat_pickle.NAME_MAPPING[(module, name)]
        return mapped
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def danger_of(module: str, name: str) -> str | None:
    """Why importing ``module.name`` from a pickle can do more than build data, or None."""
    for mod, qualname in {(module, name), _py3_name(module, name)}:
        attr = qualname.split(".", 1)[0]  # protocol 4 names may be dotted: "Popen.__init__"
        if (mod, attr) in _NAMES:
            return _NAMES[(mod, attr)]
        if (mod, attr) in _HARMLESS:
            continue
        parts = mod.split(".")
        for depth in range(len(parts), 0, -1):
            reason = _MODULES.get(".".join(parts[:depth]))
            if reason is not None:
                return reason
    return None


# -- the report ------------------------------------------------------------------
@dataclass(frozen=True)
class GlobalRef:
    """One global the pickle asks the loader to import.

    ``module``/``name`` are as written in the file; ``loads_as`` is the name a
    protocol 0-2 pickle is mapped to when loaded (Python 2's ``__builtin__`` is
    ``builtins``), or None when it is the same. ``resolved`` is False when the
    file computes the name while loading, so no scan can tell what it is.
    """

    module: str
    name: str
    opcode: str
    position: int | None
    loads_as: tuple[str, str] | None = None
    resolved: bool = True

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"

    def danger(self) -> str | None:
        if not self.resolved:
            return "the module and name are computed while loading, so no scan can tell what is imported"
        return danger_of(self.module, self.name)


@dataclass
class ScanReport:
    """What reading the opcodes found.

    ``error`` says why the first pickle could not be read to its end (partial
    findings stay: a truncated pickle still runs what comes before the cut);
    ``trailing`` describes bytes after the last complete pickle.
    """

    protocols: list[int] = field(default_factory=list)
    declared: list[bool] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    opcodes: int = 0
    size: int = 0
    globals: list[GlobalRef] = field(default_factory=list)
    calls: int = 0
    buffers: int = 0
    readonly_buffers: int = 0
    persistent_ids: int = 0
    py2_strings: int = 0
    error: str | None = None
    trailing: str | None = None

    @property
    def pickles(self) -> int:
        """Complete pickles read (a file may hold several, written one after another)."""
        return len(self.ends)

    def distinct_globals(self) -> list[GlobalRef]:
        seen: dict[tuple[str, str, bool], GlobalRef] = {}
        for ref in self.globals:
            seen.setdefault((ref.module, ref.name, ref.resolved), ref)
        return list(seen.values())

    def warnings(self) -> list[str]:
        out = []
        for ref in self.distinct_globals():
            reason = ref.danger()
            if reason is not None:
                where = f"{ref.opcode} at byte {ref.position}"
                out.append(f"{ref.dotted if ref.resolved else ref.name}: {reason} ({where})")
        return out


class NotAPickleError(ValueError):
    """The file is not a pickle stream this module can read (an archive, say)."""


# -- opening ---------------------------------------------------------------------
_REFUSED: Final = (
    (
        b"PK\x03\x04",
        "a zip archive (PyTorch .pt/.pth checkpoints and NumPy .npz files are zip archives); "
        "extract the .pkl member and inspect that",
    ),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; decompress it first (zstd -d FILE)"),
    (b"\x93NUMPY", "a NumPy .npy file; its header is not a pickle"),
)


class Binary(Protocol):
    """What the scan and the loader read from: a plain or a decompressing file."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


def _is_bz2(head: bytes) -> bool:
    # "BZh" and the block size, "1" to "9": a pickle starting with BINBYTES
    # ("B") would need a length field spelling this, with no PROTO before it.
    return head[:3] == b"BZh" and b"1" <= head[3:4] <= b"9"


def _decompressing(raw: IO[bytes], head: bytes) -> tuple[Binary, str] | None:
    """A decompressing reader over ``raw`` when ``head`` has a known magic number."""
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb"), "gzip"
    if _is_bz2(head):
        return bz2.BZ2File(raw), "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, format=lzma.FORMAT_XZ), "xz"
    # .lzma ("alone") files start with a properties byte, 0x5d for every
    # preset; a pickle never starts with "]\x00" (0x00 is no opcode).
    if head.startswith(b"\x5d\x00\x00"):
        return lzma.LZMAFile(raw, format=lzma.FORMAT_ALONE), "lzma"
    return None


@contextmanager
def open_pickle(path: str | os.PathLike[str]) -> Iterator[tuple[Binary, str | None]]:
    """Open ``path`` for reading pickle bytes: ``(stream, compression or None)``."""
    with open(path, "rb") as raw:
        head = raw.read(8)
        raw.seek(0)
        for magic, what in _REFUSED:
            if head.startswith(magic):
                raise NotAPickleError(f"{os.fspath(path)} is {what}")
        opened = _decompressing(raw, head)
        if opened is None:
            yield raw, None
            return
        stream, compression = opened
        try:
            yield stream, compression
        finally:
            stream.close()


# -- scanning --------------------------------------------------------------------
class _Reader:
    """The stream genops reads: bounded reads, a byte count, and one byte of look-ahead.

    A crafted length field can claim gigabytes; reading in pieces means only
    the bytes really present are ever held.
    """

    _PIECE = 1 << 20

    def __init__(self, raw: Binary) -> None:
        self._raw = raw
        self._pos = 0
        self._peeked = b""

    def read(self, n: int = -1) -> bytes:
        head = self._peeked if n < 0 else self._peeked[:n]
        self._peeked = self._peeked[len(head) :]
        parts = [head]
        want = n - len(head) if n >= 0 else -1
        while want != 0:
            piece = self._raw.read(self._PIECE if want < 0 else min(want, self._PIECE))
            if not piece:
                break
            parts.append(piece)
            want = want - len(piece) if want > 0 else want
        data = b"".join(parts)
        self._pos += len(data)
        return data

    def readline(self) -> bytes:
        head, self._peeked = self._peeked, b""
        data = head if head == b"\n" else head + self._raw.readline()
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def at_end(self) -> bool:
        if not self._peeked:
            self._peeked = self._raw.read(1)
        return not self._peeked


_MARK: Final = object()  # a MARK on the symbolic stack
_OPAQUE: Final = object()  # anything that is not a known string constant
_NAME_MAX: Final = 1024
_STR_PUSH: Final = frozenset(
    {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_PY2_STR: Final = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})
_GETS: Final = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS: Final = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_CALLS: Final = frozenset({"REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})


class _Machine:
    """Just enough of the unpickler's stack and memo to know which strings STACK_GLOBAL pops."""

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}

    def step(self, op: pickletools.OpcodeInfo, arg: Any) -> list[object]:
        """Apply ``op``; return what it popped, bottom first."""
        name = op.name
        if name in _PUTS or name == "MEMOIZE":
            key = len(self.memo) if name == "MEMOIZE" else int(arg)
            self.memo[key] = self.stack[-1] if self.stack else _OPAQUE
            return []
        popped = self._pop(op)
        if name in _STR_PUSH:
            # Only name-sized strings are kept: holding every string of a large
            # pickle would cost its size in memory, and a longer "name" is
            # reported as unknowable, which errs on the side of a warning.
            self.stack.append(arg if isinstance(arg, str) and len(arg) <= _NAME_MAX else _OPAQUE)
        elif name in _GETS:
            self.stack.append(self.memo.get(int(arg), _OPAQUE))
        elif name == "MARK":
            self.stack.append(_MARK)
        elif name in {"DUP", "READONLY_BUFFER"}:
            self.stack.extend(popped * len(op.stack_after))
        else:
            self.stack.extend(_OPAQUE for _ in op.stack_after)
        return popped

    def _pop(self, op: pickletools.OpcodeInfo) -> list[object]:
        before = op.stack_before
        count = len(before)
        if pickletools.markobject in before:
            while self.stack and self.stack.pop() is not _MARK:
                pass
            count = before.index(pickletools.markobject)
        elif op.name == "POP" and self.stack and self.stack[-1] is _MARK:
            self.stack.pop()
            return []
        popped = self.stack[len(self.stack) - count :] if count else []
        del self.stack[len(self.stack) - len(popped) :]
        return popped


def _extension(code: int) -> tuple[str, str] | None:
    # copyreg keeps the code -> (module, name) table private; pickle reads it too.
    registry: dict[int, tuple[str, str]] = getattr(copyreg, "_inverted_registry", {})
    return registry.get(code)


def _global_of(op: pickletools.OpcodeInfo, arg: Any, popped: list[object], pos: int | None) -> GlobalRef | None:
    """The global ``op`` imports, if it imports one; ``popped`` is what it took off the stack."""
    name = op.name
    if name in {"GLOBAL", "INST"}:
        module, attr = arg
        return GlobalRef(module, attr, name, pos)
    if name == "STACK_GLOBAL":
        if len(popped) == 2 and all(isinstance(v, str) for v in popped):
            return GlobalRef(str(popped[0]), str(popped[1]), name, pos)
        return GlobalRef("?", "<computed name>", name, pos, resolved=False)
    if name in {"EXT1", "EXT2", "EXT4"}:
        target = _extension(int(arg))
        if target is None:
            return GlobalRef("?", f"<extension code {arg}>", name, pos, resolved=False)
        return GlobalRef(target[0], target[1], name, pos)
    return None


def _read_string_arg(f: IO[bytes]) -> str:
    """STRING's argument read as the loader reads it (``Unpickler.load_string``).

    pickletools' reader insists the escaped text is ASCII, but Python 2 wrote
    its str objects byte for byte: ``S'caf\\xe9'`` would stop the scan.
    """
    data = f.readline()
    if not data.endswith(b"\n"):
        raise ValueError("no newline found when trying to read a STRING argument")
    data = data[:-1]
    if len(data) < 2 or data[:1] not in (b"'", b'"') or data[-1:] != data[:1]:
        raise ValueError(f"the STRING argument {data[:40]!r} is not quoted")
    decoded: bytes = codecs.escape_decode(data[1:-1])[0]
    return decoded.decode("latin-1")


def _read_global_arg(f: IO[bytes]) -> tuple[str, str]:
    """GLOBAL's and INST's (module, name) as the loader reads them: two UTF-8 lines, no escapes."""
    lines = [f.readline(), f.readline()]
    if not all(line.endswith(b"\n") for line in lines):
        raise ValueError("no newline found when trying to read a module or class name")
    module, name = (line[:-1].decode("utf-8", "backslashreplace") for line in lines)
    return module, name


_BY_CODE: Final = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_ARG_READERS: Final = {"STRING": _read_string_arg, "GLOBAL": _read_global_arg, "INST": _read_global_arg}


def _genops(stream: IO[bytes]) -> Iterator[tuple[pickletools.OpcodeInfo, Any, int]]:
    """``pickletools.genops`` with the loader's own reading of STRING, GLOBAL and INST arguments.

    The opcode table and every other argument reader are pickletools'. GLOBAL
    and INST yield ``(module, name)``, not pickletools' ``"module name"``.
    """
    while True:
        pos = stream.tell()
        code = stream.read(1)
        op = _BY_CODE.get(code)
        if op is None:
            raise ValueError(f"at byte {pos}, opcode {code!r} is unknown" if code else "pickle ended before STOP")
        read_arg = _ARG_READERS.get(op.name) or (op.arg.reader if op.arg is not None else None)
        yield op, (None if read_arg is None else read_arg(stream)), pos
        if op.name == "STOP":
            return


def _scan_one(reader: _Reader, report: ScanReport) -> None:
    """Scan one pickle, up to and including its STOP; partial results stay in ``report``."""
    machine = _Machine()
    declared: int | None = None
    needed = 0
    # The readers need only read/readline/tell, which _Reader provides.
    for op, arg, pos in _genops(cast("IO[bytes]", reader)):
        report.opcodes += 1
        needed = max(needed, op.proto)
        if op.name == "PROTO" and isinstance(arg, int):
            declared = arg
        popped = machine.step(op, arg)
        ref = _global_of(op, arg, popped, pos)
        if ref is not None:
            # Unpickler(fix_imports=True) maps Python 2 names for protocols < 3 only.
            mapped = _py3_name(ref.module, ref.name) if (declared or 0) < 3 and ref.resolved else None
            if mapped is not None and mapped != (ref.module, ref.name):
                ref = GlobalRef(ref.module, ref.name, ref.opcode, ref.position, loads_as=mapped)
            report.globals.append(ref)
        _count(op.name, report)
    report.protocols.append(declared if declared is not None else needed)
    report.declared.append(declared is not None)


def _count(name: str, report: ScanReport) -> None:
    if name in _CALLS:
        report.calls += 1
    elif name == "NEXT_BUFFER":
        report.buffers += 1
    elif name == "READONLY_BUFFER":
        report.readonly_buffers += 1
    elif name in {"PERSID", "BINPERSID"}:
        report.persistent_ids += 1
    elif name in _PY2_STR:
        report.py2_strings += 1


def scan_stream(raw: Binary) -> ScanReport:
    """Read every pickle in ``raw`` (one after another) without loading any of them."""
    reader = _Reader(raw)
    report = ScanReport()
    try:
        while True:
            _scan_one(reader, report)
            report.ends.append(reader.tell())
            if reader.at_end():
                break
    except (ValueError, EOFError, OSError, lzma.LZMAError, zlib.error, MemoryError) as exc:
        if report.ends:
            # pickle.load reads one pickle and ignores what follows; so does this.
            report.trailing = f"the bytes after byte {report.ends[-1]} are not a complete pickle: {exc}"
        elif report.opcodes == 0:
            report.error = f"not a pickle: {exc}"
        else:
            report.error = f"unreadable at byte {reader.tell()} (truncated or damaged): {exc}"
    report.size = reader.tell()
    return report


@dataclass
class FileReport:
    path: str
    file_size: int
    compression: str | None
    scan: ScanReport


def scan_file(path: str | os.PathLike[str]) -> FileReport:
    """Open ``path`` (decompressing by magic bytes) and scan it; raises OSError / NotAPickleError."""
    with open_pickle(path) as (stream, compression):
        scan = scan_stream(stream)
    return FileReport(os.fspath(path), os.path.getsize(path), compression, scan)


def trusted_load(path: str | os.PathLike[str], count: int, encoding: str) -> list[Any]:
    """``pickle.load`` ``count`` times: this RUNS whatever the file asks for. Only under --trust."""
    with open_pickle(path) as (stream, _):
        return [pickle.load(stream, encoding=encoding) for _ in range(count)]
