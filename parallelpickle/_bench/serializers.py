"""Serializers measured on the catalogue: dumps time, loads time, size, round trip.

Data flow for one (payload, serializer) case and one round::

    payload.obj --dumps--> packed --size--> bytes counted
                           packed --loads--> loaded --same_behaviour--> "equal" | "differs"

Each :class:`Serializer` is a pair of plain functions; none of them changes a
process-wide setting (dill's ``recurse`` is passed per call). A serializer
that raises is recorded with its error at the stage it failed (``dump`` or
``load``) and is not retried in later rounds: a refusal is not a timing.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .payloads import Payload, same_behaviour
from .timing import Stat, rotated, sample_seconds, timed_once

__all__ = ["BASELINE", "SerRow", "Serializer", "default_serializers", "run_serializers"]

BASELINE = f"pickle-p{pickle.DEFAULT_PROTOCOL}"


@dataclass(frozen=True)
class Serializer:
    name: str
    short: str  # column header in the terminal table
    description: str
    dumps: Callable[[Any], Any]
    loads: Callable[[Any], Any]
    size: Callable[[Any], int] = len


def _c_pickle(protocol: int) -> Serializer:
    return Serializer(
        f"pickle-p{protocol}",
        f"p{protocol}",
        f"C pickle, protocol {protocol}",
        lambda o: pickle.dumps(o, protocol),
        pickle.loads,
    )


def _oob_dumps(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    buffers: list[pickle.PickleBuffer] = []
    return pickle.dumps(obj, 5, buffer_callback=buffers.append), buffers


def _oob_loads(packed: tuple[bytes, list[pickle.PickleBuffer]]) -> Any:
    return pickle.loads(packed[0], buffers=packed[1])


def _oob_size(packed: tuple[bytes, list[pickle.PickleBuffer]]) -> int:
    return len(packed[0]) + sum(memoryview(b).nbytes for b in packed[1])


def _stock_dispatch() -> dict[type, Any]:
    """``pickle._Pickler``'s own dispatch table, as the stdlib ships it.

    Importing dill adds dill's reducers to ``pickle._Pickler.dispatch`` for the
    whole process (``dill.extend``), which would let the pure-Python pickler
    carry lambdas at dill's speed; dill keeps the original table as
    ``pickle_dispatch_copy``. Reading it changes nothing.
    """
    saved = getattr(sys.modules.get("dill._dill"), "pickle_dispatch_copy", None)
    return dict(saved if saved is not None else pickle._Pickler.dispatch)


def _pure_dumps(table: dict[type, Any]) -> Callable[[Any], bytes]:
    def dumps(obj: Any) -> bytes:
        out = io.BytesIO()
        pickler: Any = pickle._Pickler(out, pickle.DEFAULT_PROTOCOL)
        pickler.dispatch = table  # an instance attribute: the class's table stays as it is
        pickler.dump(obj)
        return out.getvalue()

    return dumps


def _py_loads(data: bytes) -> Any:
    return pickle._Unpickler(io.BytesIO(data)).load()


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def default_serializers() -> list[Serializer]:
    """Every serializer of the suite; the first is the baseline (C pickle, default protocol)."""
    import cloudpickle
    import dill

    protocols = [pickle.DEFAULT_PROTOCOL, *(p for p in (2, 3, 4, 5) if p != pickle.DEFAULT_PROTOCOL)]
    return [
        *(_c_pickle(p) for p in protocols),
        Serializer(
            "pickle-p5-oob",
            "p5-oob",
            "C pickle, protocol 5, buffers out of band (not copied)",
            _oob_dumps,
            _oob_loads,
            _oob_size,
        ),
        Serializer(
            "pickle-py",
            "pure-py",
            f"pure-Python pickle._Pickler, protocol {pickle.DEFAULT_PROTOCOL}",
            _pure_dumps(_stock_dispatch()),
            _py_loads,
        ),
        Serializer("dill", "dill", "dill, default settings", dill.dumps, dill.loads),
        Serializer("dill-recurse", "dill-rec", "dill, recurse=True", lambda o: dill.dumps(o, recurse=True), dill.loads),
        Serializer("cloudpickle", "cloudpkl", "cloudpickle", cloudpickle.dumps, pickle.loads),
        Serializer("json", "json", "json (UTF-8 bytes)", _json_dumps, json.loads),
    ]


@dataclass
class SerRow:
    """Result of one (payload, serializer) case over all rounds."""

    payload: str
    serializer: str
    error: str | None = None
    stage: str | None = None  # "dump" | "load" when error is set
    size_bytes: int | None = None
    roundtrip: str | None = None  # "equal" | "differs"
    dumps: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def stat(self, op: str) -> Stat | None:
        samples = self.dumps if op == "dumps" else self.loads
        return Stat.of(samples) if samples else None


def describe_error(exc: BaseException) -> str:
    """``Type: first line of the message``, short enough for a table footnote."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # addresses would make equal errors look different
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_round(row: SerRow, payload: Payload, ser: Serializer, min_time: float) -> None:
    stage = "dump"
    try:
        t_dump, packed = timed_once(lambda: ser.dumps(payload.obj))
        stage = "load"
        t_load, loaded = timed_once(lambda: ser.loads(packed))
    except Exception as exc:  # noqa: BLE001 - a refusal is a result, shown in the report
        row.error, row.stage = describe_error(exc), stage
        return
    row.size_bytes = ser.size(packed)
    try:
        row.roundtrip = "equal" if same_behaviour(payload, loaded) else "differs"
    except Exception:  # noqa: BLE001 - e.g. a loaded callable that raises
        row.roundtrip = "differs"
    row.dumps.append(sample_seconds(lambda: ser.dumps(payload.obj), min_time, t_dump))
    row.loads.append(sample_seconds(lambda: ser.loads(packed), min_time, t_load))


def _next_round(row: SerRow, payload: Payload, ser: Serializer, min_time: float) -> None:
    packed = ser.dumps(payload.obj)
    row.dumps.append(sample_seconds(lambda: ser.dumps(payload.obj), min_time))
    row.loads.append(sample_seconds(lambda: ser.loads(packed), min_time))


def run_serializers(
    payloads: Sequence[Payload],
    serializers: Sequence[Serializer],
    *,
    rounds: int,
    min_time: float,
    tick: Callable[[], None] = lambda: None,
) -> list[SerRow]:
    """Time every serializer on every payload for ``rounds`` rounds, rotating the order."""
    rows = {(p.name, s.name): SerRow(p.name, s.name) for p in payloads for s in serializers}
    for r in range(rounds):
        for payload in payloads:
            for ser in rotated(serializers, r):
                row = rows[payload.name, ser.name]
                if r == 0:
                    _first_round(row, payload, ser, min_time)
                elif row.ok:
                    _next_round(row, payload, ser, min_time)
                tick()
    return list(rows.values())
