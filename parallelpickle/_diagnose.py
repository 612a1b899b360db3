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
    """The checker's report on the object a pool could not dump (a dump does not depend on
    the start method, so one is enough: fork where there is one)."""
    path, role = _root(what)
    available = multiprocessing.get_all_start_methods()
    method = "fork" if "fork" in available else available[0]
    return check_roots([(path, obj, role)], TRANSPORTS, (method,))


def carriers(obj: Any, what: str = "argument") -> list[str]:
    """The built-in transports that can carry ``obj`` (to a forked worker)."""
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
    others = [t for t in report.carriers() if t != transport]
    if others:
        lines.append(f"fix: use transport={others[0]!r} (these can carry it: {', '.join(others)})")
    else:
        lines.append("fix: no built-in transport can serialize it; pass what it is built from instead")
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
