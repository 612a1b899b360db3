"""Test the claims tutorials make against today's numbers.

Each claim becomes an :class:`Answer`: a verdict (``holds``, ``partly``,
``does not hold``, or ``not measured`` when its section did not run), one
sentence with the figures behind it, and those figures as numbers for the
JSON report. Ratios compare medians measured side by side in the same run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .serializers import BASELINE, SerRow
from .suite import Results

__all__ = ["Answer", "answer_all"]

_NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Answer:
    claim: str
    verdict: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)


def _total(row: SerRow) -> float | None:
    d, lo = row.stat("dumps"), row.stat("loads")
    return d.median + lo.median if d and lo else None


def _ratios(res: Results, name: str, *, op: str = "total", kind: str = "data") -> dict[str, float]:
    """payload -> median time of ``name`` over the baseline's, where both ran (``op``: dumps, loads, total)."""
    rows = {(r.payload, r.serializer): r for r in res.ser_rows}
    out = {}
    for p in res.payloads:
        a, b = rows.get((p.name, name)), rows.get((p.name, BASELINE))
        if p.kind != kind or a is None or b is None or not (a.ok and b.ok):
            continue
        if op == "total":
            ta, tb = _total(a), _total(b)
        else:
            sa, sb = a.stat(op), b.stat(op)
            ta, tb = (sa.median if sa else None), (sb.median if sb else None)
        if ta and tb:
            out[p.name] = ta / tb
    return out


def _span(values: dict[str, float]) -> str:
    lo, hi = min(values, key=values.__getitem__), max(values, key=values.__getitem__)
    if lo == hi:
        return f"{values[lo]:.1f}x ({lo})"
    return f"{values[lo]:.1f}x ({lo}) to {values[hi]:.1f}x ({hi})"


def _cpickle(res: Results) -> Answer:
    claim = "cPickle is up to 1000x faster than pickle"
    dumps, loads = _ratios(res, "pickle-py", op="dumps"), _ratios(res, "pickle-py", op="loads")
    if not dumps or not loads:
        return Answer(claim, _NOT_MEASURED, "serializers were not measured")
    top = max(*dumps.values(), *loads.values())
    verdict = "holds" if top >= 500 else "partly" if top >= 100 else "does not hold"
    summary = (
        f"the pure-Python pickler takes {_span(dumps)} C pickle's time at dumps and {_span(loads)} at loads; "
        f"the 1000x dates from Python 2's protocol 0"
    )
    return Answer(claim, verdict, summary, {"dumps_ratio": dumps, "loads_ratio": loads, "max_ratio": top})


def _json(res: Results) -> Answer:
    claim = "JSON is much faster than pickle"
    ratios = _ratios(res, "json")
    if not ratios:
        return Answer(claim, _NOT_MEASURED, "no payload both json and pickle carried")
    if all(r <= 0.5 for r in ratios.values()):
        verdict = "holds"
    elif all(r >= 1.0 for r in ratios.values()):
        verdict = "does not hold"
    else:
        verdict = "partly"
    summary = f"json dumps+loads takes {_span(ratios)} the time of C pickle, on the payloads json can carry"
    return Answer(claim, verdict, summary, {"time_ratio": ratios})


def _compression(res: Results) -> Answer:
    claim = "gzip files are about twice as large as bzip2, bzip2 is a bit slower"
    rows = {(r.payload, r.codec): r for r in res.comp_rows}
    names = sorted({r.payload for r in res.comp_rows})
    size, speed = {}, {}
    for n in names:
        g, b = rows.get((n, "gzip")), rows.get((n, "bz2"))
        if g and b and b.compressed_bytes:
            size[n] = g.compressed_bytes / b.compressed_bytes
            gt = g.stat("compress").median + g.stat("decompress").median
            speed[n] = (b.stat("compress").median + b.stat("decompress").median) / gt
    if not size:
        return Answer(claim, _NOT_MEASURED, "compression was not measured")
    size_med, speed_med = statistics.median(size.values()), statistics.median(speed.values())
    size_ok, speed_ok = 1.6 <= size_med <= 2.5, 1.0 < speed_med <= 3.0
    verdict = "holds" if size_ok and speed_ok else "partly" if size_ok or speed_ok else "does not hold"
    summary = (
        f"gzip output is {size_med:.2f}x the size of bz2's (median; {_span(size)}); "
        f"bz2 compress+decompress takes {speed_med:.2f}x gzip's time (median; {_span(speed)}); "
        "both at Python's default level 9"
    )
    return Answer(claim, verdict, summary, {"gzip_over_bz2_size": size, "bz2_over_gzip_time": speed})


def _dill(res: Results) -> Answer:
    claim = "dill is slower than pickle"
    data, fns = _ratios(res, "dill"), _ratios(res, "dill", kind="callable")
    if not data:
        return Answer(claim, _NOT_MEASURED, "serializers were not measured")
    med = statistics.median(data.values())
    verdict = "holds" if min(data.values()) > 1.2 else "partly" if med > 1.2 else "does not hold"
    summary = f"on data dill dumps+loads takes {_span(data)} C pickle's time (median {med:.1f}x)"
    if fns:
        summary += f"; on functions pickle can carry, {_span(fns)}"
    return Answer(claim, verdict, summary, {"data_ratio": data, "callable_ratio": fns})


def _small(res: Results) -> Answer:
    claim = "for small objects you won't notice"
    small = {p.name for p in res.payloads if "small" in p.tags}
    times = {(r.payload, r.serializer): t for r in res.ser_rows if r.payload in small and (t := _total(r))}
    if not times:
        return Answer(claim, _NOT_MEASURED, "serializers were not measured")
    (worst_p, worst_s), worst = max(times.items(), key=lambda kv: kv[1])
    base = min(t for (p, _), t in times.items() if p == worst_p)
    verdict = "holds" if worst < 1e-3 else "partly" if worst < 1e-2 else "does not hold"
    summary = (
        f"the slowest serializer on the tutorial objects ({worst_s}, {worst_p}) needs {worst * 1e6:.0f} us per "
        f"dumps+loads, {worst / base:.0f}x the fastest: unnoticeable once, {worst * 1e5:.1f} s per 100,000 objects"
    )
    figures = {f"{p}/{s}": t for (p, s), t in times.items()}
    return Answer(claim, verdict, summary, {"seconds": figures, "worst": worst})


CLAIMS: tuple[Callable[[Results], Answer], ...] = (_cpickle, _json, _compression, _dill, _small)


def answer_all(res: Results) -> list[Answer]:
    """One answer per claim, in the order tutorials tend to make them."""
    return [claim(res) for claim in CLAIMS]
