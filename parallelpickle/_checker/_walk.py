"""Find the culprit inside an object that will not travel, and name its path.

The walk follows pickle's own decomposition of an object: container items,
a function's closure cells (by free-variable name), the globals its code
uses, its defaults, a bound method's ``__self__``, a class's namespace, and
for everything else ``__reduce_ex__(5)`` (constructor arguments, state from
``__getstate__``, list and dict items)::

    locate(root, "fn", fails) ─▶ children(obj) ─▶ the first child for which
        fails(child) is true ─▶ descend ─▶ ... ─▶ (path, culprit)

Only the failing branch is retested. Many children are narrowed by halving
(one trial per half), so a list of a million items costs about twenty trials.
Paths read like Python: ``args[0].cfg['handlers'][3]``,
``fn.__closure__['lock']``, ``fn.__globals__['conn']``.
"""

from __future__ import annotations

import copyreg
import functools
import pickle
import reprlib
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Step", "children", "global_names", "locate", "render"]

# A step from an object to one of its parts: (kind, key). Paths are rendered
# only for the branch that is kept, so big containers stay cheap to walk.
Step = tuple[str, Any]
Child = tuple[Step, Any]

_MAX_DEPTH = 64
_LINEAR = 8  # at most this many children are tried one by one; more are halved
_KEY_REPR = reprlib.Repr()  # a long dict key is shortened, so a path stays one line
_KEY_REPR.maxstring = 60
_KEY_REPR.maxother = 60
_SKIP_CLASS_ATTRS = frozenset({"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__slots__"})


def render(path: str, step: Step) -> str:
    kind, key = step
    if kind == "attr":
        return f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else f"vars({path})[{key!r}]"
    if kind == "item":
        return f"{path}[{_KEY_REPR.repr(key)}]"
    if kind == "elem":
        return f"list({path})[{key}]"
    if key is None:
        return f"{path}.{kind}"
    return f"{path}.{kind}[{_KEY_REPR.repr(key)}]"  # __closure__, __globals__, __defaults__, ...


def locate(
    root: Any, path: str, fails: Callable[[Any], bool], opaque: Callable[[Any], bool] | None = None
) -> tuple[str, Any]:
    """Descend from ``root`` while some part of it still ``fails``; return the deepest.

    ``opaque`` objects are culprits as a whole: a serializer that stores
    functions and classes by name never looks inside them.
    """
    seen = {id(root)}
    obj = root
    for _ in range(_MAX_DEPTH):
        if opaque is not None and opaque(obj):
            break
        found = _failing_child(children(obj), fails, seen)
        if found is None:
            break
        step, obj = found
        seen.add(id(obj))
        path = render(path, step)
    return path, obj


def _failing_child(kids: list[Child], fails: Callable[[Any], bool], seen: set[int]) -> Child | None:
    kids = [k for k in kids if id(k[1]) not in seen]
    while len(kids) > _LINEAR:
        half = len(kids) // 2
        if _safe(fails, [v for _, v in kids[:half]]):
            kids = kids[:half]
        elif _safe(fails, [v for _, v in kids[half:]]):
            kids = kids[half:]
        else:
            break  # only the combination fails: test them one by one
    for kid in kids:
        if _safe(fails, kid[1]):
            return kid
    return None


def _safe(fails: Callable[[Any], bool], obj: Any) -> bool:
    try:
        return fails(obj)
    except RecursionError:
        return False


def children(obj: Any) -> list[Child]:
    """The parts pickle would serialize for ``obj`` (empty when it has none to look into)."""
    try:
        return list(_children(obj))
    except Exception:  # noqa: BLE001 - a part that cannot even be listed is the culprit itself
        return []


def _children(obj: Any) -> Iterator[Child]:
    if isinstance(obj, (str, bytes, bytearray, int, float, complex, bool, type(None), types.ModuleType)):
        return
    if isinstance(obj, dict):
        yield from _dict_children(obj)
    elif isinstance(obj, (list, tuple)):
        fields = getattr(type(obj), "_fields", None)
        for i, v in enumerate(obj):
            yield (("attr", fields[i]) if fields and i < len(fields) else ("item", i)), v
    elif isinstance(obj, (set, frozenset)):
        for i, v in enumerate(obj):
            yield ("elem", i), v
    elif isinstance(obj, types.FunctionType):
        yield from _function_children(obj)
    elif isinstance(obj, types.MethodType):
        yield ("attr", "__self__"), obj.__self__
        yield ("attr", "__func__"), obj.__func__
    elif isinstance(obj, functools.partial):
        yield ("attr", "func"), obj.func
        yield from ((("args", i), v) for i, v in enumerate(obj.args))
        yield from ((("keywords", k), v) for k, v in obj.keywords.items())
    elif isinstance(obj, type):
        for k, v in vars(obj).items():
            if k not in _SKIP_CLASS_ATTRS:
                yield ("attr", k), v
    elif isinstance(obj, BaseException):
        yield from ((("args", i), v) for i, v in enumerate(obj.args))
        yield from ((("attr", k), v) for k, v in vars(obj).items())
    else:
        yield from _reduce_children(obj)


def _dict_children(obj: dict[Any, Any]) -> Iterator[Child]:
    for i, (k, v) in enumerate(obj.items()):
        if not isinstance(k, (str, int, float, bytes, tuple, type(None))):
            yield ("elem", i), k
        yield ("item", k), v


def _function_children(fn: types.FunctionType) -> Iterator[Child]:
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            yield ("__closure__", name), cell.cell_contents
        except ValueError:  # an empty cell: nothing to carry
            continue
    for name in sorted(global_names(fn.__code__)):
        if name in fn.__globals__:
            yield ("__globals__", name), fn.__globals__[name]
    for i, v in enumerate(fn.__defaults__ or ()):
        yield ("__defaults__", i), v
    for k, v in (fn.__kwdefaults__ or {}).items():
        yield ("__kwdefaults__", k), v
    for k, v in vars(fn).items():
        yield ("attr", k), v


def global_names(code: types.CodeType) -> set[str]:
    """Names a code object (and the code nested in it) may look up as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return names


def _has_default_state(obj: Any) -> bool:
    if sys.version_info >= (3, 11):
        return getattr(type(obj), "__getstate__", None) is object.__getstate__  # type: ignore[attr-defined]
    return getattr(type(obj), "__getstate__", None) is None


def _reduce_children(obj: Any) -> Iterator[Child]:
    reducer = copyreg.dispatch_table.get(type(obj))
    rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(5)
    if not isinstance(rv, tuple):
        return
    func, args, state, listitems, dictitems = (*rv, None, None, None, None)[:5]
    if func in (getattr(copyreg, "__newobj__", None), getattr(copyreg, "__newobj_ex__", None)):
        args = args[1:]  # the class itself
    elif not _by_name(func):
        yield ("__reduce_ex__(5)", 0), func  # a rebuilding callable with no importable name travels by value
    for i, v in enumerate(args or ()):
        yield ("__reduce_ex__(5)[1]", i), v
    yield from _state_children(obj, state)
    for i, v in enumerate(listitems or ()):
        yield ("item", i), v
    for k, v in dictitems or ():
        yield ("item", k), v


def _by_name(func: Any) -> bool:
    try:
        pickle.dumps(func, 5)
    except Exception:  # noqa: BLE001 - any refusal means it is not importable by name
        return False
    return True


def _state_children(obj: Any, state: Any) -> Iterator[Child]:
    if state is None:
        return
    plain = _has_default_state(obj)
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, dict) and plain:
            yield from ((("attr", k), v) for k, v in part.items())
        elif isinstance(part, dict):
            yield from ((("__getstate__()", k), v) for k, v in part.items())
        elif part is not None:
            yield ("__getstate__()", None), part
