"""``parallelpickle inspect FILE``: what loading a pickle file would do, without loading it.

::

    FILE ─▶ _inspect.scan_file (opcodes only, nothing runs) ─▶ report on stdout
         └─ --trust ─▶ _inspect.trusted_load (pickle.load: runs the file) ─▶ object summary

Exit codes: 0 the file was read (and, with ``--trust``, loaded); 1 ``--trust``
was given and loading failed; 2 usage errors, or a file that cannot be opened
or is not a readable pickle.
"""

from __future__ import annotations

import argparse
import codecs
import reprlib
import sys
from collections.abc import Mapping
from typing import Any

from ._inspect import FileReport, GlobalRef, NotAPickleError, ScanReport, scan_file, trusted_load

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlevel = 3


def _encoding(value: str) -> str:
    """``--encoding``: 'bytes' or a codec name, as ``pickle.load(encoding=...)`` takes."""
    if value == "bytes":
        return value
    try:
        codecs.lookup(value)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {value!r}; try latin1 or bytes") from None
    return value


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "inspect",
        help="show what a pickle file would import and run, without loading it",
        description="Read a pickle file's opcodes without running them: protocol, size, every global "
        "it would import, out-of-band buffers, and a warning for each global that can run code. "
        "gzip, bz2, xz and lzma files are recognised by their magic bytes.",
    )
    p.add_argument("file", metavar="FILE", help="the pickle file (plain or compressed)")
    p.add_argument(
        "--trust",
        action="store_true",
        help="also load the file with pickle.load and summarise the object. Loading RUNS whatever "
        "code the file asks for: use it only on files whose origin you trust",
    )
    p.add_argument(
        "--encoding",
        default="ASCII",
        type=_encoding,
        help="with --trust: how Python 2 str objects are decoded: latin1 (for Python 2 pickles, "
        "numpy arrays and datetimes included), bytes (keep them as bytes) or any codec; default ASCII",
    )


def run(args: argparse.Namespace) -> int:
    try:
        report = scan_file(args.file)
    except (OSError, NotAPickleError) as exc:
        print(f"parallelpickle inspect: {exc}", file=sys.stderr)
        return 2
    print("\n".join(describe(report)))
    scan = report.scan
    if scan.error is not None:
        print(f"parallelpickle inspect: {report.path}: {scan.error}", file=sys.stderr)
        return 2
    if not args.trust:
        print("not loaded: nothing from the file ran. --trust loads it, running whatever it asks for.")
        return 0
    return _load(report, args.encoding)


# -- the report ----------------------------------------------------------------
def describe(report: FileReport) -> list[str]:
    """The report a person reads: what the file holds and what loading it would import."""
    scan = report.scan
    size = f"{report.file_size:,} bytes"
    if report.compression is not None:
        size += f", {report.compression}; {scan.size:,} bytes of pickle data"
    lines = [f"file:      {report.path} ({size})"]
    if scan.pickles != 1:
        lines.append(f"pickles:   {scan.pickles} (one after another; each pickle.load reads one)")
    lines.append(f"protocol:  {_protocols(scan)}")
    calls = f"{scan.calls} call{'' if scan.calls == 1 else 's'}"
    lines.append(f"opcodes:   {scan.opcodes:,}, including {calls} (REDUCE, NEWOBJ, INST or OBJ)")
    lines.extend(_extras(scan))
    lines.extend(_globals_table(scan.distinct_globals()))
    warnings = scan.warnings()
    if warnings:
        lines.append(f"WARNING:   {len(warnings)} global(s) can do more than build data:")
        lines.extend(f"  ! {w}" for w in warnings)
    if scan.trailing is not None:
        lines.append(f"note:      {scan.trailing}")
    return lines


def _protocols(scan: ScanReport) -> str:
    if not scan.protocols:
        return "unknown (no complete pickle)"
    shown = []
    for proto, declared in zip(scan.protocols, scan.declared):
        shown.append(str(proto) if declared else f"{proto} (no PROTO opcode; the opcodes need {proto})")
    return ", ".join(dict.fromkeys(shown))


def _extras(scan: ScanReport) -> list[str]:
    lines = [f"buffers:   {scan.buffers} out-of-band (protocol 5)"]
    if scan.buffers:
        lines[0] += "; they are not in this file: the loader must pass them as pickle.load(..., buffers=...)"
    if scan.persistent_ids:
        lines.append(
            f"persistent ids: {scan.persistent_ids}; the loader must supply persistent_load (as torch.load does)"
        )
    if scan.py2_strings:
        lines.append(
            f"python 2:  {scan.py2_strings} str object(s) written by Python 2; "
            "load with --trust --encoding latin1 (or bytes)"
        )
    return lines


def _globals_table(refs: list[GlobalRef]) -> list[str]:
    if not refs:
        return ["globals:   none (loading imports nothing)"]
    lines = [f"globals:   {len(refs)}; loading imports each module, which runs the module's top-level code"]
    rows = [("module", "name", "opcode", "byte")]
    for ref in refs:
        name = ref.name if ref.loads_as is None else f"{ref.name} (loads as {'.'.join(ref.loads_as)})"
        rows.append((ref.module, name, ref.opcode, "" if ref.position is None else str(ref.position)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return lines


# -- loading (--trust) -----------------------------------------------------------
def _load(report: FileReport, encoding: str) -> int:
    scan = report.scan
    print(f"loading:   --trust given: pickle.load(encoding={encoding!r}) runs the file now")
    try:
        objects = trusted_load(report.path, scan.pickles, encoding)
    except Exception as exc:  # noqa: BLE001 - anything the file does is reported, not raised
        print(f"loading failed: {type(exc).__name__}: {exc}")
        hint = _load_hint(scan, exc)
        if hint:
            print(f"hint:      {hint}")
        return 1
    for index, obj in enumerate(objects):
        title = "loaded:   " if len(objects) == 1 else f"loaded #{index + 1}:"
        print(f"{title} {summarise(obj)}")
    return 0


def _load_hint(scan: ScanReport, exc: Exception) -> str | None:
    if isinstance(exc, UnicodeDecodeError) and scan.py2_strings:
        return "this is a Python 2 pickle: add --encoding latin1 (or --encoding bytes)"
    if scan.buffers:
        return f"the file refers to {scan.buffers} out-of-band buffer(s) that are not in it"
    if scan.persistent_ids:
        return "the file refers to persistent ids: load it with the library that wrote it"
    if isinstance(exc, (ImportError, AttributeError)):
        return "a module or class it names is not importable here: install the library that wrote it"
    return None


def summarise(obj: object) -> str:
    """One line: type, size, and a shortened repr (this calls the object's own __repr__)."""
    kind = type(obj)
    parts = [f"{kind.__module__}.{kind.__qualname__}"]
    shape, dtype = getattr(obj, "shape", None), getattr(obj, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        parts.append(f"shape {shape}, dtype {dtype}")
    elif hasattr(obj, "__len__"):
        try:
            parts.append(f"{len(obj)} item(s)")
        except TypeError:
            pass
    if isinstance(obj, Mapping):
        keys = ", ".join(_REPR.repr(k) for k in list(obj)[:8])
        parts.append(f"keys {keys}{', ...' if len(obj) > 8 else ''}")
    parts.append(_REPR.repr(obj))
    return " | ".join(parts)
