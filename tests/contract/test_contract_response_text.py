"""A filtered answer says exactly what the contract checked (``bastion.contract.rewrite``).

The checks read the document as parsed: the last occurrence of a repeated key, numbers as
doubles. What leaves must say the same to every client, whichever occurrence its parser
keeps, and each number must read as the upstream wrote it (big integers, long decimals).
"""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bastion.contract import ContractLimits, OperationContract, compile_operation, load_spec
from bastion.contract.rewrite import response_text
from tests.contract.contract_helpers import SHOP, UUID, contract, minimal, write_spec

USER = b'{"id": "%s", "email": "ada@example.com", "name": "Ada"' % UUID.encode()


def _things() -> OperationContract:
    """GET /things: ``keep`` holds anything, ``n`` a number; other keys are removed."""
    schema = {"type": "object", "properties": {"keep": {}, "n": {"type": "number"}}}
    paths = {
        "/things": {
            "get": {
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": schema}},
                    }
                }
            }
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(write_spec(Path(tmp), minimal(paths, "3.1.0")))
    return compile_operation(spec, spec.operation("GET", "/things"), ContractLimits())


THINGS = _things()


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"repeated key in {keys}"
    return dict(pairs)


def _read(text: bytes) -> Any:
    """What an exact client reads: every key once, decimals and integers exact."""
    return json.loads(text, parse_float=Decimal, object_pairs_hook=_unique)


@pytest.mark.parametrize(
    "raw",
    [
        USER + b', "role": "admin", "role": "customer"}',  # as Python writes it
        USER.replace(b": ", b":").replace(b", ", b",") + b',"role":"admin","role":"customer"}',
        USER + b', "role": "ad\\u006din", "role": "customer"}',  # with an escape
    ],
)
def test_a_repeated_key_leaves_once_with_the_value_that_was_checked(raw: bytes) -> None:
    out = contract(SHOP, "POST", "/users").filter_response(201, "application/json", raw)
    assert _read(out.body)["role"] == "customer"
    assert out.changed is True
    assert out.removed == ()


def test_a_text_that_proves_itself_leaves_byte_for_byte() -> None:
    pretty = USER + b', "website": "https://example.com:8443/a:b"\n}'
    out = contract(SHOP, "POST", "/users").filter_response(201, "application/json", pretty)
    assert out.body is pretty
    assert out.changed is False


@pytest.mark.parametrize(
    "number",
    [
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        "1234567890123456.789",
        "0.1000000000000000055511151231257827",
        "1.23456789e-320",  # subnormal: the double keeps 5 digits
    ],
)
def test_numbers_a_double_cannot_hold_leave_as_written(number: str) -> None:
    raw = b'{"n": %s, "internal": "x"}' % number.encode()
    out = THINGS.filter_response(200, "application/json", raw)
    assert out.removed == ("/internal",)
    assert out.body == b'{"n":%s}' % number.encode()


@pytest.mark.parametrize(
    "number", ["9223372036854775807", "18446744073709551615", "0.30000000000000004", "1e-320"]
)
def test_numbers_that_survive_a_double_are_written_from_it(number: str) -> None:
    raw = b'{"n": %s, "internal": "x"}' % number.encode()
    out = THINGS.filter_response(200, "application/json", raw)
    assert _read(out.body) == {"n": _read(number.encode())}


def test_long_digit_runs_in_strings_change_nothing() -> None:
    kept = {"card": "4111 1111 1111 1111", "v": "2026.11.28.1234567890"}
    raw = json.dumps({"keep": kept, "x": 1}).encode()
    out = THINGS.filter_response(200, "application/json", raw)
    assert _read(out.body) == {"keep": kept}


_KEYS = st.sampled_from(["a", "b", "n", "keep", "x:y", "é"])
_NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(
        lambda d: format(d, "f") if "." in format(d, "f") else format(d, "f") + ".0"
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


class Number(str):
    """A number's text, written as it is."""


def _value() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.text(max_size=8), _NUMBERS.map(Number))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(st.tuples(_KEYS, inner), max_size=4),  # object: pairs, keys may repeat
        ),
        max_leaves=12,
    )


def _write(value: Any, spaced: bool) -> str:
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value) and value:
        sep = ", " if spaced else ","
        colon = ": " if spaced else ":"
        return "{" + sep.join(f"{json.dumps(k)}{colon}{_write(v, spaced)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(v, spaced) for v in value) + "]"
    return json.dumps(value, ensure_ascii=spaced)


def _exact(value: Any) -> Any:
    """The value an exact client reads, the last occurrence of a key winning."""
    if isinstance(value, Number):
        return _read(value.encode())
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return {k: _exact(v) for k, v in value}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(_value(), st.booleans(), st.booleans())
@example([("a", Number("123456789012345678901234567890"))], False, True)
def test_what_leaves_reads_exactly_as_the_document_checked(
    keep: Any, spaced: bool, extra: bool
) -> None:
    """Whatever the text: keys once, last occurrence, numbers as written."""
    text = '{"keep": ' + _write(keep, spaced) + (', "drop": 1' if extra else "") + "}"
    out = THINGS.filter_response(200, "application/json", text.encode())
    assert _read(out.body) == {"keep": _exact(keep)}


def test_response_text_writes_a_document_too_deep_for_orjson_with_exact_numbers() -> None:
    deep = b'{"a": ' * 300 + b"123456789012345678901234567890" + b"}" * 300
    document = json.loads(deep)
    with pytest.raises(RecursionError):
        response_text(deep, document, removed=True)
