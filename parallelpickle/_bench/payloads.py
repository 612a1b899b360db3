"""The payload catalogue: what gets serialized, at three scales.

``catalogue(scale)`` builds every payload afresh (no module-level cache) and
returns :class:`Payload` records: the object, a label that states its real
size, whether JSON could in principle carry it, and how to tell a faithful
round trip (:func:`same`). Sizes come from a :class:`Scale`: ``FULL`` is the
catalogue of the benchmark issue (100k-item containers, 1 MB and 100 MB
arrays, 10k instances), ``QUICK`` shrinks the big ones so ``bench --quick``
fits in a minute, ``TINY`` is for tests.

"``__main__``" objects are what a script defines: stdlib pickle stores them by
reference to ``__main__``, which a spawned worker (or here, a lookup in this
process's ``__main__``) cannot resolve. They are built by executing source in
a namespace named ``__main__``, so nothing is added to the real ``__main__``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FULL", "QUICK", "SCALES", "TINY", "ForestModel", "Payload", "Point", "Scale", "catalogue", "same"]

MB = 1 << 20


@dataclass(frozen=True)
class Scale:
    """Sizes of the catalogue (serializers) and of the pool workloads."""

    name: str
    items: int  # dict / list entries
    objects: int  # instances and JSON-like records
    small_array_bytes: int
    big_array_bytes: int
    closure_array_bytes: int
    trees: int
    # pool workloads
    tiny_tasks: int
    ms_tasks: int
    array_tasks: int
    array_task_bytes: int
    closure_tasks: int
    pool_closure_bytes: int
    # timing
    rounds: int
    min_time: float
    pool_repeats: int
    compress_cap_bytes: int = 8 * MB


TINY = Scale("tiny", 200, 50, 8 << 10, 64 << 10, 8 << 10, 2, 200, 10, 2, 64 << 10, 10, 64 << 10, 2, 0.0, 1, 256 << 10)
QUICK = Scale("quick", 20_000, 2_000, MB, 10 * MB, MB, 5, 20_000, 200, 4, 10 * MB, 200, 10 * MB, 3, 0.005, 3, 2 * MB)
FULL = Scale("full", 100_000, 10_000, MB, 100 * MB, 10 * MB, 20, 100_000, 1000, 20, 50 * MB, 1000, 50 * MB, 5, 0.03, 3)
SCALES = {s.name: s for s in (TINY, QUICK, FULL)}


@dataclass(frozen=True)
class Payload:
    """One catalogue entry. ``probe`` is the argument a callable payload is called with."""

    name: str
    label: str
    obj: Any
    kind: str = "data"  # "data" | "callable"
    jsonable: bool = False
    probe: Any = None
    tags: frozenset[str] = field(default_factory=frozenset)


class Point:
    """A small instance importable from this module (stored by reference by pickle)."""

    def __init__(self, x: float, y: float, name: str) -> None:
        self.x, self.y, self.name = x, y, name


# Source executed in a namespace named "__main__": what a script would define.
_MAIN_SOURCE = """
class Point:
    def __init__(self, x, y, name):
        self.x, self.y, self.name = x, y, name

def scale(x):
    return x * 3 + 1
"""


def _main_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(_MAIN_SOURCE, "<__main__ script>", "exec"), namespace)
    return namespace


def module_function(x: int) -> int:
    """A plain module-level function: pickle stores it by reference."""
    return x * 3 + 1


LAMBDA: Callable[[int], int] = lambda x: x * 3 + 1  # noqa: E731 - a lambda is the payload


def make_closure(values: np.ndarray[Any, Any]) -> Callable[[int], float]:
    """A closure holding ``values``: by-value serializers carry the whole array."""

    def lookup(i: int) -> float:
        return float(values[i % len(values)]) * i

    return lookup


class ForestModel:
    """A fitted-model-like object: a least-squares linear model plus a small forest of trees.

    Each tree is stored in flat arrays as scikit-learn does (feature, threshold,
    children, leaf value), so the object is mostly numpy arrays with some Python
    structure around them.
    """

    def __init__(self, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], trees: int, depth: int, seed: int) -> None:
        design = np.column_stack([x, np.ones(len(x))])
        solution = np.linalg.lstsq(design, y, rcond=None)[0]
        self.coef, self.intercept = solution[:-1], float(solution[-1])
        rng = np.random.default_rng(seed)
        self.trees = [self._fit_tree(x, y - design @ solution, depth, rng) for _ in range(trees)]
        self.params = {"trees": trees, "depth": depth, "seed": seed, "kind": "linear+forest"}

    @staticmethod
    def _fit_tree(x: np.ndarray[Any, Any], residual: np.ndarray[Any, Any], depth: int, rng: Any) -> dict[str, Any]:
        nodes = 2 ** (depth + 1) - 1
        feature = rng.integers(0, x.shape[1], nodes).astype(np.int32)
        threshold = rng.normal(size=nodes)
        left = np.arange(1, 2 * nodes + 1, 2, dtype=np.int32)
        right = left + 1
        leaves = nodes - 2**depth
        left[leaves:] = right[leaves:] = -1
        value = float(residual.mean()) + 0.1 * float(residual.std()) * rng.normal(size=nodes)
        return {"feature": feature, "threshold": threshold, "left": left, "right": right, "value": value}

    def predict(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        base: np.ndarray[Any, Any] = x @ self.coef + self.intercept
        return base + sum(float(t["value"][0]) for t in self.trees) / max(1, len(self.trees))


def _array(nbytes: int, seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(size=max(1, nbytes // 8))


def _size(nbytes: int) -> str:
    return f"{nbytes / MB:g} MB" if nbytes >= MB else f"{nbytes >> 10} KB"


def _records(n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"user{i}", "score": i * 0.25, "active": i % 3 == 0, "tags": ["a", "b"][: i % 3], "ref": None}
        for i in range(n)
    ]


def _data_payloads(scale: Scale) -> list[Payload]:
    n, k = scale.items, scale.objects
    main_point = _main_namespace()["Point"]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 16))
    y = x @ rng.normal(size=16) + rng.normal(size=256)
    return [
        Payload("dict", f"dict {n:,} str->int", {f"key{i}": i for i in range(n)}, jsonable=True),
        Payload("floats", f"list {n:,} floats", [i * 0.5 + 0.1 for i in range(n)], jsonable=True),
        Payload("array_small", f"numpy {_size(scale.small_array_bytes)}", _array(scale.small_array_bytes, 2)),
        Payload(
            "array_big",
            f"numpy {_size(scale.big_array_bytes)}",
            _array(scale.big_array_bytes, 3),
            tags=frozenset({"big"}),
        ),
        Payload("instances", f"{k:,} instances (module class)", [Point(i, -i, f"p{i}") for i in range(k)]),
        Payload("main_instances", f"{k:,} instances (__main__ class)", [main_point(i, -i, f"p{i}") for i in range(k)]),
        Payload("records", f"{k:,} JSON-like records", _records(k), jsonable=True),
        Payload("model", f"fitted model ({scale.trees} trees)", ForestModel(x, y, scale.trees, 6, 4)),
        Payload(
            "tutorial",
            "tutorial: mixed types",
            {"a": [1, 2.0, 3, 4 + 6j], "b": ("character string", b"byte string"), "c": {None, True, False}},
            tags=frozenset({"small"}),
        ),
        Payload(
            "dogs",
            "tutorial: dogs dict",
            {"Ozzy": 3, "Filou": 8, "Luna": 5, "Skippy": 10, "Barco": 12, "Balou": 9, "Laika": 16},
            jsonable=True,
            tags=frozenset({"small"}),
        ),
    ]


def _callable_payloads(scale: Scale) -> list[Payload]:
    main_fn = _main_namespace()["scale"]
    closure = make_closure(_array(scale.closure_array_bytes, 5))
    return [
        Payload("module_fn", "module function", module_function, kind="callable", probe=7),
        Payload("main_fn", "__main__ function", main_fn, kind="callable", probe=7),
        Payload("lambda", "lambda", LAMBDA, kind="callable", probe=7),
        Payload("closure", f"closure over {_size(scale.closure_array_bytes)}", closure, kind="callable", probe=7),
    ]


def catalogue(scale: Scale) -> list[Payload]:
    """Build every payload at ``scale``: data first, then callables."""
    return [*_data_payloads(scale), *_callable_payloads(scale)]


def same(a: Any, b: Any) -> bool:
    """Deep equality that survives a round trip: arrays by value, instances by class name and state.

    A class carried by value comes back as a new class object, so instances
    are compared by qualified name and ``__dict__``, not by type identity.
    """
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) in (list, tuple) or type(b) in (list, tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if hasattr(a, "__dict__") and not callable(a):
        return type(a).__qualname__ == type(b).__qualname__ and same(vars(a), getattr(b, "__dict__", None))
    return bool(a == b) and type(a) is type(b)


def same_behaviour(payload: Payload, loaded: Any) -> bool:
    """Round-trip check: equal data, or a callable giving the same answer on the probe."""
    if payload.kind == "callable":
        return callable(loaded) and same(payload.obj(payload.probe), loaded(payload.probe))
    return same(payload.obj, loaded)
