"""The causes the checker knows: for each, how to recognise it, why it happens, what to do.

A rule is recognised from the culprit object the walk found (its type, by
name, so optional modules are never imported), from the exception a trial
raised, or, for :func:`explain` without an object, from the exception text
alone. Rules are tried in order; the first that matches decides, and its name
travels in :attr:`Problem.rule` so every verdict can be traced back.
"""

from __future__ import annotations

import re
import traceback
import types
import weakref
from dataclasses import dataclass
from typing import Any

__all__ = ["RULES", "TYPE_IN_TEXT", "Rule", "by_name", "classify", "classify_text", "lossy_rule"]


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str
    fix: str
    types: tuple[str, ...] = ()  # type names, "module.qualname" or bare "qualname"
    text: str | None = None  # a regex over the exception text


_FUNC_FIX = "define it with `def` at module level in an importable module, or use transport='cloudpickle' (or 'dill'/'auto'), which carry functions by value"
_SYNC_FIX = "create it inside the worker (an initializer, or a module-level global) instead of passing it; to share one between processes use a multiprocessing.Manager() object"

RULES: tuple[Rule, ...] = (
    Rule(
        "recursion",
        "the object is nested deeper than the pickler's recursion limit (a long linked chain or a cycle through __reduce__)",
        "flatten it (a list instead of a linked chain), or raise sys.setrecursionlimit in the parent and the workers",
    ),
    Rule(
        "lambda",
        "pickle stores a function by module and name, and a lambda has no name to import in the worker",
        _FUNC_FIX,
    ),
    Rule(
        "local-function",
        "the function is defined inside another function (its qualified name has <locals>); pickle can only store functions importable by module and name",
        _FUNC_FIX,
    ),
    Rule(
        "local-class",
        "the class is defined inside a function (its qualified name has <locals>), so no worker can import it by name",
        "define the class at module level, or use transport='cloudpickle', which carries classes by value",
    ),
    Rule(
        "dynamic-class",
        "the class was made at runtime (type(), namedtuple, a factory) and its name does not resolve to it in its module",
        "give it the name it is assigned to at module level (namedtuple('Point', ...) assigned to Point), or use transport='cloudpickle'",
    ),
    Rule(
        "by-name-missing",
        "pickle stores functions and classes by module and name, and that name does not lead back to this object (replaced by a decorator, renamed, or created at runtime)",
        "make the object reachable under its own module and __qualname__ (functools.wraps on decorators), or use transport='cloudpickle'",
    ),
    Rule(
        "main-not-importable",
        "the object is stored by reference to __main__, and a worker started by spawn or forkserver cannot import this __main__ (an interactive session, `python -c` or a notebook)",
        "move it into a module file and import it, run a script file instead, use start_method='fork', or use transport='cloudpickle' (or 'auto'), which carry __main__ objects by value",
    ),
    Rule(
        "main-guarded",
        "the object is stored by reference to __main__, but a spawned worker re-runs the main script without its `if __name__ == '__main__':` block, where this name is defined",
        "define it at the top level of the script (above the guard), or use transport='cloudpickle' (or 'auto')",
    ),
    Rule(
        "main-globals",
        "dill carries this __main__ function by value but binds it to the worker's own __main__, which under spawn/forkserver does not define the globals it uses: calling it raises NameError",
        "define those globals at the top level of a script file (above the `if __name__ == '__main__':` guard), pass them as arguments, or use transport='cloudpickle', which carries the globals a function uses",
    ),
    Rule(
        "name-set-at-runtime",
        "the object is stored by module and name, but that name is bound only at runtime (by a function call, a setattr, a factory), so a freshly started worker that imports the module does not find it",
        "bind the name at the top level of the module (Point = make_point_class() at import time), use start_method='fork', or use transport='cloudpickle'",
    ),
    Rule(
        "module-not-importable",
        "the object is stored by reference to a module that a fresh process cannot import by name (loaded from a file path with spec_from_file_location, or created at runtime)",
        "put the module on sys.path / install the package so `import` finds it, use start_method='fork', or carry the functions by value with cloudpickle.register_pickle_by_value",
    ),
    Rule(
        "thread-sync",
        "threading locks, conditions, events, semaphores, queues and threads belong to one process; a copy in another process would not be shared",
        _SYNC_FIX,
        types=(
            "_thread.lock",
            "_thread.RLock",
            "threading.Condition",
            "threading.Event",
            "threading.Semaphore",
            "threading.BoundedSemaphore",
            "threading.Barrier",
            "threading.Thread",
            "queue.Queue",
            "_queue.SimpleQueue",
            "_thread._local",
            "concurrent.futures._base.Executor",
            "concurrent.futures._base.Future",
        ),
    ),
    Rule(
        "mp-sync",
        "multiprocessing locks, semaphores and queues can only be handed to a process when it starts (through inheritance), not sent with a task",
        "pass it through Pool(initializer=..., initargs=(obj,)) so each worker receives it at start-up, or use a multiprocessing.Manager() proxy",
        types=(
            "multiprocessing.synchronize.SemLock",
            "multiprocessing.queues.Queue",
            "multiprocessing.queues.SimpleQueue",
            "multiprocess.synchronize.SemLock",
            "multiprocess.queues.Queue",
            "multiprocess.queues.SimpleQueue",
            "multiprocessing.pool.Pool",
            "multiprocess.pool.Pool",
            "multiprocessing.context.Process",
        ),
        text=r"shared between processes through inheritance",
    ),
    Rule(
        "generator",
        "a generator or coroutine is a paused running frame; no serializer can copy execution state",
        "pass the data it would produce (list(gen)) or what it is built from, and build the generator inside the worker",
        types=(
            "generator",
            "coroutine",
            "async_generator",
            "builtins.generator",
            "builtins.coroutine",
            "builtins.async_generator",
        ),
    ),
    Rule(
        "frame-traceback",
        "frames and tracebacks are live interpreter state and cannot be copied to another process",
        "send traceback.format_exc() (a string) or the exception without __traceback__",
        types=("frame", "traceback", "builtins.frame", "builtins.traceback"),
    ),
    Rule(
        "open-file",
        "an open file handle belongs to this process; its descriptor means nothing elsewhere",
        "send the file's path (and open it in the worker), or its contents",
        types=(
            "_io.TextIOWrapper",
            "_io.BufferedReader",
            "_io.BufferedWriter",
            "_io.BufferedRandom",
            "_io.FileIO",
            "tempfile._TemporaryFileWrapper",
            "tempfile.SpooledTemporaryFile",
        ),
    ),
    Rule(
        "socket",
        "a socket is an operating-system handle owned by this process",
        "send the address and connect in the worker (an initializer can open one connection per worker)",
        types=("socket.socket", "_socket.socket", "ssl.SSLSocket"),
    ),
    Rule(
        "sqlite",
        "a sqlite3 connection or cursor wraps a C handle bound to this process and thread",
        "send the database path and connect in the worker (an initializer can open one connection per worker)",
        types=("sqlite3.Connection", "sqlite3.Cursor", "_sqlite3.Connection", "_sqlite3.Cursor"),
    ),
    Rule(
        "ctypes-pointer",
        "ctypes pointers are memory addresses in this process",
        "send the values they point to, or share memory with multiprocessing.shared_memory",
        types=("_ctypes._Pointer", "_ctypes.CFuncPtr", "ctypes._Pointer", "ctypes.CFuncPtr"),
        text=r"ctypes objects containing pointers",
    ),
    Rule(
        "memoryview",
        "a memoryview is a window onto another object's memory, which pickle does not follow",
        "send bytes(view) or the object it views (a numpy array or bytearray travels fine)",
        types=("memoryview", "builtins.memoryview"),
    ),
    Rule(
        "module",
        "a module object cannot be pickled by stdlib pickle",
        "import the module inside the function (or at the top of the worker's module) instead of passing it; cloudpickle and dill carry modules by name",
        types=("module", "builtins.module"),
    ),
    Rule(
        "weakref",
        "a weak reference does not own its referent, so a copy in another process has nothing to point to",
        "send the referent itself (a strong reference), or rebuild the weak reference in the worker",
        types=(
            "weakref.ReferenceType",
            "weakref.ProxyType",
            "weakref.CallableProxyType",
            "weakref",
            "weakproxy",
            "weakcallableproxy",
        ),
    ),
    Rule(
        "hash",
        "hashlib and hmac objects keep their state in C and do not support pickling",
        "send the bytes hashed so far (or the digest) and continue hashing in one place",
        types=(
            "_hashlib.HASH",
            "_hashlib.HASHXOF",
            "_hashlib.HMAC",
            "_blake2.blake2b",
            "_blake2.blake2s",
            "_md5.md5",
            "_sha1.sha1",
            "_sha2.SHA256Type",
            "_sha2.SHA512Type",
            "_sha256.sha256",
            "_sha512.sha512",
            "_sha3.sha3_256",
            "hmac.HMAC",
            "HASH",
        ),
    ),
    Rule(
        "contextvars",
        "context variables, contexts and tokens are tied to this interpreter's execution context",
        "send the value (var.get()) and set it inside the worker",
        types=(
            "_contextvars.ContextVar",
            "_contextvars.Context",
            "_contextvars.Token",
            "ContextVar",
            "Context",
            "Token",
        ),
    ),
    Rule(
        "raising-reduce",
        "the object's own __reduce__/__reduce_ex__/__getstate__ raised",
        "fix or remove that method so it returns what rebuilds the object",
    ),
    Rule(
        "raising-setstate",
        "the object was written, but its __setstate__ raised while loading",
        "make __setstate__ accept what __getstate__ returns",
    ),
    Rule(
        "exception-args",
        "an exception is rebuilt by calling its class with its .args, and this class's __init__ does not accept them",
        "pass every __init__ argument to super().__init__(...), or define __reduce__ returning (cls, (arg1, arg2))",
        text=r"__init__\(\) (missing|takes)",
    ),
    Rule(
        "load-error",
        "the object was written, but rebuilding it raised while loading (a constructor, __setstate__ or __reduce__ callable failed)",
        "make the class rebuildable from what its __reduce__ returns; try check(..., verify=True) to reproduce it in a fresh interpreter",
    ),
    Rule(
        "fresh-load-failed",
        "loading in a freshly started worker failed although it loads here: rebuilding it depends on state that only this process has (a registry filled at runtime, a setting changed after start-up)",
        "make the object rebuildable from what it pickles (carry the state in __reduce__/__getstate__), create that state in a Pool initializer, or use start_method='fork'",
    ),
    Rule(
        "result",
        "the worker's result could not be serialized to send back to the parent",
        "return plain data (convert handles, generators and locks into values inside the function)",
    ),
    Rule(
        "lock-copied",
        "dill writes a lock as its locked/unlocked state: the worker gets a new lock that is not shared with the parent",
        "create the lock in the worker, or share a multiprocessing.Manager().Lock()",
    ),
    Rule(
        "file-reopened",
        "dill reopens the file by name in the worker: it is a different handle (position and buffered writes are not shared)",
        "send the path and open it in the worker",
    ),
    Rule(
        "file-snapshot",
        "cloudpickle copies the contents of a file opened for reading: the worker gets a snapshot in memory, not the file",
        "send the path and open it in the worker",
    ),
    Rule(
        "memoryview-copied",
        "cloudpickle sends a memoryview as a bytes copy: the worker gets bytes, not a view onto the original buffer",
        "send the object the view belongs to (a numpy array or bytearray), or bytes(view) explicitly",
    ),
    Rule(
        "file-descriptor",
        "dill reopens a file by its name, and this file has only a descriptor number (an anonymous temporary file): a new process has no such descriptor",
        "use a named file (tempfile.NamedTemporaryFile) and send its path, or use start_method='fork'",
    ),
    Rule(
        "weakref-dead",
        "dill writes a weak reference without its referent: in the worker it points to nothing",
        "send the referent itself",
    ),
    Rule(
        "logger-handlers",
        "a logger travels by name: a spawned worker gets a logger with its name but none of the handlers or level configured in the parent",
        "configure logging in the worker (Pool(initializer=setup_logging)), or use start_method='fork'",
    ),
    Rule(
        "unpicklable-type",
        "objects of this type define no way to be rebuilt in another process (no __reduce__ that pickle accepts)",
        "send the plain data it is built from and rebuild it inside the worker",
    ),
    Rule(
        "unknown",
        "no rule recognises this failure; the serializer's own error is shown above",
        "try another transport, or check(..., verify=True) for the real round trip",
    ),
)

_BY_NAME = {r.name: r for r in RULES}
_TEXT_ORDER = [r for r in RULES if r.text]
_TYPE_INDEX = {t: r for r in RULES for t in r.types}
_REDUCERS = frozenset({"__reduce__", "__reduce_ex__", "__getstate__", "reducer_override"})
_SERIALIZER_FILES = ("pickle.py", "copyreg.py", "dill", "cloudpickle", "multiprocessing", "multiprocess")


def by_name(name: str) -> Rule:
    return _BY_NAME[name]


def _type_names(obj: Any) -> list[str]:
    """Qualified names of the object's classes; bare names (a user's own ``Context``) never match."""
    return [f"{cls.__module__}.{cls.__qualname__}" for cls in type(obj).__mro__]


def _by_type(obj: Any) -> Rule | None:
    if isinstance(obj, (weakref.ref, weakref.ProxyType, weakref.CallableProxyType)):
        return _BY_NAME["weakref"]
    if isinstance(obj, types.ModuleType):
        return _BY_NAME["module"]
    for name in _type_names(obj):
        rule = _TYPE_INDEX.get(name)
        if rule is not None:
            return rule
    mod = getattr(type(obj), "__module__", "")
    if mod in ("_hashlib", "_blake2", "_md5", "_sha1", "_sha2", "_sha256", "_sha512", "_sha3"):
        return _BY_NAME["hash"]
    return None


def _by_name(obj: Any) -> Rule | None:
    """Functions and classes that pickle would have to store by a name that fails."""
    if isinstance(obj, types.FunctionType):
        if obj.__name__ == "<lambda>":
            return _BY_NAME["lambda"]
        if "<locals>" in obj.__qualname__:
            return _BY_NAME["local-function"]
        return _BY_NAME["by-name-missing"]
    cls = obj if isinstance(obj, type) else type(obj)
    if "<locals>" in cls.__qualname__:
        return _BY_NAME["local-class"]
    return _BY_NAME["dynamic-class"]


def _raised_in(exc: BaseException, names: frozenset[str]) -> bool:
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.name in names and not any(s in frame.filename for s in _SERIALIZER_FILES):
            return True
    return False


def classify(culprit: Any, exc: BaseException | None, stage: str) -> Rule:
    """The rule for a failure at ``stage`` ("dump"/"load") whose culprit the walk found."""
    if isinstance(exc, RecursionError):
        return _BY_NAME["recursion"]
    if stage == "load":  # it was written: what failed is rebuilding it, whatever its type
        return _classify_load(culprit, exc)
    rule = _by_type(culprit)
    if rule is not None:
        return rule
    if exc is not None and _raised_in(exc, _REDUCERS):
        return _BY_NAME["raising-reduce"]
    text = str(exc) if exc is not None else ""
    if re.search(r"[Cc]an't pickle|attribute lookup|not the same object|[Cc]an't get", text) or isinstance(
        exc, AttributeError
    ):
        rule = _by_name(culprit)
        if rule is not None:
            return rule
    return classify_text(text) if exc is not None else _BY_NAME["unknown"]


def _classify_load(culprit: Any, exc: BaseException | None) -> Rule:
    if exc is not None and _raised_in(exc, frozenset({"__setstate__"})):
        return _BY_NAME["raising-setstate"]
    if isinstance(culprit, BaseException) and isinstance(exc, TypeError):
        return _BY_NAME["exception-args"]
    if exc is not None:
        rule = classify_text(str(exc))
        if rule.name != "unknown":
            return rule
    return _BY_NAME["load-error"]


TYPE_IN_TEXT = re.compile(r"(?:cannot|can't|Can't) pickle '?([\w.]+)'?(?: object)?")


def classify_text(text: str) -> Rule:
    """The rule an exception's message points to, when no object is at hand."""
    if "recursion" in text.lower():
        return _BY_NAME["recursion"]
    if "<lambda>" in text:
        return _BY_NAME["lambda"]
    if "local object" in text or "<locals>" in text:
        return _BY_NAME["local-function"]
    if re.search(r"on <module '__(mp_)?main__'", text) or "__main__" in text:
        return _BY_NAME["main-not-importable"]
    if re.search(r"No module named", text):
        return _BY_NAME["module-not-importable"]
    for rule in _TEXT_ORDER:
        if rule.text is not None and re.search(rule.text, text):
            return rule
    match = TYPE_IN_TEXT.search(text)
    if match:
        name = match.group(1)
        for candidate in (name, name.rsplit(".", 1)[-1]):
            found = _TYPE_INDEX.get(candidate)
            if found is not None:
                return found
        if name in ("weakref.ReferenceType", "weakref"):
            return _BY_NAME["weakref"]
        if "object" in match.group(0):
            return _BY_NAME["unpicklable-type"]
    return _BY_NAME["unknown"]


def lossy_rule(serializer: str, module: str, name: str) -> str | None:
    """A global whose presence in a payload means the round trip changes meaning."""
    return _LOSSY.get((serializer, module, name)) or _LOSSY.get(("*", module, name))


_LOSSY: dict[tuple[str, str, str], str] = {
    ("dill", "dill._dill", "_create_lock"): "lock-copied",
    ("dill", "dill._dill", "_create_rlock"): "lock-copied",
    ("dill", "dill._dill", "_create_filehandle"): "file-reopened",
    ("dill", "dill._dill", "_create_weakref"): "weakref-dead",
    ("dill", "dill._dill", "_create_weakproxy"): "weakref-dead",
    ("*", "cloudpickle.cloudpickle", "_file_reconstructor"): "file-snapshot",
    ("*", "logging", "getLogger"): "logger-handlers",
    ("cloudpickle", "builtins", "bytes"): "memoryview-copied",
}
