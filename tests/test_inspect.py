"""``parallelpickle inspect``: read what a pickle would import, never run it unless trusted.

The oracle for "which globals does this pickle import" is the unpickler
itself: :class:`Recorder` loads harmless pickles and records every
``find_class`` call, and the scan must name exactly those.
"""

from __future__ import annotations

import bz2
import collections
import copyreg
import datetime
import gzip
import io
import lzma
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parallelpickle import cli
from parallelpickle._inspect import danger_of, scan_file, scan_stream

PROTOCOLS = list(range(pickle.HIGHEST_PROTOCOL + 1))
SAMPLE = {
    "ordered": collections.OrderedDict(a=1),
    "when": datetime.date(2024, 5, 17),
    "tags": {"x", "y"},
    "raw": b"\x00\xff",
    "nested": [1.5, ("t", None), True],
}
# Exactly what Python 2.7 writes for pickle.dumps(set(['caf\xe9']), 2) and for
# pickle.dumps({'name': 'caf\xe9'}, 0): str objects are bytes in Python 2.
PY2_PROTO2 = b"\x80\x02c__builtin__\nset\nq\x00]q\x01U\x04caf\xe9q\x02a\x85q\x03Rq\x04."
PY2_PROTO0 = b"(dp0\nS'name'\np1\nS'caf\\xe9'\np2\ns."


class Recorder(pickle.Unpickler):
    """A real unpickler that also notes every global it imports."""

    def __init__(self, data: bytes, **kwargs: Any) -> None:
        super().__init__(io.BytesIO(data), **kwargs)
        self.imported: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.imported.append((module, name))
        return super().find_class(module, name)


def imported_by(data: bytes, **kwargs: Any) -> set[tuple[str, str]]:
    recorder = Recorder(data, **kwargs)
    recorder.load()
    return set(recorder.imported)


def scanned(data: bytes) -> set[tuple[str, str]]:
    return {(g.module, g.name) for g in scan_stream(io.BytesIO(data)).globals}


def inspect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_names_exactly_what_loading_imports(
    protocol: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = pickle.dumps(SAMPLE, protocol=protocol)
    path = tmp_path / "sample.pkl"
    path.write_bytes(data)
    assert scanned(data) == imported_by(data)
    report = scan_file(path)
    assert (report.scan.protocols, report.scan.size, report.scan.error) == ([protocol], len(data), None)
    assert report.file_size == len(data) and report.compression is None
    code, out, _ = inspect(capsys, str(path))
    assert code == 0
    assert out.splitlines()[1].startswith(f"protocol:  {protocol}")
    rows = {tuple(line.split()[:2]) for line in out.splitlines() if line.startswith("  ") and "!" not in line}
    assert rows - {("module", "name")} == imported_by(data)
    assert "WARNING" not in out and "not loaded" in out
    if protocol < 3:
        assert "set (loads as builtins.set)" in out  # Python 2 names, mapped by fix_imports


def test_memoized_strings_still_name_stack_global_operands() -> None:
    # Protocol 4 writes "posix" once and fetches it from the memo (BINGET) for
    # the second function: the scan follows the memo, as the loader does.
    data = pickle.dumps([os.getcwd, os.system, os.getcwd], protocol=4)
    assert data.count(os.name.encode()) == 1
    found = scanned(data)
    assert found == imported_by(data) == {(os.getcwd.__module__, "getcwd"), (os.system.__module__, "system")}


def test_a_computed_global_name_is_reported_as_unknowable() -> None:
    # STACK_GLOBAL takes its module name from the result of a call (str('os')):
    # no scan can know it, and loading really does import os.system.
    data = b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R\x8c\x06system\x93."
    assert pickle.loads(data) is os.system
    report = scan_stream(io.BytesIO(data))
    assert ("builtins", "str") in {(g.module, g.name) for g in report.globals}
    assert [g.resolved for g in report.globals] == [True, False]
    assert any("computed while loading" in w for w in report.warnings())


def test_extension_codes_are_looked_up_not_loaded() -> None:
    data = b"\x80\x02\x82\xf0."  # EXT1 240
    unknown = scan_stream(io.BytesIO(data))
    assert [g.opcode for g in unknown.globals] == ["EXT1"] and not unknown.globals[0].resolved
    assert any("extension code 240" in w for w in unknown.warnings())
    copyreg.add_extension("os", "system", 240)
    try:
        known = scan_stream(io.BytesIO(data))
    finally:
        copyreg.remove_extension("os", "system", 240)
    assert [(g.module, g.name) for g in known.globals] == [("os", "system")]
    assert any(w.startswith("os.system: runs a shell command") for w in known.warnings())


def test_out_of_band_buffers_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buffers: list[pickle.PickleBuffer] = []
    arrays = [np.arange(1000), np.ones(3)]
    data = pickle.dumps(arrays, protocol=5, buffer_callback=buffers.append)
    path = tmp_path / "arrays.pkl"
    path.write_bytes(data)
    assert scan_file(path).scan.buffers == len(buffers) == 2
    code, out, _ = inspect(capsys, str(path))
    assert code == 0 and "buffers:   2 out-of-band" in out
    code, out, _ = inspect(capsys, str(path), "--trust")
    assert code == 1 and "2 out-of-band buffer(s) that are not in it" in out


COMPRESSORS: dict[str, Callable[[Path, bytes], None]] = {
    "gzip": lambda p, d: p.write_bytes(gzip.compress(d)),
    "bz2": lambda p, d: p.write_bytes(bz2.compress(d)),
    "xz": lambda p, d: p.write_bytes(lzma.compress(d, format=lzma.FORMAT_XZ)),
    "lzma": lambda p, d: p.write_bytes(lzma.compress(d, format=lzma.FORMAT_ALONE)),
}


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_compressed_files_are_recognised_by_magic_bytes(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = pickle.dumps(SAMPLE, protocol=4)
    path = tmp_path / "no-telling-extension.bin"
    COMPRESSORS[kind](path, data)
    report = scan_file(path)
    assert report.compression == kind
    assert report.scan.size == len(data) and report.file_size == path.stat().st_size
    assert {(g.module, g.name) for g in report.scan.globals} == imported_by(data)
    code, out, _ = inspect(capsys, str(path), "--trust")
    assert code == 0
    assert f"{kind}; {len(data):,} bytes of pickle data" in out
    assert "loaded:    builtins.dict | 5 item(s)" in out and f"'ordered': {SAMPLE['ordered']!r}" in out


@pytest.mark.parametrize("data", [PY2_PROTO2, PY2_PROTO0], ids=["protocol2", "protocol0"])
def test_python2_pickles_load_with_latin1_or_bytes(
    data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "py2.pkl"
    path.write_bytes(data)
    code, out, _ = inspect(capsys, str(path))
    assert code == 0 and "written by Python 2" in out
    code, out, _ = inspect(capsys, str(path), "--trust")
    assert code == 1 and "UnicodeDecodeError" in out and "--encoding latin1" in out
    code, out, _ = inspect(capsys, str(path), "--trust", "--encoding", "latin1")
    assert code == 0 and "'café'" in out
    code, out, _ = inspect(capsys, str(path), "--trust", "--encoding", "bytes")
    assert code == 0 and "b'caf\\xe9'" in out


class TouchMarker:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


class ExecMarker(TouchMarker):
    """Unpickling this runs Python code that creates a file."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("payload", "global_name"),
    [(TouchMarker, f"{os.system.__module__}.system"), (ExecMarker, "builtins.exec")],
    ids=["os.system", "exec"],
)
def test_malicious_pickle_runs_nothing_without_trust(
    payload: type[TouchMarker], global_name: str, protocol: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "gift.pkl"
    path.write_bytes(pickle.dumps({"weights": [0.5, 1.5], "extra": payload(marker)}, protocol=protocol))
    code, out, _ = inspect(capsys, str(path))
    assert code == 0
    assert not marker.exists(), "inspect ran code from the file"
    warning = next(line for line in out.splitlines() if line.startswith("  ! "))
    shown = global_name.replace("builtins", "__builtin__") if protocol < 3 else global_name
    assert warning.startswith(f"  ! {shown}: ")
    # The file is a real attack: loading it the ordinary way creates the marker.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_truncated_malicious_pickle_still_warns_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps([TouchMarker(marker), "x" * 50], protocol=4)[:-20])
    code, out, err = inspect(capsys, str(path), "--trust")
    assert code == 2 and "truncated or damaged" in err
    assert "! posix.system" in out or "! nt.system" in out
    assert not marker.exists(), "a file that cannot be read to its end is never loaded"


def test_inspect_never_imports_the_modules_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "noisy_module_for_inspect.py"
    marker = tmp_path / "imported"
    module.write_text(f"open({str(marker)!r}, 'w').close()\nclass Thing: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "thing.pkl"
    path.write_bytes(b"\x80\x04\x8c\x18noisy_module_for_inspect\x8c\x05Thing\x93)\x81.")
    code, out, _ = inspect(capsys, str(path))
    assert code == 0 and "noisy_module_for_inspect" in out and "Thing" in out
    assert not marker.exists() and "noisy_module_for_inspect" not in sys.modules
    code, out, _ = inspect(capsys, str(path), "--trust")
    assert code == 0 and "noisy_module_for_inspect.Thing" in out
    assert marker.exists(), "--trust really loads"
    monkeypatch.delitem(sys.modules, "noisy_module_for_inspect")


def test_trusted_harmless_file_is_loaded_and_summarised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.pkl"
    with path.open("wb") as f:
        pickle.dump({"a": np.zeros((2, 3))}, f)
        pickle.dump(list(range(100)), f)
    code, out, _ = inspect(capsys, str(path), "--trust")
    assert code == 0
    assert "pickles:   2" in out
    assert "loaded #1: builtins.dict | 1 item(s) | keys 'a'" in out
    assert "loaded #2: builtins.list | 100 item(s) | [0, 1, 2, 3, 4, 5, ...]" in out


def test_trailing_bytes_after_a_pickle_are_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tail.pkl"
    path.write_bytes(pickle.dumps([1, 2]) + b"\x00garbage")
    code, out, _ = inspect(capsys, str(path), "--trust")
    assert code == 0 and "note:" in out and "loaded:    builtins.list | 2 item(s)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a pickle"),
        (b"Hello, I am a text file\n", "not a pickle"),
        (pickle.dumps(SAMPLE)[:-9], "truncated or damaged"),
        (gzip.compress(pickle.dumps(SAMPLE))[:-12], "truncated or damaged"),
        (b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + b"claims 4 EiB", "truncated or damaged"),
        (b"\x28\xb5\x2f\xfd\x00\x00", "zstd"),
    ],
    ids=["empty", "text", "truncated", "truncated-gzip", "huge-length-field", "zstd"],
)
def test_unreadable_files_exit_2(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    code, _, err = inspect(capsys, str(path), "--trust")
    assert code == 2 and message in err


def test_archives_and_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(1))
    code, _, err = inspect(capsys, str(archive))
    assert code == 2 and "zip archive" in err
    code, _, err = inspect(capsys, str(tmp_path / "missing.pkl"))
    assert code == 2 and "No such file" in err
    for argv in ([], ["x.pkl", "--encoding", "no-such-codec"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["inspect", *argv])
        assert exc.value.code == 2


def test_command_line_entry_point(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "gift.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(TouchMarker(marker), protocol=2)))
    proc = subprocess.run(
        [sys.executable, "-m", "parallelpickle", "inspect", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "gzip" in proc.stdout and "WARNING" in proc.stdout and not marker.exists()


DANGEROUS = [
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("os", "popen"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "compile"),
    ("builtins", "__import__"),
    ("builtins", "getattr"),
    ("builtins", "open"),
    ("__builtin__", "eval"),  # Python 2 spelling
    ("__builtin__", "apply"),
    ("subprocess", "Popen"),
    ("subprocess", "check_output"),
    ("subprocess", "Popen.__init__"),
    ("importlib", "import_module"),
    ("importlib.machinery", "SourceFileLoader"),
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("marshal", "loads"),
    ("runpy", "run_path"),
    ("code", "InteractiveInterpreter"),
    ("types", "CodeType"),
    ("operator", "attrgetter"),
    ("socket", "socket"),
    ("ctypes", "CDLL"),
]
HARMLESS = [
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("__builtin__", "set"),
    ("copy_reg", "_reconstructor"),
    ("datetime", "datetime"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("os", "stat_result"),
    ("codecs", "encode"),
]


@pytest.mark.parametrize(("module", "name"), DANGEROUS, ids=[".".join(p) for p in DANGEROUS])
def test_globals_that_can_run_code_are_flagged(module: str, name: str) -> None:
    assert danger_of(module, name)


@pytest.mark.parametrize(("module", "name"), HARMLESS, ids=[".".join(p) for p in HARMLESS])
def test_data_globals_are_not_flagged(module: str, name: str) -> None:
    assert danger_of(module, name) is None
