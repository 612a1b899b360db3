"""Compression of the pickled bytes: gzip, bz2 and lzma at their default levels.

Data flow: ``pickle.dumps(payload, DEFAULT_PROTOCOL)`` -> at most ``cap`` bytes
(the start of the pickle, marked ``sampled``; lzma needs about 0.5 s per MB of
random floats, so a 100 MB array would dominate the whole run) -> compress ->
decompress -> compare. Callables and tiny objects are skipped: a 100-byte
pickle says nothing about a compressor.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .payloads import Payload
from .timing import Stat, rotated, sample_seconds, timed_once

__all__ = ["CODECS", "Codec", "CompRow", "Sample", "prepare", "run_compression"]

_MIN_BYTES = 1024


@dataclass(frozen=True)
class Codec:
    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


CODECS = (
    Codec("gzip", gzip.compress, gzip.decompress),
    Codec("bz2", bz2.compress, bz2.decompress),
    Codec("lzma", lzma.compress, lzma.decompress),
)


@dataclass
class CompRow:
    payload: str
    codec: str
    input_bytes: int
    sampled: bool
    compressed_bytes: int = 0
    compress: list[float] = field(default_factory=list)
    decompress: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Compressed size over input size (0.25: a quarter of the pickle)."""
        return self.compressed_bytes / self.input_bytes if self.input_bytes else 1.0

    def stat(self, op: str) -> Stat:
        return Stat.of(self.compress if op == "compress" else self.decompress)


@dataclass(frozen=True)
class Sample:
    """The bytes one payload contributes: its pickle, cut at ``cap`` when longer."""

    payload: str
    data: bytes
    sampled: bool


def prepare(payloads: Sequence[Payload], cap: int) -> list[Sample]:
    """The data payloads worth compressing, pickled and capped."""
    chosen = []
    for p in payloads:
        if p.kind != "data" or "small" in p.tags:
            continue
        try:
            data = pickle.dumps(p.obj, pickle.DEFAULT_PROTOCOL)
        except Exception:  # noqa: BLE001 - C pickle refuses it (a __main__ class): nothing to compress
            continue
        if len(data) >= _MIN_BYTES:
            chosen.append(Sample(p.name, data[:cap], len(data) > cap))
    return chosen


def _measure(row: CompRow, codec: Codec, data: bytes, min_time: float) -> None:
    t_compress, packed = timed_once(lambda: codec.compress(data))
    t_decompress, unpacked = timed_once(lambda: codec.decompress(packed))
    if unpacked != data:
        raise AssertionError(f"{codec.name} did not round-trip {row.payload}")
    row.compressed_bytes = len(packed)
    row.compress.append(sample_seconds(lambda: codec.compress(data), min_time, t_compress))
    row.decompress.append(sample_seconds(lambda: codec.decompress(packed), min_time, t_decompress))


def run_compression(
    samples: Sequence[Sample],
    *,
    rounds: int,
    min_time: float,
    tick: Callable[[], None] = lambda: None,
) -> list[CompRow]:
    """Compress each sample with every codec; the codec order rotates between rounds."""
    rows = {(s.payload, c.name): CompRow(s.payload, c.name, len(s.data), s.sampled) for s in samples for c in CODECS}
    for r in range(rounds):
        for s in samples:
            for codec in rotated(CODECS, r):
                _measure(rows[s.payload, codec.name], codec, s.data, min_time)
                tick()
    return list(rows.values())
