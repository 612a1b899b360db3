"""A catalogue of objects and what each transport makes of them, for the checker's tests.

Each :class:`Case` builds an object (or a callable with its arguments) and
states the verdict per transport under spawn (``spawn``) and, where it
differs, under fork (``fork``): "ok", "lossy" or "fails". The catalogue is
checked two ways (tests/test_checker.py): the checker must agree with it, and
it must agree with reality (dump here, load in a fresh spawned or forked
child), so it cannot drift from what the serializers really do.

Verdict strings list the transports in the order pickle, dill, cloudpickle, auto.
"""

from __future__ import annotations

import abc
import array
import asyncio
import collections
import concurrent.futures
import contextvars
import ctypes
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import hmac
import importlib.util
import io
import ipaddress
import logging
import mmap
import multiprocessing
import operator
import pathlib
import queue
import re
import socket
import sqlite3
import sys
import tempfile
import threading
import types
import typing
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRANSPORTS = ("pickle", "dill", "cloudpickle", "auto")

Built = tuple[Any, tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], Built]
    spawn: dict[str, str]
    fork: dict[str, str]
    rule: str | None = None  # the rule expected for the first failing/lossy problem
    path: str | None = None  # the path expected for that problem


def _verdicts(text: str) -> dict[str, str]:
    words = text.split()
    assert len(words) == 4, text
    return dict(zip(TRANSPORTS, words))


CASES: list[Case] = []


def case(
    name: str, spawn: str, fork: str | None = None, *, rule: str | None = None, path: str | None = None
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register a builder returning an object, or ``(fn, args, kwargs)`` when it is a call."""

    def register(build: Callable[[], Any]) -> Callable[[], Any]:
        def built() -> Built:
            value = build()
            if isinstance(value, Call):
                return value.fn, value.args, value.kwargs
            return value, (), {}

        CASES.append(Case(name, built, _verdicts(spawn), _verdicts(fork or spawn), rule, path))
        return build

    return register


def simple(name: str, obj_factory: Callable[[], Any], spawn: str, fork: str | None = None, **kw: Any) -> None:
    case(name, spawn, fork, **kw)(obj_factory)


@dataclass
class Call:
    fn: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


# -- module-level helpers (importable by name, so every transport can carry them) --
def add(x: int, y: int = 1) -> int:
    return x + y


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


@dataclass
class Record:
    name: str
    values: list[int]


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1


Pair = collections.namedtuple("Pair", "a b")


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = 1
        self.b = [1, 2]


class Holder:
    """Plain attributes: the walk names them ``.attr``."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class GoodReduce:
    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self) -> tuple[Any, ...]:
        return (GoodReduce, (self.n,))


class RaisingReduce:
    def __reduce__(self) -> tuple[Any, ...]:
        raise RuntimeError("refusing to be pickled")


class RaisingGetstate:
    def __getstate__(self) -> dict[str, Any]:
        raise ValueError("no state for you")


class RaisingSetstate:
    def __init__(self) -> None:
        self.v = 1

    def __setstate__(self, state: dict[str, Any]) -> None:
        raise ValueError("cannot restore")


class GoodState:
    def __init__(self) -> None:
        self.v = 1
        self.cache = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"v": self.v}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.v = state["v"]
        self.cache = threading.Lock()


class BadInitError(Exception):
    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(a)
        self.b = b


class GoodInitError(Exception):
    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(a, b)


class WithLock:
    def __init__(self) -> None:
        self.cfg = {"handlers": [1, 2, 3, threading.Lock()]}


class Node:
    def __init__(self, nxt: Any) -> None:
        self.nxt = nxt


_REGISTRY: dict[str, int] = {}


def _lookup(key: str) -> int:
    return _REGISTRY[key]


class Registered:
    """Rebuilt from a registry filled at runtime: loads here, not in a fresh process."""

    def __init__(self, key: str, value: int) -> None:
        _REGISTRY[key] = value
        self.key = key

    def __reduce__(self) -> tuple[Any, ...]:
        return (_lookup, (self.key,))


def make_lock(x: int) -> Any:
    """A task whose result a worker cannot send back with C pickle."""
    return threading.Lock()


def _chain(n: int) -> Node:
    node: Any = None
    for _ in range(n):
        node = Node(node)
    return node


def _nested(n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        out = [out]
    return out


def _gen() -> Any:
    yield 1


async def _coro() -> int:
    return 1


async def _agen() -> Any:
    yield 1


def _frame() -> Any:
    return sys._getframe()


def _traceback() -> Any:
    try:
        raise ValueError("x")
    except ValueError as exc:
        return exc.__traceback__


def _closing_coro() -> Any:
    c = _coro()
    c.close()
    return c


def _local_function() -> Any:
    base = 10

    def add_base(x: int) -> int:
        return x + base

    return add_base


def _local_class() -> Any:
    class Local:
        def __init__(self) -> None:
            self.v = 1

    return Local


def _closure_over(value: Any) -> Any:
    def uses(x: int) -> Any:
        return (x, value)

    return uses


_HERE = pathlib.Path(__file__)
_ALIVE: list[Any] = []  # referents kept alive for weakref cases


def _weakref_target() -> Point:
    p = Point(1, 2)
    _ALIVE.append(p)
    return p


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _ALIVE.append(s)
    return s


def _text_file() -> Any:
    f = _HERE.open()
    _ALIVE.append(f)
    return f


def _binary_file() -> Any:
    f = _HERE.open("rb")
    _ALIVE.append(f)
    return f


def _write_file() -> Any:
    f = tempfile.TemporaryFile("w")  # noqa: SIM115 - kept open on purpose
    _ALIVE.append(f)
    return f


def _sqlite() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    _ALIVE.append(conn)
    return conn


_FLOATING_SOURCE = "def double(x):\n    return 2 * x\n\nclass Box:\n    def __init__(self):\n        self.v = 1\n"


def _floating_module(name: str, register: bool) -> types.ModuleType:
    """A module loaded from a file path that no ``import`` by name can find."""
    if name in sys.modules:
        return sys.modules[name]
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ppcat"))
    path = directory / f"{name}.py"
    path.write_text(_FLOATING_SOURCE)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_UNREGISTERED: dict[str, types.ModuleType] = {}


def _unregistered_module() -> types.ModuleType:
    if "m" not in _UNREGISTERED:
        _UNREGISTERED["m"] = _floating_module("ppcat_unregistered", register=False)
    return _UNREGISTERED["m"]


def _dynamic_module(register: bool) -> types.ModuleType:
    name = "ppcat_dynamic_registered" if register else "ppcat_dynamic"
    if register and name in sys.modules:
        return sys.modules[name]
    mod = types.ModuleType(name)
    exec("def triple(x):\n    return 3 * x\n", mod.__dict__)
    if register:
        sys.modules[name] = mod
    return mod


def _logger(name: str, handler: bool) -> logging.Logger:
    log = logging.getLogger(name)
    log.propagate = False
    if handler and not log.handlers:
        log.addHandler(logging.NullHandler())
    return log


# Objects installed in __main__ (the test runner's, which a spawned child does not re-run).
MAIN_PREFIX = "_ppcat_"


def _in_main(source: str, name: str) -> Any:
    main = sys.modules["__main__"]
    attr = MAIN_PREFIX + name
    if not hasattr(main, attr):
        namespace = vars(main)
        exec(source.replace("NAME", attr), namespace)  # defined in __main__: __module__ is "__main__"
    return getattr(main, attr)


# -- ordinary objects: every transport carries them ------------------------------
ALL_OK = "ok ok ok ok"

for _name, _factory in {
    "int": lambda: 42,
    "float": lambda: 1.5,
    "complex": lambda: 1 + 2j,
    "str": lambda: "hello",
    "bytes": lambda: b"\x00\x01",
    "bytearray": lambda: bytearray(b"abc"),
    "none": lambda: None,
    "bool": lambda: True,
    "list": lambda: [1, "a", None],
    "tuple": lambda: (1, 2.0, "x"),
    "dict": lambda: {"a": 1, "b": [1, 2]},
    "set": lambda: {1, 2, 3},
    "frozenset": lambda: frozenset({"a"}),
    "nested": lambda: {"a": [{"b": (1, {2, 3})}]},
    "big-list": lambda: list(range(100_000)),
    "big-bytes": lambda: b"x" * 300_000,
    "big-str": lambda: "y" * 300_000,
    "decimal": lambda: decimal.Decimal("1.10"),
    "fraction": lambda: fractions.Fraction(1, 3),
    "datetime": lambda: datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "date": lambda: datetime.date(2024, 1, 2),
    "timedelta": lambda: datetime.timedelta(seconds=5),
    "uuid": lambda: uuid.UUID(int=5),
    "path": lambda: pathlib.PurePosixPath("/tmp/x"),
    "regex": lambda: re.compile(r"a+b"),
    "range": lambda: range(3, 10, 2),
    "slice": lambda: slice(1, 5),
    "ellipsis": lambda: ...,
    "ordereddict": lambda: collections.OrderedDict(a=1),
    "defaultdict": lambda: collections.defaultdict(list, a=[1]),
    "counter": lambda: collections.Counter("abca"),
    "deque": lambda: collections.deque([1, 2]),
    "namedtuple": lambda: Pair(1, 2),
    "dataclass": lambda: Record("r", [1, 2]),
    "enum": lambda: Color.RED,
    "intenum": lambda: Level.LOW,
    "array": lambda: array.array("d", [1.0, 2.0]),
    "numpy-small": lambda: np.arange(10),
    "numpy-big": lambda: np.zeros(100_000),
    "numpy-struct": lambda: np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
    "numpy-object": lambda: np.array([1, "a", None], dtype=object),
    "simplenamespace": lambda: types.SimpleNamespace(a=1),
    "slots": Slotted,
    "good-reduce": lambda: GoodReduce(3),
    "good-getstate": GoodState,
    "exception": lambda: ValueError("bad"),
    "exception-good-init": lambda: GoodInitError(1, 2),
    "bytesio": lambda: io.BytesIO(b"abc"),
    "stringio": lambda: io.StringIO("abc"),
    "ipaddress": lambda: ipaddress.ip_address("10.0.0.1"),
    "class-object": lambda: Point,
    "instance": lambda: Point(1, 2),
    "ctypes-int": lambda: ctypes.c_int(5),
    "module-function-data": lambda: add,
    "builtin-function-data": lambda: len,
    "logger-plain": lambda: _logger("ppcat.plain", handler=False),
}.items():
    simple(_name, _factory, ALL_OK)

# Callables with their arguments, all ordinary.
case("call-module-function", ALL_OK)(lambda: Call(add, (1, 2)))
case("call-builtin", ALL_OK)(lambda: Call(len, ([1, 2],)))
case("call-math", ALL_OK)(lambda: Call(__import__("math").sqrt, (4.0,)))
case("call-os-path-join", ALL_OK)(lambda: Call(__import__("os").path.join, ("a", "b")))
case("call-partial", ALL_OK)(lambda: Call(functools.partial(add, y=5), (1,)))
case("call-itemgetter", ALL_OK)(lambda: Call(operator.itemgetter(0), ([1],)))
case("call-bound-method", ALL_OK)(lambda: Call(Point(1, 2).norm))
case("call-class", ALL_OK)(lambda: Call(Point, (1, 2)))
case("call-str-method", ALL_OK)(lambda: Call(str.upper, ("a",)))
case("call-kwargs", ALL_OK)(lambda: Call(add, (1,), {"y": 2}))
case("call-numpy-arg", ALL_OK)(lambda: Call(np.sum, (np.ones(50_000),)))

# -- functions pickle stores by name ------------------------------------------------
BY_VALUE = "fails ok ok ok"
case("lambda", BY_VALUE, rule="lambda", path="fn")(lambda: Call(lambda x: x * 2, (1,)))
case("local-function", BY_VALUE, rule="local-function", path="fn")(lambda: Call(_local_function(), (1,)))
case("closure-over-int", BY_VALUE, rule="local-function")(lambda: Call(_closure_over(5), (1,)))
case("lambda-in-args", BY_VALUE, rule="lambda", path="args[0]['key']")(lambda: Call(add, ({"key": lambda: 1},)))
case("lambda-in-kwargs", BY_VALUE, rule="lambda", path="kwargs['cb']")(lambda: Call(add, (), {"cb": lambda: 1}))
case("partial-of-lambda", BY_VALUE, rule="lambda", path="fn.func")(
    lambda: Call(functools.partial(lambda x, y: x + y, 1), (2,))
)
simple("local-class", _local_class, BY_VALUE, rule="local-class", path="fn")
simple("local-class-instance", lambda: _local_class()(), BY_VALUE, rule="local-class")
simple("dynamic-class", lambda: type("Dyn", (), {"v": 1}), BY_VALUE, rule="dynamic-class")
simple("dynamic-class-instance", lambda: type("Dyn2", (), {})(), BY_VALUE, rule="dynamic-class")
simple("namedtuple-misnamed", lambda: collections.namedtuple("NotTheName", "a")(1), BY_VALUE, rule="dynamic-class")
simple("make-dataclass", lambda: dataclasses.make_dataclass("MadeUp", ["a"])(1), BY_VALUE, rule="dynamic-class")
simple("list-with-lambda", lambda: [1, 2, lambda: 3], BY_VALUE, rule="lambda", path="obj[2]")

# -- per-process state ---------------------------------------------------------------
DILL_LOSSY = "fails lossy fails lossy"
simple("thread-lock", threading.Lock, DILL_LOSSY, rule="thread-sync", path="obj")
simple("thread-rlock", threading.RLock, DILL_LOSSY, rule="thread-sync")
simple("thread-condition", threading.Condition, DILL_LOSSY, rule="thread-sync")
simple("thread-event", threading.Event, DILL_LOSSY, rule="thread-sync")
simple("thread-semaphore", threading.Semaphore, DILL_LOSSY, rule="thread-sync")
simple("thread-bounded-semaphore", threading.BoundedSemaphore, DILL_LOSSY, rule="thread-sync")
simple("queue", queue.Queue, DILL_LOSSY, rule="thread-sync")
simple("simple-queue", queue.SimpleQueue, "fails fails fails fails", rule="thread-sync")
simple("thread-local", threading.local, "fails fails fails fails", rule="thread-sync")
simple("lock-deep", WithLock, DILL_LOSSY, rule="thread-sync", path="obj.cfg['handlers'][3]")
case("lock-in-closure", DILL_LOSSY, rule="thread-sync", path="fn.__closure__['value']")(
    lambda: Call(_closure_over(threading.Lock()), (1,))
)
simple("generator", _gen, "fails fails fails fails", rule="generator")
simple("generator-expression", lambda: (i for i in range(3)), "fails fails fails fails", rule="generator")
simple("coroutine", _closing_coro, "fails fails fails fails", rule="generator")
simple("async-generator", _agen, "fails fails fails fails", rule="generator")
simple("frame", _frame, "fails fails fails fails", rule="frame-traceback")
simple("traceback", _traceback, "fails fails fails fails", rule="frame-traceback")
simple("text-file", _text_file, "fails lossy lossy lossy", rule="open-file")
simple("binary-file", _binary_file, "fails lossy fails lossy", rule="open-file")
simple("anonymous-temp-file", _write_file, "fails fails fails fails", "fails lossy fails lossy", rule="file-descriptor")
simple("socket", _socket, "ok fails fails fails", rule="socket")  # ForkingPickler shares the socket
simple("sqlite-connection", _sqlite, "fails fails fails fails", rule="sqlite")
simple("sqlite-cursor", lambda: _sqlite().cursor(), "fails fails fails fails", rule="sqlite")
simple("mp-lock", multiprocessing.Lock, "fails fails fails fails", rule="mp-sync")
simple("mp-queue", multiprocessing.Queue, "fails fails fails fails", rule="mp-sync")
simple("mp-event", multiprocessing.Event, "fails fails fails fails", rule="mp-sync")
simple("ctypes-pointer", lambda: ctypes.pointer(ctypes.c_int(1)), "fails fails fails fails", rule="ctypes-pointer")
simple("memoryview", lambda: memoryview(b"abc"), "fails fails lossy lossy", rule="memoryview")
simple("module", lambda: re, "fails ok ok ok", rule="module")
simple("weakref", lambda: weakref.ref(_weakref_target()), "fails lossy fails lossy", rule="weakref")
# A proxy pickles as its referent (it forwards __reduce_ex__); dill keeps it a (dead) proxy.
simple("weakproxy", lambda: weakref.proxy(_weakref_target()), "ok lossy ok ok", rule="weakref-dead")
simple("weakvaluedict", lambda: weakref.WeakValueDictionary({"a": _weakref_target()}), "fails fails fails fails")
simple("hash-sha256", lambda: hashlib.sha256(b"x"), "fails fails fails fails", rule="hash")
simple("hash-md5", lambda: hashlib.md5(b"x"), "fails fails fails fails", rule="hash")
simple("hash-blake2b", lambda: hashlib.blake2b(b"x"), "fails fails fails fails", rule="hash")
simple("hmac", lambda: hmac.new(b"k", b"m", "sha256"), "fails fails fails fails", rule="hash")
simple("contextvar", lambda: contextvars.ContextVar("ppcat"), "fails fails fails fails", rule="contextvars")
simple("context", contextvars.copy_context, "fails fails fails fails", rule="contextvars")
simple("event-loop", asyncio.new_event_loop, "fails fails fails fails")
simple("raising-reduce", RaisingReduce, "fails fails fails fails", rule="raising-reduce")
simple("raising-getstate", RaisingGetstate, "fails fails fails fails", rule="raising-reduce")
simple(
    "raising-reduce-deep",
    lambda: {"a": [1, RaisingReduce()]},
    "fails fails fails fails",
    rule="raising-reduce",
    path="obj['a'][1]",
)
simple("raising-setstate", RaisingSetstate, "fails fails fails fails", rule="raising-setstate")
simple("exception-bad-init", lambda: BadInitError(1, 2), "fails fails fails fails", rule="exception-args")
simple("recursion-nested-list", lambda: _nested(100_000), "fails fails fails fails", rule="recursion")
simple("recursion-chain", lambda: _chain(50_000), "fails fails fails fails", rule="recursion")
simple(
    "logger-with-handler",
    lambda: _logger("ppcat.configured", handler=True),
    "lossy lossy lossy lossy",
    ALL_OK,
    rule="logger-handlers",
)

# -- modules that a fresh process cannot import by name -------------------------------
FORK_OK = ALL_OK
case("floating-module-function", "fails fails fails fails", FORK_OK, rule="module-not-importable")(
    lambda: Call(_floating_module("ppcat_floating", register=True).double, (1,))
)
simple(
    "floating-module-instance",
    lambda: _floating_module("ppcat_floating", register=True).Box(),
    "fails fails fails fails",
    FORK_OK,
    rule="module-not-importable",
)
case("unregistered-module-function", BY_VALUE)(lambda: Call(_unregistered_module().double, (1,)))
case("dynamic-module-function", BY_VALUE)(lambda: Call(_dynamic_module(register=False).triple, (1,)))
case("registered-dynamic-module-function", "fails fails fails fails", FORK_OK, rule="module-not-importable")(
    lambda: Call(_dynamic_module(register=True).triple, (1,))
)
simple("unregistered-dynamic-module", lambda: _dynamic_module(register=False), "fails fails ok ok")
simple("registered-dynamic-module", lambda: _dynamic_module(register=True), "fails fails fails fails", "fails ok ok ok")


# -- a module attribute that only exists after a call ------------------------------------
def install_runtime_class() -> type:
    """Binds RuntimeMade in this module at runtime: a fresh import does not have it."""
    global RuntimeMade
    RuntimeMade = type("RuntimeMade", (), {"__module__": __name__})
    return RuntimeMade


case("name-set-at-runtime", "fails fails fails fails", ALL_OK, rule="name-set-at-runtime")(
    lambda: install_runtime_class()()
)

# -- __main__ without a file a spawned worker re-runs -----------------------------------
MAIN_BY_REF = "fails ok ok ok"
case("main-function", MAIN_BY_REF, ALL_OK, rule="main-not-importable")(
    lambda: Call(_in_main("def NAME(x):\n    return x\n", "fn"), (1,))
)
simple(
    "main-class-instance",
    lambda: _in_main("class NAME:\n    pass\n", "Cls")(),
    MAIN_BY_REF,
    ALL_OK,
    rule="main-not-importable",
)
simple(
    "main-enum",
    lambda: _in_main("import enum\nclass NAME(enum.Enum):\n    A = 1\n", "Enum").A,
    "fails fails ok ok",
    "ok fails ok ok",
)
simple("main-lambda", lambda: _in_main("NAME = lambda x: x\n", "lam"), BY_VALUE, rule="lambda")


# -- more objects, of kinds the rules were not written for -----------------------------
@functools.cache
def cached(x: int) -> int:
    return x


def _no_wraps(f: Any) -> Any:
    def wrapper(*a: Any) -> Any:
        return f(*a)

    return wrapper


@_no_wraps
def decorated(x: int) -> int:
    return x


class WithProperty:
    def m(self) -> int:
        return 1

    @property
    def p(self) -> int:
        return 1


class LockState:
    def __getstate__(self) -> dict[str, Any]:
        return {"k": threading.Lock()}


class KwOnlyError(Exception):
    def __init__(self, *, code: int) -> None:
        super().__init__()
        self.code = code


class ReduceLambda:
    def __reduce__(self) -> tuple[Any, ...]:
        return (lambda: ReduceLambda(), ())


class SlotLock:
    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()


@dataclass(frozen=True)
class Frozen:
    a: int


class Perm(enum.Flag):
    R = 1
    W = 2


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self) -> float: ...


class Square(Shape):
    def area(self) -> float:
        return 1.0


def default_lock(x: int, lock: Any = threading.Lock()) -> int:
    return x


T = typing.TypeVar("T")


def _local_bound_method() -> Any:
    class Local:
        def m(self) -> int:
            return 1

    return Local().m


def _exception_with_traceback() -> BaseException:
    try:
        raise ValueError("x")
    except ValueError as exc:
        return exc


for _name, _factory in {
    "lru-cache-function": lambda: cached,
    "iterator": lambda: iter([1, 2]),
    "map-object": lambda: map(abs, [1, -2]),
    "chainmap": lambda: collections.ChainMap({"a": 1}),
    "decimal-context": lambda: decimal.Context(prec=5),
    "frozen-dataclass": lambda: Frozen(1),
    "flag-combination": lambda: Perm.R | Perm.W,
    "abc-subclass": Square,
    "default-lock-function": lambda: default_lock,
    "typevar": lambda: T,
    "typing-alias": lambda: list[int],
    "bound-method": lambda: WithProperty().m,
    "plain-object": object,
    "none-type": lambda: type(None),
    "exception-with-traceback": _exception_with_traceback,
    "attrgetter": lambda: operator.attrgetter("a.b"),
    "methodcaller": lambda: operator.methodcaller("m", 1),
    "numpy-generator": lambda: np.random.default_rng(1),
    "numpy-ufunc": lambda: np.add,
}.items():
    simple(_name, _factory, ALL_OK)

simple("decorated-without-wraps", lambda: decorated, BY_VALUE, rule="local-function", path="fn")
simple("property", lambda: WithProperty.__dict__["p"], BY_VALUE, rule="unpicklable-type")
simple("typevar-not-at-module-level", lambda: typing.TypeVar("Loose"), "fails fails ok ok", rule="dynamic-class")
simple("staticmethod-object", lambda: staticmethod(add), BY_VALUE, rule="unpicklable-type")
simple("mappingproxy", lambda: types.MappingProxyType({"a": 1}), BY_VALUE, rule="unpicklable-type")
simple("dict-keys", lambda: {"a": 1}.keys(), BY_VALUE, rule="unpicklable-type")
simple("os-environ", lambda: __import__("os").environ, BY_VALUE, rule="local-function", path="obj.encodekey")
simple("reduce-returns-lambda", ReduceLambda, BY_VALUE, rule="lambda", path="obj.__reduce_ex__(5)[0]")
simple("local-bound-method", _local_bound_method, BY_VALUE, rule="local-class", path="fn.__self__")
simple("method-from-lambda", lambda: types.MethodType(lambda self: 1, WithProperty()), "fails ok ok ok", rule="lambda")
simple("mmap", lambda: mmap.mmap(-1, 100), "fails fails fails fails", rule="unpicklable-type")
simple("regex-match", lambda: re.match("a", "a"), "fails fails fails fails", rule="unpicklable-type")
simple("text-wrapper-over-bytesio", lambda: io.TextIOWrapper(io.BytesIO()), "fails fails fails fails", rule="open-file")
simple(
    "generator-in-attribute",
    lambda: types.SimpleNamespace(items=[1, (i for i in range(2))]),
    "fails fails fails fails",
    rule="generator",
    path="obj.items[1]",
)
simple("kw-only-exception", lambda: KwOnlyError(code=3), "fails fails fails fails", rule="exception-args")
simple("futures-future", concurrent.futures.Future, DILL_LOSSY, rule="thread-sync", path="obj._condition._lock")
simple("stream-handler", lambda: logging.StreamHandler(io.StringIO()), DILL_LOSSY, rule="thread-sync", path="obj.lock")
simple("getstate-returns-lock", LockState, DILL_LOSSY, rule="thread-sync", path="obj.__getstate__()['k']")
simple("slots-with-lock", SlotLock, DILL_LOSSY, rule="thread-sync", path="obj.lock")
simple("priority-queue", queue.PriorityQueue, DILL_LOSSY, rule="thread-sync", path="obj.mutex")
simple("weakset", weakref.WeakSet, "fails lossy ok ok", rule="weakref-dead")
case("partial-with-lock", DILL_LOSSY, rule="thread-sync", path="fn.args[0]")(
    lambda: Call(functools.partial(add, threading.Lock()))
)


# -- the real round trip ---------------------------------------------------------------
def _child_load(conn: Any) -> None:
    """In a fresh worker: load each (transport, [(tag, data), ...]); report the first error."""
    from parallelpickle._transports import Codec

    jobs, call = conn.recv()
    out: list[str | None] = []
    for transport, parts in jobs:
        try:
            loaded = [Codec(transport).loads(tag, data) for tag, data in parts]
            if call:  # a callable with its arguments: also run it, as a worker would
                loaded[0](*(loaded[1] if len(loaded) > 1 else ()))
        except BaseException as exc:
            out.append(f"{type(exc).__name__}: {exc}")
        else:
            out.append(None)
    conn.send(out)


def real_verdicts(cases: list[Case], start_method: str, call: bool = False) -> dict[tuple[str, str], str]:
    """(case, transport) -> "fails" or "loads", from a real dump here and a load in one child.

    ``call=True`` also calls each loaded callable with its loaded arguments.
    """
    from parallelpickle._transports import Codec

    result: dict[tuple[str, str], str] = {}
    jobs: list[tuple[str, list[tuple[str, bytes]]]] = []
    keys: list[tuple[str, str]] = []
    for c in cases:
        fn, args, kwargs = c.build()
        callable_root = bool(args or kwargs) or callable(fn)
        for t in TRANSPORTS:
            codec = Codec(t)
            try:
                parts = [codec.dumps_callable(fn) if callable_root else codec.dumps_data(fn)]
                parts += [codec.dumps_data(x) for x in (args, kwargs) if x]
            except Exception:
                result[(c.name, t)] = "fails"
                continue
            jobs.append((t, parts))
            keys.append((c.name, t))
    ctx = multiprocessing.get_context(start_method)
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_load, args=(child,), daemon=True)
    proc.start()
    parent.send((jobs, call))
    assert parent.poll(120), "the loading child did not answer"
    answers = parent.recv()
    proc.join(30)
    for key, answer in zip(keys, answers):
        result[key] = "loads" if answer is None else "fails"
    return result
