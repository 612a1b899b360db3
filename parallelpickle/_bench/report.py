"""Turn :class:`Results` into a terminal report, a JSON document and a PNG.

* :func:`text` -- tables a person reads: serializer time and size as multiples
  of C pickle (the baseline column in absolute units, with its spread),
  compression, pools with tasks/s, MB/s, ratio to the best and serialization
  share, the answers, and footnotes for every error.
* :func:`to_json` -- the same numbers with all medians and spreads, plus the
  machine, Python and package versions. ``SCHEMA`` names the layout; keys are
  only ever added under a new schema name.
* :func:`plot` -- matplotlib (Agg, no display needed): grouped bars per
  payload and per workload on a log scale; a case that failed is marked x.
"""

from __future__ import annotations

import importlib.metadata
import multiprocessing
import os
import platform
import sys
import time
from typing import Any

from .answers import Answer
from .pools import PoolRow
from .serializers import BASELINE, SerRow
from .suite import Results
from .timing import Stat

__all__ = ["SCHEMA", "plot", "text", "to_json"]

SCHEMA = "parallelpickle.bench/1"
PACKAGES = ("parallelpickle", "numpy", "dill", "cloudpickle", "pathos", "multiprocess", "loky", "mpire", "joblib")


def _seconds(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale * 0.9995:  # 999.6 us prints as 1 ms, not 1e+03 us
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def _bytes(n: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale * 0.9995:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


class _Notes:
    """Footnotes: each distinct error text once, cited by number in the tables."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def cite(self, error: str) -> str:
        if error not in self.items:
            self.items.append(error)
        return f"x[{self.items.index(error) + 1}]"


def _ser_cell(row: SerRow | None, base: float | None, value: float | None, notes: _Notes, *, is_time: bool) -> str:
    if row is None:
        return "-"
    if row.error:
        return notes.cite(f"{row.stage}: {row.error}")
    if value is None:
        return "?"
    if not base:  # the baseline cannot carry it: absolute figures
        return _seconds(value).replace(" ", "") if is_time else _bytes(value).replace(" ", "")
    ratio = value / base
    return (f"{ratio:.2f}" if ratio >= 0.01 else "<0.01") + ("!=" if row.roundtrip == "differs" else "")


def _ser_table(res: Results, what: str, notes: _Notes) -> list[str]:
    rows = {(r.payload, r.serializer): r for r in res.ser_rows}
    others = [s for s in res.serializers if s.name != BASELINE]
    base_name = BASELINE.replace("pickle-", "")
    head = f"{'payload':<30} {base_name + (' dumps+loads' if what == 'time' else ' size'):>20}"
    lines = [head + "".join(f" {s.short:>9}" for s in others)]
    for p in res.payloads:
        b = rows.get((p.name, BASELINE))
        base = _value(b, what)
        if b is None or base is None:
            first = notes.cite(f"{b.stage}: {b.error}") if b and b.error else "-"
        elif what == "time":
            d, lo = b.stat("dumps"), b.stat("loads")
            spread = max(d.spread, lo.spread) if d and lo else 0.0
            first = f"{_seconds(base)} ±{spread * 100:.0f}%"
        else:
            first = _bytes(base)
        cells = [
            _ser_cell(
                rows.get((p.name, s.name)),
                base,
                _value(rows.get((p.name, s.name)), what),
                notes,
                is_time=what == "time",
            )
            for s in others
        ]
        lines.append(f"{p.label:<30} {first:>20}" + "".join(f" {c:>9}" for c in cells))
    return lines


def _value(row: SerRow | None, what: str) -> float | None:
    if row is None or not row.ok:
        return None
    if what == "size":
        return float(row.size_bytes) if row.size_bytes is not None else None
    d, lo = row.stat("dumps"), row.stat("loads")
    return d.median + lo.median if d and lo else None


def _comp_table(res: Results) -> list[str]:
    labels = {p.name: p.label for p in res.payloads}
    codecs = sorted({r.codec for r in res.comp_rows}, key=["gzip", "bz2", "lzma"].index)
    lines = [f"{'payload (pickle bytes)':<40}" + "".join(f" {c + ' size  comp / decomp':>30}" for c in codecs)]
    by_payload: dict[str, dict[str, Any]] = {}
    for r in res.comp_rows:
        by_payload.setdefault(r.payload, {})[r.codec] = r
    for name, per in by_payload.items():
        first = next(iter(per.values()))
        label = f"{labels.get(name, name)} ({_bytes(first.input_bytes)}{', first part' if first.sampled else ''})"
        cells = [
            f"{per[c].ratio * 100:5.1f}% {_seconds(per[c].stat('compress').median):>9} / {_seconds(per[c].stat('decompress').median):<9}"
            for c in codecs
        ]
        lines.append(f"{label:<40}" + "".join(f" {c:>30}" for c in cells))
    return lines


def _best(rows: list[PoolRow]) -> float | None:
    medians = [s.median for r in rows if r.ok and (s := r.stat())]
    return min(medians) if medians else None


def _pool_table(res: Results, notes: _Notes) -> list[str]:
    lines = [
        f"{'workload':<30} {'runner':<14} {'wall (median ±IQR)':>20} {'tasks/s':>10} {'MB/s':>8} {'x best':>7} {'ser %':>6}"
    ]
    for w in res.workloads:
        rows = [r for r in res.pool_rows if r.workload == w.name]
        best = _best(rows)
        for r in rows:
            s = r.stat()
            if not r.ok or s is None or best is None:
                lines.append(f"{w.label:<30} {r.runner:<14} {notes.cite(r.error or 'no result'):>20}")
                continue
            tps, mbs, share = r.tasks_per_s(), r.mb_per_s(), r.serialization_share()
            lines.append(
                f"{w.label:<30} {r.runner:<14} {_seconds(s.median) + f' ±{s.spread * 100:.0f}%':>20} "
                f"{tps or 0:>10,.0f} {f'{mbs:,.0f}' if mbs else '':>8} {s.median / best:>7.2f} "
                f"{f'{share * 100:.0f}' if share is not None else '':>6}"
            )
    return lines


def text(res: Results, answers: list[Answer]) -> str:
    """The whole terminal report."""
    notes = _Notes()
    cfg = res.config
    out = [
        f"parallelpickle bench ({cfg.scale.name}): Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {cfg.workers} workers, start method "
        f"{multiprocessing.get_start_method()}; {res.seconds:.0f} s",
    ]
    if res.ser_rows:
        out += [
            "",
            f"Serializers: dumps+loads time, as a multiple of C pickle {BASELINE} (medians of {cfg.scale.rounds} rounds;"
            f" absolute where {BASELINE} cannot carry the payload)",
        ]
        out += _ser_table(res, "time", notes)
        out += ["", f"Serializers: size, as a multiple of {BASELINE}   (!= : round trip not equal)"]
        out += _ser_table(res, "size", notes)
    if res.comp_rows:
        out += ["", "Compression of the pickle (default levels): size as % of the pickle, compress / decompress time"]
        out += _comp_table(res)
    if res.pool_rows:
        out += [
            "",
            f"Pools ({cfg.workers} workers; medians of {cfg.scale.pool_repeats} runs after a warm-up; "
            "ser % = dumps+loads seconds over wall x processes, from pool.stats)",
        ]
        out += _pool_table(res, notes)
    if answers:
        out += ["", "Answers: what tutorials say, tested with these numbers"]
        for a in answers:
            out += [f'  "{a.claim}": {a.verdict.upper()}', f"      {a.summary}"]
    if notes.items:
        out += ["", "Errors (x[n] in the tables):"]
        out += [f"  [{i}] {e}" for i, e in enumerate(notes.items, 1)]
    return "\n".join(line.rstrip() for line in out)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _stat(samples: list[float]) -> dict[str, Any] | None:
    return Stat.of(samples).as_dict() if samples else None


def _environment() -> dict[str, Any]:
    return {
        "machine": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "compiler": platform.python_compiler(),
            "byteorder": sys.byteorder,
        },
        "packages": {name: _version(name) for name in PACKAGES},
    }


def _ser_json(res: Results) -> list[dict[str, Any]]:
    base = {r.payload: _value(r, "time") for r in res.ser_rows if r.serializer == BASELINE}
    out = []
    for r in res.ser_rows:
        t = _value(r, "time")
        out.append(
            {
                "payload": r.payload,
                "serializer": r.serializer,
                "ok": r.ok,
                "error": r.error,
                "stage": r.stage,
                "size_bytes": r.size_bytes,
                "roundtrip": r.roundtrip,
                "dumps_s": _stat(r.dumps),
                "loads_s": _stat(r.loads),
                "time_vs_baseline": t / b if t and (b := base.get(r.payload)) else None,
            }
        )
    return out


def _comp_json(res: Results) -> list[dict[str, Any]]:
    return [
        {
            "payload": r.payload,
            "codec": r.codec,
            "input_bytes": r.input_bytes,
            "sampled": r.sampled,
            "compressed_bytes": r.compressed_bytes,
            "ratio": r.ratio,
            "compress_s": _stat(r.compress),
            "decompress_s": _stat(r.decompress),
        }
        for r in res.comp_rows
    ]


def _pool_json(res: Results) -> list[dict[str, Any]]:
    out = []
    for w in res.workloads:
        rows = [r for r in res.pool_rows if r.workload == w.name]
        best = _best(rows)
        for r in rows:
            s = r.stat()
            out.append(
                {
                    "workload": r.workload,
                    "runner": r.runner,
                    "ok": r.ok,
                    "error": r.error,
                    "tasks": r.tasks,
                    "bytes": r.nbytes,
                    "wall_s": _stat(r.wall),
                    "tasks_per_s": r.tasks_per_s(),
                    "mb_per_s": r.mb_per_s(),
                    "ratio_to_best": s.median / best if s and best else None,
                    "serialization_share": r.serialization_share(),
                }
            )
    return out


def to_json(res: Results, answers: list[Answer]) -> dict[str, Any]:
    """Everything measured, in the layout named by ``SCHEMA``."""
    cfg = res.config
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": res.seconds,
        **_environment(),
        "settings": {
            "scale": cfg.scale.name,
            "workers": cfg.workers,
            "sections": list(cfg.only),
            "start_method": multiprocessing.get_start_method(),
            "rounds": cfg.scale.rounds,
            "pool_repeats": cfg.scale.pool_repeats,
            "baseline": BASELINE,
        },
        "payloads": [{"name": p.name, "label": p.label, "kind": p.kind} for p in res.payloads],
        "serializer_names": [{"name": s.name, "description": s.description} for s in res.serializers],
        "workloads": [
            {"name": w.name, "label": w.label, "tasks": len(w.items), "bytes": w.nbytes} for w in res.workloads
        ],
        "serializers": _ser_json(res),
        "compression": _comp_json(res),
        "pools": _pool_json(res),
        "answers": [
            {"claim": a.claim, "verdict": a.verdict, "summary": a.summary, "figures": a.figures} for a in answers
        ],
    }


def _bars(ax: Any, groups: list[str], series: list[str], value: Any, ylabel: str) -> None:
    """Grouped bars: one group per x label, one bar per series; None values are drawn as x."""
    width = 0.8 / max(1, len(series))
    colors = __import__("matplotlib").colormaps["tab10" if len(series) <= 10 else "tab20"]
    failed: list[tuple[float, int]] = []
    for i, name in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        vals = [value(gi, name) for gi in range(len(groups))]
        ax.bar([x for x, v in zip(xs, vals) if v], [v for v in vals if v], width, label=name, color=colors(i))
        failed += [(x, i) for x, v in zip(xs, vals) if not v]
    ax.set_yscale("log")
    bottom = ax.get_ylim()[0]
    for x, i in failed:
        ax.scatter([x], [bottom * 1.3], marker="x", color=colors(i), s=18)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=25, ha="right", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, ncols=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def plot(res: Results, path: str) -> None:
    """Write a PNG: serializer time per payload, and pool wall time per workload (log scales)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [bool(res.ser_rows), bool(res.pool_rows)]
    fig, axes = plt.subplots(max(1, sum(panels)), 1, figsize=(15, 6.5 * max(1, sum(panels))), squeeze=False)
    it = iter(axes[:, 0])
    if res.ser_rows:
        ser = {(r.payload, r.serializer): _value(r, "time") for r in res.ser_rows}
        ax = next(it)
        names = [s.name for s in res.serializers]
        _bars(
            ax,
            [p.label for p in res.payloads],
            names,
            lambda g, s: ser.get((res.payloads[g].name, s)),
            "dumps + loads, seconds (log)",
        )
        ax.set_title("Serializers: dumps + loads time per payload (lower is better; x = cannot carry it)")
    if res.pool_rows:
        walls = {(r.workload, r.runner): (s.median if r.ok and (s := r.stat()) else None) for r in res.pool_rows}
        ax = next(it)
        _bars(
            ax,
            [w.label for w in res.workloads],
            res.runner_names,
            lambda g, s: walls.get((res.workloads[g].name, s)),
            "wall time, seconds (log)",
        )
        ax.set_title(f"Pools: wall time per workload, {res.config.workers} workers (lower is better; x = failed)")
    fig.suptitle(f"parallelpickle bench ({res.config.scale.name}), Python {platform.python_version()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
