"""Stored JSON is read back with orjson where it reads the same value, else the standard library."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from engine.core.storage import json_loads

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: past 64 bits too
    | st.floats()  # NaN and the infinities too
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def same(a: object, b: object) -> bool:
    """Equal, NaN included, and of the same types (an int is not its float)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@given(values)
def test_reads_what_the_standard_library_reads(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, separators=(",", ":"))):
        assert same(json_loads(text), json.loads(text))


def test_integers_past_64_bits_stay_exact() -> None:
    assert json_loads('{"n": 123456789012345678901234567890}') == {
        "n": 123456789012345678901234567890
    }
    assert json_loads("[-9223372036854775809]") == [-9223372036854775809]
    assert json_loads("[18446744073709551616]") == [18446744073709551616]


def test_what_orjson_refuses_is_read_as_the_standard_library_reads_it() -> None:
    value = json_loads('{"a": NaN, "b": Infinity, "c": -Infinity}')
    assert isinstance(value, dict)
    assert math.isnan(value["a"]) and value["b"] == math.inf and value["c"] == -math.inf


def test_digits_inside_a_string_only_cost_the_slower_reader() -> None:
    assert json_loads('{"phone": "12345678901234567890123"}') == {
        "phone": "12345678901234567890123"
    }


def test_a_lone_surrogate_is_read_as_the_standard_library_reads_it() -> None:
    text = '{"s": "\ud800"}'  # the character itself (a Python escape), not a JSON escape
    assert len(text) == 10
    assert json_loads(text) == json.loads(text) == {"s": "\ud800"}
