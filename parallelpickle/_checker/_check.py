"""``check`` and ``explain``: a verdict per transport x start method, with the culprit's path.

Data flow for one root (``fn``, ``args``, ``kwargs`` or ``obj``) and one transport::

    _trial.dump ──fails──▶ _walk.locate(dump fails) ─▶ _rules.classify ─▶ Problem(dump)
        │ ok
        ├─▶ _resolve.references ─▶ unresolved(start method) ─▶ locate ─▶ Problem(load)
        ├─▶ _trial.load (in this process, as a forked worker would) ─▶ locate ─▶ Problem(load)
        └─▶ lossy globals (dill locks, reopened files, loggers...) ─▶ Problem(lossy)
    [verify=True] _verify.load_in_children ─▶ the real load in a fresh worker per start method

The verdict for a transport and start method is the worst of the problems that
apply there ("ok" < "lossy" < "fails"). When no rule can decide, the checker
says "fails" with rule "unknown" rather than guessing "ok".

Repeated checks of one callable reuse an earlier result: a small LRU keyed by
the callable itself *and* the digest of its by-value (cloudpickle) bytes, so
a changed closure or default is a new key. It holds pure results only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _resolve, _rules, _trial, _walk
from ._report import Problem, Report, worst

__all__ = ["TRANSPORTS", "check", "check_roots", "explain"]

TRANSPORTS = ("pickle", "dill", "cloudpickle", "auto")
_ALL_METHODS = ("fork", "spawn", "forkserver")
_CACHE_SIZE = 128

Root = tuple[str, Any, str]  # (path, object, role)


class _ResultCache:
    """An LRU of pure results for callables (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()  # check() may run in several threads at once
        self._items: OrderedDict[tuple[Any, ...], tuple[Any, list[Problem], dict[str, str]]] = OrderedDict()

    def get(self, key: tuple[Any, ...], fn: Any) -> tuple[list[Problem], dict[str, str]] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] is not fn:
                return None
            self._items.move_to_end(key)
        return list(hit[1]), dict(hit[2])

    def put(self, key: tuple[Any, ...], fn: Any, value: tuple[list[Problem], dict[str, str]]) -> None:
        with self._lock:
            self._items[key] = (fn, list(value[0]), dict(value[1]))
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_CALLABLES = _ResultCache(_CACHE_SIZE)


# -- arguments -------------------------------------------------------------------
def _transports(transport: str | Sequence[str] | None) -> tuple[str, ...]:
    names = TRANSPORTS if transport is None else (transport,) if isinstance(transport, str) else tuple(transport)
    for name in names:
        if name not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(map(repr, TRANSPORTS))} or None; got {name!r}")
    return names


def _methods(start_method: str | Sequence[str] | None) -> tuple[str, ...]:
    available = multiprocessing.get_all_start_methods()
    if start_method is None:
        return tuple(m for m in _ALL_METHODS if m in available)
    names = (start_method,) if isinstance(start_method, str) else tuple(start_method)
    for name in names:
        if name not in available:
            raise ValueError(f"start_method must be one of {available} or None; got {name!r}")
    return names


def _roots(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Root]:
    if not args and not kwargs and not callable(obj):
        return [("obj", obj, "data")]
    roots: list[Root] = [("fn", obj, "callable")]
    if args:
        roots.append(("args", args, "data"))
    if kwargs:
        roots.append(("kwargs", kwargs, "data"))
    return roots


def _describe(roots: list[Root]) -> str:
    path, head, role = roots[0]
    if role == "callable":
        name = getattr(head, "__qualname__", None) or type(head).__qualname__
    else:
        name = f"{type(head).__module__}.{type(head).__qualname__}".removeprefix("builtins.")
    rest = "".join(f", {p} ({len(o)})" for p, o, _ in roots[1:])
    return f"{path}: {name}{rest}"


# -- public ------------------------------------------------------------------------
def check(
    obj: Any,
    *args: Any,
    transport: str | Sequence[str] | None = None,
    start_method: str | Sequence[str] | None = None,
    verify: bool = False,
    **kwargs: Any,
) -> Report:
    """Will ``obj`` (called with ``args``/``kwargs``) travel to a worker and back?

    ``transport``/``start_method`` of None check all of them. ``verify=True``
    also loads the real payloads in a fresh worker for each start method other
    than fork, which settles what static rules cannot.
    """
    return check_roots(_roots(obj, args, kwargs), _transports(transport), _methods(start_method), verify=verify)


def check_roots(
    roots: list[Root], transports: tuple[str, ...], methods: tuple[str, ...], *, verify: bool = False
) -> Report:
    """check() for explicit roots: (path, object, "callable" | "data")."""
    matrix: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    for t in transports:
        row = dict.fromkeys(methods, "ok")
        for root in roots:
            found, verdicts = _assess_cached(root, t, methods)
            problems += found
            row = {m: worst([row[m], verdicts[m]]) for m in methods}
        matrix[t] = row
    report = Report(_describe(roots), transports, methods, matrix, problems)
    if verify:
        from ._verify import verify_report

        verify_report(report, roots)
    _add_carriers(report)
    return report


def explain(exc: BaseException, obj: Any = None, *, transport: str | Sequence[str] | None = None) -> Report:
    """Turn a caught serialization error into a Report (a full check when ``obj`` is given)."""
    if obj is not None:
        report = check(obj, transport=transport)
        if report.problems:
            return report
    rule = _rules.classify(None, exc, "dump") if isinstance(exc, RecursionError) else _rules.classify_text(str(exc))
    cause = exc.__cause__ or exc.__context__
    if rule.name == "unknown" and cause is not None:  # a wrapper (SerializationError): ask its cause
        rule = _rules.classify_text(f"{type(cause).__name__}: {cause}")
    stage = (
        "load"
        if isinstance(exc, (AttributeError, ModuleNotFoundError, EOFError)) and "pickle" not in str(exc)
        else "dump"
    )
    transports = _transports(transport) if transport is not None else ("pickle",)
    methods = _methods(None)
    problems = [
        Problem(
            t,
            stage,
            "obj",
            _culprit_type(exc),
            f"{type(exc).__name__}: {exc}",
            rule.reason,
            rule.fix,
            rule.name,
            "fails",
            methods,
        )
        for t in transports
    ]
    matrix = {t: dict.fromkeys(methods, "fails") for t in transports}
    return Report(f"{type(exc).__name__}: {_first_line(str(exc))}", transports, methods, matrix, problems)


def _culprit_type(exc: BaseException) -> str:
    match = _rules.TYPE_IN_TEXT.search(str(exc))
    return match.group(1) if match else "?"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _add_carriers(report: Report) -> None:
    """Each failing problem's fix names the transports that do carry the object."""
    carriers = report.carriers()
    for i, p in enumerate(report.problems):
        others = [t for t in carriers if t != p.transport]
        if p.verdict == "fails" and others:
            report.problems[i] = dataclasses.replace(p, fix=f"{p.fix} (ok here: {', '.join(others)})")


# -- one root, one transport ---------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """One root checked with one transport over the chosen start methods."""

    path: str
    obj: Any
    role: str
    transport: str
    methods: tuple[str, ...]

    def dumps(self, x: Any) -> _trial.Payload | None:
        try:
            return _trial.dump(x, self.transport, self.role)
        except _trial.TrialError:
            return None

    def dump_error(self, x: Any) -> BaseException | None:
        try:
            _trial.dump(x, self.transport, self.role)
        except _trial.TrialError as err:
            return err.first
        return None

    def names(self, ref: _resolve.Ref) -> Callable[[Any], bool]:
        """A probe: does ``x``'s payload refer to ``ref``?"""

        def probe(x: Any) -> bool:
            p = self.dumps(x)
            return p is not None and ref in _resolve.references(p.data)

        return probe

    def locate(self, probe: Callable[[Any], bool]) -> tuple[str, Any]:
        """The path to the culprit: C pickle stores functions and classes by name, as a whole."""
        opaque = _by_reference if self.transport == "pickle" else None
        return _walk.locate(self.obj, self.path, probe, opaque)

    def load_fails(self, x: Any) -> bool:
        p = self.dumps(x)
        if p is None:
            return False
        try:
            _trial.load(p)
        except Exception:  # noqa: BLE001 - any failure to rebuild counts
            return True
        return False

    def problem(self, where: tuple[str, Any], stage: str, error: str, rule: _rules.Rule, **kw: Any) -> Problem:
        path, culprit = where
        kind = culprit if isinstance(culprit, type) else type(culprit)
        type_name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        if isinstance(culprit, type):
            type_name = f"class {type_name}"
        elif isinstance(culprit, (types.FunctionType, types.BuiltinFunctionType)):
            type_name = f"function {culprit.__module__}.{culprit.__qualname__}"
        kw.setdefault("start_methods", self.methods)
        return Problem(self.transport, stage, path, type_name, error, rule.reason, rule.fix, rule.name, **kw)


def _by_reference(x: Any) -> bool:
    return isinstance(x, (types.FunctionType, type))


def _assess_cached(root: Root, transport: str, methods: tuple[str, ...]) -> tuple[list[Problem], dict[str, str]]:
    path, obj, role = root
    job = _Job(path, obj, role, transport, methods)
    if role != "callable":
        return _assess(job)
    try:
        digest = hashlib.blake2b(_trial.dump_with("cloudpickle", obj).data, digest_size=16).digest()
    except Exception:  # noqa: BLE001 - no stable key: no cache
        return _assess(job)
    key = (id(obj), digest, transport, methods, path)
    hit = _CALLABLES.get(key, obj)
    if hit is not None:
        return hit
    result = _assess(job)
    _CALLABLES.put(key, obj, result)
    return result


def _assess(job: _Job) -> tuple[list[Problem], dict[str, str]]:
    try:
        payload = _trial.dump(job.obj, job.transport, job.role)
    except _trial.TrialError as err:
        return [_dump_problem(job, err)], dict.fromkeys(job.methods, "fails")
    # Loading here is what a forked worker does; it also lists every global the
    # payload imports (at C speed). Only if it fails are the opcodes read instead.
    refs: list[_resolve.Ref] = []
    load_problem = None
    try:
        _trial.load(payload, lambda module, name: refs.append(_resolve.Ref(module, name)))
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild is the finding
        where = job.locate(job.load_fails)
        rule = _rules.classify(where[1], exc, "load")
        load_problem = job.problem(where, "load", f"{type(exc).__name__}: {exc}", rule)
        refs = _resolve.references(payload.data)
    problems = _unresolved_problems(job, refs)
    main_globals = _main_globals_problem(job, payload, refs)
    if main_globals is not None:
        problems.append(main_globals)
    if load_problem is not None:
        problems.append(load_problem)
    problems += _lossy_problems(job, payload, refs)
    verdicts = {m: worst([p.verdict for p in problems if m in p.start_methods]) for m in job.methods}
    return problems, verdicts


def _dump_problem(job: _Job, err: _trial.TrialError) -> Problem:
    first = err.first
    if any(isinstance(e, RecursionError) for e in err.errors):
        # Walking a structure too deep to pickle would retest it level by level.
        where: tuple[str, Any] = (job.path, job.obj)
        rule = _rules.by_name("recursion")
    else:
        where = job.locate(lambda x: job.dumps(x) is None)
        first = job.dump_error(where[1]) or first
        rule = _rules.classify(where[1], first, "dump")
    return job.problem(where, "dump", f"{type(first).__name__}: {first}", rule)


def _unresolved_problems(job: _Job, refs: list[_resolve.Ref]) -> list[Problem]:
    by_miss: dict[_resolve.Miss, list[str]] = {}
    for m in job.methods:
        for miss in _resolve.unresolved(refs, m):
            by_miss.setdefault(miss, []).append(m)
    problems = []
    for miss, methods in by_miss.items():
        ref = miss.ref
        where = job.locate(job.names(ref))
        error = f"{miss.detail} (the payload refers to {ref.module}.{ref.name})" if ref.name else miss.detail
        problems.append(job.problem(where, "load", error, _rules.by_name(miss.rule), start_methods=tuple(methods)))
    return problems


_MAIN_DICT = _resolve.Ref("__main__", "__dict__")


def _main_globals_problem(job: _Job, payload: _trial.Payload, refs: list[_resolve.Ref]) -> Problem | None:
    """dill binds a __main__ function to the worker's __main__: are its globals there?"""
    spawned = tuple(m for m in job.methods if m != "fork")
    if not spawned or payload.serializer != "dill" or _MAIN_DICT not in refs:
        return None
    where = job.locate(job.names(_MAIN_DICT))
    fn = where[1]
    if not isinstance(fn, types.FunctionType):
        return None
    defined = _resolve.main_names() or frozenset()
    used = {n for n in _walk.global_names(fn.__code__) if n in fn.__globals__}
    missing = sorted(used - defined)
    if not missing:
        return None
    error = f"the worker's __main__ will not define {', '.join(missing)}"
    return job.problem(where, "load", error, _rules.by_name("main-globals"), start_methods=spawned)


def _lossy_problems(job: _Job, payload: _trial.Payload, refs: list[_resolve.Ref]) -> list[Problem]:
    problems: list[Problem] = []
    for ref in dict.fromkeys(refs):
        name = _rules.lossy_rule(payload.serializer, ref.module, ref.name)
        if name is None:
            continue
        where = job.locate(job.names(ref))
        for rule, verdict, methods in _lossy_outcomes(name, where[1], job.methods):
            problems.append(
                job.problem(where, "load", "", _rules.by_name(rule), verdict=verdict, start_methods=methods)
            )
    return problems


def _lossy_outcomes(name: str, culprit: Any, methods: tuple[str, ...]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(rule, verdict, start methods) for a lossy global, confirmed on the culprit it belongs to."""
    spawned = tuple(m for m in methods if m != "fork")
    forked = tuple(m for m in methods if m == "fork")
    if name == "logger-handlers":
        # Loggers travel by name; a forked worker inherits the parent's configuration.
        return [(name, "lossy", spawned)] if spawned and _configured_logger(culprit) else []
    if name == "memoryview-copied":
        return [(name, "lossy", methods)] if isinstance(culprit, memoryview) else []
    if name == "file-reopened" and isinstance(getattr(culprit, "name", None), int):
        out = [("file-descriptor", "fails", spawned)] if spawned else []
        return out + ([(name, "lossy", forked)] if forked else [])
    return [(name, "lossy", methods)]


def _configured_logger(obj: Any) -> bool:
    if not isinstance(obj, logging.Logger):
        return False
    return obj.hasHandlers() or obj.level != logging.NOTSET
