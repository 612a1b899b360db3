"""Will a fresh worker find every module and name a payload refers to?

A payload names globals (``GLOBAL``/``STACK_GLOBAL``: module + qualified name)
and, through dill's ``_import_module`` and cloudpickle's ``subimport``, whole
modules. A forked worker inherits the parent's memory, so whatever resolves
here resolves there. A spawned or forkserver worker starts empty: it imports
each module by name with the parent's ``sys.path``, and re-runs the main
script as ``__mp_main__`` (not at all for a REPL, ``python -c`` or a notebook)::

    payload bytes ─▶ references() ─▶ [Ref(module, name)]
                 ─▶ unresolved(refs, start_method) ─▶ [Miss(ref, rule, detail)]

Main-script rules read the script's source (never run it): a name resolves
only if the script binds it at top level outside ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import io
import os
import pickletools
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["Miss", "Ref", "main_names", "module_importable", "references", "unresolved"]

# Callables whose first string argument is a module the loader imports.
_IMPORTERS = {("dill._dill", "_import_module"), ("cloudpickle.cloudpickle", "subimport")}
_MAIN = ("__main__", "__mp_main__")


@dataclass(frozen=True)
class Ref:
    """A global (``name`` set) or a whole module (``name`` empty) a payload loads."""

    module: str
    name: str = ""


@dataclass(frozen=True)
class Miss:
    ref: Ref
    rule: str
    detail: str


def references(data: bytes) -> list[Ref]:
    """Every global and imported module ``data`` names, read from its opcodes (nothing runs).

    A symbolic record of what each opcode pushed (the string, or None for
    anything else) and of the memo names the two operands of STACK_GLOBAL and
    the module name handed to an importer.
    """
    recent: list[str | None] = []
    memo: dict[int, str | None] = {}
    refs: list[Ref] = []
    importing = False
    for op, raw, _pos in pickletools.genops(io.BytesIO(data)):
        arg: Any = raw
        name = op.name
        if name in _NO_PUSH:
            continue
        if name == "MEMOIZE" or name in _PUTS:
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = recent[-1] if recent else None
            continue
        value = memo.get(int(arg)) if name in _GETS else arg if isinstance(arg, str) and name in _STRINGS else None
        if name in ("GLOBAL", "STACK_GLOBAL"):
            ref = _global(name, arg, recent)
            if ref is not None:
                refs.append(ref)
            importing = ref is not None and (ref.module, ref.name) in _IMPORTERS
        elif importing and value is not None:
            refs.append(Ref(value))
            importing = False
        elif name == "REDUCE":
            importing = False
        recent.append(value)
        if len(recent) > 8:
            del recent[:-4]
    return refs


_NO_PUSH = frozenset({"PROTO", "FRAME", "STOP", "MARK"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_STRINGS = frozenset(
    {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)


def _global(opname: str, arg: Any, recent: list[str | None]) -> Ref | None:
    if opname == "GLOBAL":
        module, _, qualname = str(arg).partition(" ")
        return Ref(module, qualname)
    if len(recent) >= 2 and recent[-2] is not None and recent[-1] is not None:
        return Ref(recent[-2], recent[-1])
    return None


def unresolved(refs: list[Ref], start_method: str) -> list[Miss]:
    """The references a worker started by ``start_method`` could not resolve."""
    if start_method == "fork":
        return []  # a forked worker inherits every module and __main__ as they are now
    misses: list[Miss] = []
    for ref in dict.fromkeys(refs):
        miss = _resolve(ref)
        if miss is not None:
            misses.append(miss)
    return misses


def _resolve(ref: Ref) -> Miss | None:
    if ref.module in _MAIN:
        if not ref.name or (ref.name.startswith("__") and ref.name.endswith("__")):
            return None  # every module has __dict__, __name__...: dill refers to __main__.__dict__
        names = main_names()
        if names is None:
            return Miss(ref, "main-not-importable", "the main module has no file a new process can import")
        if ref.name.split(".")[0] not in names:
            return Miss(ref, "main-guarded", f"{ref.name} is not defined at the top level of the main script")
        return None
    if not module_importable(ref.module):
        return Miss(ref, "module-not-importable", f"module {ref.module!r} cannot be imported by name")
    dunder = ref.name.startswith("__") and ref.name.endswith("__")  # __dict__ etc.: every module has them
    if ref.name and not dunder and not _defined_on_import(ref.module, ref.name.split(".")[0]):
        detail = f"importing {ref.module!r} afresh does not define {ref.name!r} (it is set at runtime)"
        return Miss(ref, "name-set-at-runtime", detail)
    return None


_LIBRARY_ROOTS = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})


def _defined_on_import(module_name: str, name: str) -> bool:
    """Does a fresh import of the user's module bind ``name``? Libraries are trusted.

    Only the user's own ``.py`` files are read; a module that binds names in
    ways a reader cannot follow (``import *``, ``globals()``, a module
    ``__getattr__``) is given the benefit of the doubt.
    """
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return True
    real = os.path.realpath(path)
    if real.startswith(_LIBRARY_ROOTS) or "site-packages" in real:
        return True
    try:
        stat = os.stat(real)
    except OSError:
        return True
    names = _module_names(real, stat.st_mtime_ns, stat.st_size)
    return names is None or name in names


@functools.lru_cache(maxsize=64)
def _module_names(path: str, mtime_ns: int, size: int) -> frozenset[str] | None:
    """Names a module file binds on import, or None when they cannot be read off its source.

    A pure function of the file's content (keyed by path, mtime and size).
    """
    try:
        with open(path, "rb") as f:
            source = f.read()
        tree = ast.parse(source, path)
    except (OSError, SyntaxError, ValueError):
        return None
    if b"globals()" in source or b"import *" in source or b"setattr(sys.modules" in source:
        return None
    names = _bound(tree.body)
    return None if "__getattr__" in names else frozenset(names)


def module_importable(name: str) -> bool:
    """Can a fresh interpreter with this ``sys.path`` import ``name``? (Nothing is imported.)"""
    root = name.partition(".")[0]
    if root in sys.builtin_module_names:
        return True
    if not _findable(root, None):
        return False
    # Submodules: found on the package path, or set up by importing the parent
    # (``os.path`` is ``posixpath``, registered by ``os`` itself).
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = sys.modules.get(".".join(parts[:i]))
        full = ".".join(parts[: i + 1])
        if parent is None:
            return True  # not imported here; the root is importable, trust the package
        path = getattr(parent, "__path__", None)
        if path is not None and _findable(full, list(path)):
            continue
        if getattr(parent, parts[i], None) is not sys.modules.get(full):
            return False
    return True


def _findable(name: str, path: list[str] | None) -> bool:
    finders = list(sys.meta_path) if path is None else [importlib.machinery.PathFinder, *sys.meta_path]
    for finder in finders:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, path)
        except Exception:  # noqa: BLE001 - a broken finder must not break the check
            continue
        if spec is not None:
            return True
    return False


def main_names() -> frozenset[str] | None:
    """Top-level names a spawned worker's re-run of the main script defines.

    None when the worker does not re-run it: no file (REPL, ``-c``, notebook),
    ``python -m pkg`` (``pkg.__main__`` is skipped by multiprocessing), IPython.
    Mirrors ``multiprocessing.spawn.get_preparation_data`` and ``prepare``.
    """
    main = sys.modules.get("__main__")
    if main is None:
        return None
    spec = getattr(main, "__spec__", None)
    spec_name = getattr(spec, "name", None)
    if spec_name is not None:
        if spec_name == "__main__" or spec_name.endswith(".__main__"):
            return None
        path = getattr(spec, "origin", None)
    else:
        path = getattr(main, "__file__", None)
        if path is not None and os.path.splitext(os.path.basename(path))[0] == "ipython":
            return None
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    return frozenset(_bound(tree.body))


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = [p for p in parts if isinstance(p, ast.Name) and p.id == "__name__"]
    consts = [p for p in parts if isinstance(p, ast.Constant) and p.value == "__main__"]
    return bool(names and consts)


def _bound(body: list[ast.stmt]) -> set[str]:
    """Names that running ``body`` at module level may bind (guarded blocks excluded)."""
    names: set[str] = set()
    for node in body:
        if _is_main_guard(node):
            names |= _bound(getattr(node, "orelse", []))
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        else:
            # Compound statements (if/for/while/with/try/match) run at import: look inside.
            targets = [node.target] if isinstance(node, (ast.For, ast.AsyncFor)) else []
            targets += [i.optional_vars for i in getattr(node, "items", []) if i.optional_vars is not None]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            for attr in ("body", "orelse", "finalbody"):
                names |= _bound(getattr(node, attr, []))
            for part in [*getattr(node, "handlers", []), *getattr(node, "cases", [])]:
                names |= _bound(part.body)
                if isinstance(part, ast.ExceptHandler) and part.name:
                    names.add(part.name)
    return names
