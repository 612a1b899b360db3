"""``check(..., verify=True)``: load the real payloads in a fresh worker.

Static rules predict what a spawned or forkserver worker will import; this
module asks one. For each start method other than fork (the parent already
loaded the payloads in-process, which is what a forked worker does) one
child is started with that start method, exactly as a pool starts its
workers, so it re-imports the main script the same way::

    parent: Codec.dumps_callable / dumps_data ─▶ Pipe ─▶ child: Codec.loads
    parent ◀─ [None | "Type: message"] per payload ◀─┘

The verdicts of the real loads replace the static load-side predictions for
that start method; dump-side problems and lossy findings stay as they were.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from typing import Any

from .._transports import Codec
from ._report import Problem, Report, worst
from ._rules import by_name, classify_text

__all__ = ["load_in_child", "verify_report"]

_TIMEOUT_S = 120.0


def _child(conn: Any) -> None:
    """Runs in the fresh worker: load each (transport, tag, data) and say what happened."""
    payloads = conn.recv()
    out: list[str | None] = []
    for transport, tag, data in payloads:
        try:
            Codec(transport).loads(tag, data)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it is
            out.append(f"{type(exc).__name__}: {exc}")
        else:
            out.append(None)
    conn.send(out)
    conn.close()


def load_in_child(payloads: list[tuple[str, str, bytes]], start_method: str) -> list[str | None]:
    """Load each payload in one new process; None where it loaded, else the error text."""
    ctx: Any = multiprocessing.get_context(start_method)
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child,), daemon=True)
    proc.start()
    child.close()
    try:
        parent.send(payloads)
        if not parent.poll(_TIMEOUT_S):
            return ["TimeoutError: the worker did not answer"] * len(payloads)
        answer: list[str | None] = parent.recv()
        return answer
    except (EOFError, OSError) as exc:
        return [f"the worker died while loading (exit code {proc.exitcode}): {exc}"] * len(payloads)
    finally:
        parent.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _encode(transport: str, obj: Any, role: str) -> tuple[str, bytes] | None:
    codec = Codec(transport)
    try:
        return codec.dumps_callable(obj) if role == "callable" else codec.dumps_data(obj)
    except Exception:  # noqa: BLE001 - a dump failure is already in the report
        return None


def verify_report(report: Report, roots: list[tuple[str, Any, str]]) -> None:
    """Replace static load predictions with real loads, for each non-fork start method."""
    jobs: list[tuple[str, str, str, bytes]] = []  # (transport, root path, tag, data)
    for t in report.transports:
        for path, obj, role in roots:
            encoded = _encode(t, obj, role)
            if encoded is not None:
                jobs.append((t, path, *encoded))
    for method in report.start_methods:
        if method == "fork" or not jobs:
            continue
        answers = load_in_child([(t, tag, data) for t, _, tag, data in jobs], method)
        _apply(report, method, jobs, answers)
    report.verified = True


def _apply(report: Report, method: str, jobs: list[tuple[str, str, str, bytes]], answers: list[str | None]) -> None:
    failed: dict[str, list[tuple[str, str]]] = {}
    for (t, path, _, _), answer in zip(jobs, answers):
        if answer is not None:
            failed.setdefault(t, []).append((path, answer))
    kept: list[Problem] = []
    for p in report.problems:
        static_load = p.stage == "load" and p.verdict == "fails" and method in p.start_methods
        if static_load and p.transport not in failed:
            rest = tuple(m for m in p.start_methods if m != method)
            if rest:
                kept.append(dataclasses.replace(p, start_methods=rest))
            continue
        kept.append(p)
    for t, items in failed.items():
        known = any(p.transport == t and p.stage == "load" and method in p.start_methods for p in kept)
        if not known:
            for path, error in items:
                rule = classify_text(error)
                if rule.name == "unknown":
                    rule = by_name("fresh-load-failed")
                kept.append(
                    Problem(
                        t, "load", path, "?", error, rule.reason, rule.fix, f"verified:{rule.name}", "fails", (method,)
                    )
                )
    report.problems[:] = kept
    for t in report.transports:
        verdicts = [p.verdict for p in kept if p.transport == t and method in p.start_methods]
        report.matrix[t][method] = worst(verdicts)
