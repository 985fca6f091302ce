"""The request body's nesting cap is measured on the text, outside strings, before parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.jsonutil import depth_exceeds

# Strings made of what could fool a byte-level count: brackets, quotes, backslashes.
tricky = st.text(alphabet='[]{}"\\ a', max_size=6)
values = st.recursive(
    st.none() | st.integers() | tricky,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(tricky, children, max_size=3),
    max_leaves=20,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=500, deadline=None)
@given(values, st.booleans(), st.booleans(), st.integers(min_value=0, max_value=6))
def test_depth_is_measured_outside_strings(
    value: Any, ascii_only: bool, indent: bool, cap: int
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=1 if indent else None).encode()
    assert depth_exceeds(body, cap) == (_depth(value) > cap)


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b'[["\\\\"], "]]]]", "[[[["]', 2),  # an escaped backslash ends its string
        (b'[["\\"[[[["]]', 2),  # an escaped quote does not
        (b'{"a\\\\\\"[[": [[[]]]}', 4),  # a backslash pair, then an escaped quote
        (b"[" * 40 + b"]" * 40, 40),
        (b'["\\u005c", [[[]]]]', 4),
    ],
)
def test_escapes_and_runs(body: bytes, depth: int) -> None:
    assert json.loads(body) is not None
    assert depth_exceeds(body, depth - 1)
    assert not depth_exceeds(body, depth)
