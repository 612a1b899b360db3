"""Property test: random nested objects survive every transport, both directions.

Hypothesis builds nested containers of the plain types people map over; each
example goes to a worker as an argument and comes back as its result, so an
equal object back proves the parent -> worker and worker -> parent paths. The
pools are built once per combo and kept for the module: a pool per example
would spend the test's time starting processes.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallelpickle import Pool

from . import helpers

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6
)
nested = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=5)
        | st.sets(hashables, max_size=4)
        | st.builds(bytearray, st.binary(max_size=40))
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equality that also tells -0.0 from 0.0, which ``==`` does not."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (list, tuple)) and type(a) is type(b):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(nested, min_size=1, max_size=6))
def test_random_nested_objects_come_back_equal(
    pools: dict[tuple[str, str], Pool], combo: tuple[str, str], items: list[Any]
) -> None:
    if combo not in pools:
        pools[combo] = Pool(2, transport=combo[0], start_method=combo[1])
    pool = pools[combo]
    back = pool.map(helpers.call_or_return, items, chunksize=2)
    assert len(back) == len(items)
    for sent, received in zip(items, back):
        assert _same(sent, received), (sent, received)
