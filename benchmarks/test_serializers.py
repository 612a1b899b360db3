"""Serializers x payloads: dumps and loads of the ``parallelpickle bench`` catalogue.

Run for figures (quick-scale payloads; ``PARALLELPICKLE_BENCH_SCALE=full`` for
the issue's sizes)::

    pytest benchmarks/test_serializers.py --benchmark-enable --benchmark-group-by=param:payload

With benchmarking disabled (CI's smoke run) the payloads are tiny and each
case runs once. A serializer that cannot carry a payload is not timed: its
test asserts that it fails, as the table below predicts.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from parallelpickle._bench import payloads, serializers

SERIALIZERS = {s.name: s for s in serializers.default_serializers()}
PAYLOAD_NAMES = [p.name for p in payloads.catalogue(payloads.TINY)]
# What C pickle (any protocol, C or pure Python) cannot carry: things it stores by a name the loader can't find.
BY_REFERENCE_FAILS = {"main_instances", "main_fn", "lambda", "closure"}
JSONABLE = {p.name for p in payloads.catalogue(payloads.TINY) if p.jsonable}


def can_carry(serializer: str, payload: str) -> bool:
    if serializer == "json":
        return payload in JSONABLE
    if serializer.startswith("pickle"):
        return payload not in BY_REFERENCE_FAILS
    return True  # dill and cloudpickle carry every payload of the catalogue


@pytest.fixture(scope="module")
def catalogue(request: pytest.FixtureRequest) -> dict[str, payloads.Payload]:
    opt = request.config.getoption
    disabled = opt("benchmark_disable", default=True) and not opt("benchmark_enable", default=False)
    name = os.environ.get("PARALLELPICKLE_BENCH_SCALE") or ("tiny" if disabled else "quick")
    return {p.name: p for p in payloads.catalogue(payloads.SCALES[name])}


@pytest.mark.parametrize("payload", PAYLOAD_NAMES)
@pytest.mark.parametrize("serializer", list(SERIALIZERS))
@pytest.mark.parametrize("op", ["dumps", "loads"])
def test_serializer(
    request: pytest.FixtureRequest, catalogue: dict[str, payloads.Payload], op: str, serializer: str, payload: str
) -> None:
    ser, item = SERIALIZERS[serializer], catalogue[payload]
    if not can_carry(serializer, payload):
        with pytest.raises(Exception) as exc:
            ser.dumps(item.obj)
        assert type(exc.value).__name__ in {"PicklingError", "AttributeError", "TypeError"}
        return
    benchmark: Any = request.getfixturevalue("benchmark")  # only cases that run are benchmarks
    benchmark.group = f"{payload} {op}"
    if op == "dumps":
        packed = benchmark(ser.dumps, item.obj)
    else:
        packed = ser.dumps(item.obj)
        benchmark(ser.loads, packed)
    loaded = ser.loads(packed)
    assert payloads.same_behaviour(item, loaded) or (serializer == "json" and payload == "tutorial")
