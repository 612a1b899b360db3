"""``parallelpickle check TARGET``: will this object travel to a worker?

::

    TARGET (pkg.mod:attr | path/file.py:attr) ─▶ _resolve_target ─▶ check() ─▶ table or JSON

A file path is imported as a module named after the file, with its folder put
first on ``sys.path`` (as ``python file.py`` would), so what it defines can be
found by name in a spawned worker too. Exit codes: 0 when no chosen transport
fails (a "lossy" verdict is printed but does not fail), 1 when one fails, 2 on
usage errors (bad target, module that cannot be imported, missing attribute).
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import sys
from typing import Any

from ._checker import check
from ._checker._check import TRANSPORTS


class TargetError(Exception):
    """The TARGET argument does not name an object that can be imported."""


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="say whether an object will pickle with each transport, and why not",
        description="Check whether an object (a function, class or any module-level value) travels to a "
        "worker process and back with each transport and start method; for each problem print the path "
        "to the culprit, the reason and a fix.",
    )
    p.add_argument("target", metavar="TARGET", help="pkg.module:attr or path/to/file.py:attr (attr may be dotted)")
    p.add_argument("--transport", choices=TRANSPORTS, action="append", help="check only this transport (repeatable)")
    p.add_argument(
        "--start-method",
        choices=[m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()],
        action="append",
        help="check only this start method (repeatable); default: all available",
    )
    p.add_argument("--verify", action="store_true", help="also load the payloads in a fresh worker per start method")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        obj = resolve_target(args.target)
    except TargetError as exc:
        print(f"parallelpickle check: {exc}", file=sys.stderr)
        return 2
    report = check(obj, transport=args.transport, start_method=args.start_method, verify=args.verify)
    print(json.dumps(report.to_dict(), indent=2) if args.json else str(report))
    return 1 if "fails" in report.verdicts.values() else 0


def resolve_target(target: str) -> Any:
    """Import ``pkg.mod:attr`` or ``path/file.py:attr`` and return the attribute."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise TargetError(f"TARGET must look like pkg.module:attr or path/file.py:attr, got {target!r}")
    if where.endswith(".py") or os.sep in where:
        module = _import_file(where)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise TargetError(f"cannot import module {where!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{where!r} has no attribute {attr!r}") from None
    return obj


def _import_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise TargetError(f"no such file: {path!r}")
    folder, name = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(name)[0]
    if not stem.isidentifier():
        raise TargetError(f"{name!r} cannot be imported as a module (its name is not an identifier)")
    sys.path.insert(0, folder)  # this command's own process only: the module must import by name
    try:
        return importlib.import_module(stem)
    except Exception as exc:  # noqa: BLE001 - anything the file raises is a usage problem here
        raise TargetError(f"importing {path!r} failed: {type(exc).__name__}: {exc}") from None
