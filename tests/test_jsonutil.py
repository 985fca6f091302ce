"""Strict JSON: the orjson path must refuse and accept exactly what the strict parser does."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.jsonutil import _MISSING, JSONError, _loads_proven, float_holds, loads_strict

_SEPARATORS = [(",", ":"), (", ", ": "), (",", " : "), (" , ", ":")]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _with_member(
    text: str, key: str, value: Any, separators: tuple[str, str], ascii_only: bool = True
) -> str:
    """A JSON object's text with one more member, ``key: value``, written at its end."""
    item, colon = separators
    member = json.dumps(key, ensure_ascii=ascii_only) + colon
    member += json.dumps(value, separators=separators, ensure_ascii=ascii_only)
    return f"{text[:-1]}{item}{member}}}"


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1,"a":2}',
        b'{"a": 1, "a": 2}',
        b'{"a" :1,"a":2}',
        b'{"a":1,"a" :2}',
        b'{"a":1,\n"a"\t:2}',
        b'{"x":{"a":1,"a":2}}',
        b'[{"a":1},{"b":1,"b":1}]',
        b'{"a":":x","a":1}',
        b'{"a":1,"\\u0061":2}',
        b'{\n  "a": 1,\n  "a": 2\n}',
    ],
)
def test_duplicate_keys_are_refused_however_they_are_spelled(text: bytes) -> None:
    with pytest.raises(JSONError, match="duplicate key"):
        loads_strict(text)


@pytest.mark.parametrize(
    "text", [b"NaN", b'{"a":NaN}', b"[Infinity]", b"[-Infinity]", b"[1e400]", b'{"a":-1e999}']
)
def test_non_finite_numbers_are_refused(text: bytes) -> None:
    with pytest.raises(JSONError, match="non-finite"):
        loads_strict(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"price":100.00000000000000001}',  # orjson reads 100.0: maximum 100 would pass
        b'{"price": 100.00000000000000001}',
        b'{\n  "price": 100.00000000000000001\n}',
        b'{"pr\\u0069ce": 100.00000000000000001}',  # escapes: the standard library's path
        b"[1234567890123456.789]",
        b"[0.30000000000000001]",
        b"[-2.000000000000000000001e5]",
        b"[1e-400]",  # read as 0.0
        b"[-2.5e-330]",
    ],
)
def test_numbers_a_double_cannot_hold_are_refused(text: bytes) -> None:
    with pytest.raises(JSONError, match="cannot be read exactly as a 64-bit float"):
        loads_strict(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"[0.1, 1.50, 1E2, -0.0, 0e0, 2.5e-3]", [0.1, 1.5, 100.0, -0.0, 0.0, 0.0025]),
        (b"[16.990000000000002]", [16.990000000000002]),  # a computed price, written shortest
        (b"[0.000000000000000001]", [1e-18]),  # a long run of digits, one significant
        (b"[5e-324, 1.7976931348623157e308]", [5e-324, 1.7976931348623157e308]),
        (b"[123456789012345678901234567890]", [123456789012345678901234567890]),
        (b'{"s": "100.00000000000000001"}', {"s": "100.00000000000000001"}),  # a string
    ],
)
def test_numbers_written_as_a_double_holds_them_pass(text: bytes, value: Any) -> None:
    assert loads_strict(text) == value
    assert loads_strict(text.replace(b" ", b"")) == value


@settings(max_examples=400, deadline=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: d.adjusted() < 300 and d != d.to_integral_value()
    ),
    st.sampled_from([b"[%s]", b'{"n": %s}', b'{"\\u006e":%s}']),
)
def test_a_decimal_passes_exactly_when_a_double_holds_it(number: Decimal, shape: bytes) -> None:
    """The property behind both paths (orjson's with its scan, the standard library's):
    a number is refused exactly when the shortest writing of its double is another
    number, and what passes is that double."""
    text = str(number).replace("E", "e")
    holds = Decimal(repr(float(text))) == Decimal(text)
    assert float_holds(text, float(text)) is holds
    document = shape % text.encode()
    if holds:
        parsed = loads_strict(document)
        assert (parsed[0] if isinstance(parsed, list) else next(iter(parsed.values()))) == float(
            text
        )
    else:
        with pytest.raises(JSONError, match="cannot be read exactly"):
            loads_strict(document)


def test_the_response_side_reads_any_decimal_as_its_nearest_double() -> None:
    """The response filter keeps the upstream's spelling of numbers itself
    (contract/rewrite.py), so it asks for no exactness."""
    text = b'{"n": 100.00000000000000001, "big": 123456789012345678901234567890}'
    assert loads_strict(text, exact_numbers=False) == {
        "n": 100.0,
        "big": 123456789012345678901234567890,
    }


def test_integers_beyond_64_bits_stay_exact() -> None:
    big = 123456789012345678901234567890
    assert loads_strict(b'{"n":%d}' % big) == {"n": big}
    assert loads_strict(b"[-%d]" % big) == [-big]


def test_documents_without_escapes_take_the_proven_orjson_path() -> None:
    assert _loads_proven(b'{"a":1,"b":{"c":[1,2,":x"]}}') == {"a": 1, "b": {"c": [1, 2, ":x"]}}
    assert _loads_proven(b'{\n  "a" : 1,\n  "b": [" :x", "a b"]\n}') == {
        "a": 1,
        "b": [" :x", "a b"],
    }  # pretty-printed: whitespace does not matter
    assert _loads_proven(b'{"a":1,"a":2}') is _MISSING
    assert _loads_proven(b'{"a":1,"a" :2}') is _MISSING
    assert _loads_proven(b'{"a":"\\u0041"}') is _MISSING  # escapes: strict path
    assert _loads_proven(b'{"n":1234567890123456789}') == {"n": 1234567890123456789}
    assert _loads_proven(b'{"n":18446744073709551616}') is _MISSING  # 2**64: strict path
    # A run of 19 digits that orjson reads and writes back unchanged is no rounded number.
    assert _loads_proven(b'{"n":1e20,"s":"1234567890123456789"}') == {
        "n": 1e20,
        "s": "1234567890123456789",
    }
    assert _loads_proven(b'{"n": 0.30000000000000001}') is _MISSING  # read as 0.3


def test_orjsons_own_writing_is_settled_by_comparison() -> None:
    """A text equal to orjson's output of its value holds no repeat and no rounded integer,
    whatever else it contains (here what makes the colon count decline: a 19-digit run
    beside a float orjson writes with ``e+``)."""
    value = {"n": 1e20, "s": "1234567890123456789", "items": [{"a": 1}, {"a": 2}]}
    text = orjson.dumps(value)
    assert b"e+" in text
    assert _loads_proven(text) == value
    assert _loads_proven(text.replace(b'{"a":2}', b'{"a":1,"a":2}')) is _MISSING


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(),
        st.integers(-(2**70), 2**70),
        st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    ),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_integers_stay_exact_and_floats_stay_floats(number: int, real: float) -> None:
    value = loads_strict(json.dumps({"n": number, "x": real}).encode())
    assert value == {"n": number, "x": real}
    assert type(value["n"]) is int


# Keys and strings made of whitespace and colons: the colons the proof counts, in strings
# and keys, beside the structural ones.
_TRICKY_TEXT = st.text(" \t\n:ab", max_size=5)
tricky_values = st.recursive(
    st.integers() | _TRICKY_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_TRICKY_TEXT, children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(_TRICKY_TEXT, tricky_values, min_size=1, max_size=3),
    tricky_values,
    st.sampled_from(_SEPARATORS),
    st.integers(min_value=0, max_value=3),
    st.booleans(),
)
def test_the_proof_never_accepts_a_repeated_key(
    obj: dict[str, Any],
    extra: Any,
    separators: tuple[str, str],
    position: int,
    indent: bool,
) -> None:
    """With or without the repeat, _loads_proven answers orjson's value or declines."""
    keys = list(obj)
    key = keys[position % len(keys)]
    clean = json.dumps(obj, separators=separators, indent=2 if indent else None)
    proven = _loads_proven(clean.encode())
    assert proven is _MISSING or proven == obj
    repeated = _with_member(clean, key, extra, separators)
    assert _loads_proven(repeated.encode()) is _MISSING


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(_SEPARATORS), st.booleans())
def test_any_document_parses_to_what_the_standard_library_reads(
    value: Any, separators: tuple[str, str], ascii_only: bool
) -> None:
    text = json.dumps(value, separators=separators, ensure_ascii=ascii_only).encode()
    assert loads_strict(text, max_depth=1000) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=4),
    json_values,
    st.sampled_from(_SEPARATORS),
    st.booleans(),
    st.booleans(),
)
def test_a_repeated_key_is_refused_wherever_it_is(
    obj: dict[str, Any],
    extra: Any,
    separators: tuple[str, str],
    nested: bool,
    ascii_only: bool,
) -> None:
    item, colon = separators
    body = json.dumps(obj, separators=separators, ensure_ascii=ascii_only)
    text = _with_member(body, next(iter(obj)), extra, separators, ascii_only)
    if nested:
        text = f'[1{item}{{"outer"{colon}{text}}}]'
    with pytest.raises(JSONError, match="duplicate key"):
        loads_strict(text.encode(), max_depth=1000)


@pytest.mark.parametrize("as_bytes", [True, False])
def test_nesting_is_capped_and_wide_documents_pass(as_bytes: bool) -> None:
    deep = "[" * 65 + "]" * 65
    wide = "[" + ",".join(["[[1],{}]"] * 5_000) + "]"  # 15,001 brackets, depth 3
    tricky = '["' + "[" * 100 + '\\"", [[]]]'  # brackets inside a string with an escape
    read = (lambda t: loads_strict(t.encode())) if as_bytes else loads_strict
    with pytest.raises(JSONError, match="nesting deeper than 64 levels"):
        read(deep)
    assert len(read(wide)) == 5_000
    assert read(tricky) == ["[" * 100 + '"', [[]]]


@pytest.mark.parametrize("depth", [254, 255, 256, 512])
def test_documents_deeper_than_orjson_writes_are_read_up_to_the_cap(depth: int) -> None:
    """orjson reads 1,024 levels but writes 255: the proof's writing raised TypeError (a
    500 for a request body under a configured ``max_depth`` of 255 or more)."""
    text = b"[" * depth + b"]" * depth
    value = loads_strict(text, max_depth=512)
    for _ in range(depth - 1):
        value = value[0]
    assert value == []
    with pytest.raises(JSONError, match="nesting deeper than 511 levels"):
        loads_strict(b"[" * 512 + b"]" * 512, max_depth=511)
