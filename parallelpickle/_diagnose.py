"""Turn a serialization failure inside a Pool call into an explained error.

The pool calls :func:`serialization_error` wherever a dump or load fails. When
the object is at hand (a callable, initargs, an argument that would not dump)
the checker runs on it: the message names the path to the culprit, the
reason, the fix and the transports that can carry it, and the full
:class:`~parallelpickle.Report` rides along as ``SerializationError.report``.
When only the exception is known (a load in the worker, a result that would
not dump) the message is classified from the exception text alone::

    exc, obj ─▶ check_roots(obj) ─▶ Report ─▶ "where / why / fix / rule" lines
    exc      ─▶ classify_text(exc)          ─▶ "why / fix" lines
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from ._checker._check import TRANSPORTS, check_roots
from ._checker._report import Problem, Report
from ._checker._rules import by_name, classify_text
from ._errors import SerializationError

__all__ = ["carriers", "serialization_error"]


def _root(what: str) -> tuple[str, str]:
    """(path, role) of the object the pool failed on, from its description."""
    if what.startswith(("callable", "initializer")):
        return "fn", "callable"
    if what == "initargs":
        return "initargs", "data"
    return "obj", "data"


def diagnose(obj: Any, what: str) -> Report:
    """The checker's report on the object a pool could not dump, over every start method
    this platform has (so a transport named as a fix works whichever one the pool uses)."""
    path, role = _root(what)
    return check_roots([(path, obj, role)], TRANSPORTS, tuple(multiprocessing.get_all_start_methods()))


def carriers(obj: Any, what: str = "argument") -> list[str]:
    """The built-in transports that carry ``obj`` unchanged under every start method."""
    return diagnose(obj, what).carriers()


def _pick(report: Report, transport: str) -> Problem | None:
    mine = [p for p in report.problems if p.transport == transport and p.verdict == "fails"]
    failing = [p for p in report.problems if p.verdict == "fails"]
    chosen = mine or failing
    return chosen[0] if chosen else None


def _object_lines(obj: Any, transport: str, what: str) -> tuple[list[str], Report]:
    report = diagnose(obj, what)
    lines = []
    problem = _pick(report, transport)
    if problem is not None:
        lines.append(f"where: {problem.path} ({problem.type_name})")
        lines.append(f"why: {problem.reason}")
        lines.append(f"fix: {problem.fix}")
        lines.append(f"rule: {problem.rule}")
    if report.carriers():
        return lines, report
    lossy = [p for p in report.problems if p.verdict == "lossy" and report.verdicts[p.transport] == "lossy"]
    if lossy:
        names = sorted({p.transport for p in lossy}, key=TRANSPORTS.index)
        lines.append(f"note: transport={names[0]!r} carries it, but changed: {lossy[0].reason}")
    else:
        lines.append("note: no built-in transport can carry it; pass what it is built from instead")
    return lines, report


def _text_lines(exc: BaseException, stage: str, what: str) -> list[str]:
    rule = classify_text(f"{type(exc).__name__}: {exc}")
    if what.startswith("result"):
        head = by_name("result")
        why = head.reason if rule.name == "unknown" else f"{head.reason}: {rule.reason}"
        return [f"why: {why}", f"fix: {head.fix if rule.name == 'unknown' else rule.fix}", f"rule: {rule.name}"]
    if rule.name != "unknown":
        return [f"why: {rule.reason}", f"fix: {rule.fix}", f"rule: {rule.name}"]
    if stage == "load":
        return [
            "why: the bytes were written but could not be turned back into objects on the other side "
            "(a class or function the receiving process cannot import, or a __setstate__/__init__ that raised)",
            "fix: define classes and functions at module level in an importable module, or use "
            "transport='cloudpickle' to carry them by value",
        ]
    return []


def serialization_error(exc: BaseException, obj: Any, transport: str, *, what: str, stage: str) -> SerializationError:
    """Build the SerializationError a Pool call raises; ``exc`` becomes its cause."""
    if isinstance(exc, SerializationError):
        return exc
    verb = "serialize" if stage == "dump" else "load"
    lines = [f"transport {transport!r} cannot {verb} the {what}: {type(exc).__name__}: {exc}"]
    report = None
    if obj is not None:
        try:
            more, report = _object_lines(obj, transport, what)
        except Exception:  # noqa: BLE001 - a diagnosis must never hide the original error
            more = _text_lines(exc, stage, what)
        lines += more
    else:
        lines += _text_lines(exc, stage, what)
    err = SerializationError("\n".join(lines), report=report)
    err.__cause__ = exc
    return err
