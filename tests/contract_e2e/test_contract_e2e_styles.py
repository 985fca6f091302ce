"""A 3.0 and a 3.1 spec, both enforced THROUGH the gateway, one parameter of each style.

The echo upstream (tests/support/upstream.py) logs every request it receives, so each case
checks both sides: a valid request is forwarded as sent (path and query unchanged) and
answered 200; an invalid one is a 400 problem with the failing parameter's JSON pointer and
never reaches the upstream. Generated valid queries (every query style at once) are
forwarded with the same parameters and values. ``specs/styles_30.yaml`` and
``specs/styles_31.yaml`` describe the same API, the 3.0 one with its own spellings
(boolean ``exclusiveMinimum``, ``nullable``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from tests.contract_e2e.e2e_support import Client
from tests.support.procs import GatewayProc, Upstream, run_gateway, run_upstream

SPECS = Path(__file__).with_name("specs")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with run_upstream(tmp_path_factory.mktemp("styles-upstream")) as up:
        yield up


@pytest.fixture(scope="module", params=["3.0", "3.1"])
def styles_gateway(
    request: pytest.FixtureRequest, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    spec = SPECS / f"styles_{str(request.param).replace('.', '')}.yaml"
    config = f"""version: 1
mode: development
audit: {{sink: file, path: "{{AUDIT}}"}}
upstreams:
  echo:
    url: {upstream.url}
    timeout: {{connect: 2, read: 5, total: 10}}
apis:
  - name: styles
    upstream: echo
    openapi: "{spec}"
"""
    with run_gateway(config, tmp_path_factory.mktemp("styles-gw")) as gw:
        yield gw


@pytest.fixture
def client(styles_gateway: GatewayProc) -> Iterator[Client]:
    c = Client(styles_gateway.port)
    yield c
    c.close()


@dataclass(frozen=True)
class Case:
    style: str
    target: str  # path with query, exactly as sent
    pointer: str | None = None  # None: valid, else the pointer the 400 must name
    headers: dict[str, str] = field(default_factory=dict)
    body: object = None


CASES = [
    # path, style simple (array, not exploded)
    Case("simple", "/items/1,2,3"),
    Case("simple", "/items/1,x,3", "/path/ids/1"),
    Case("simple", "/items/1,2,3,4", "/path/ids"),
    # header, style simple (integer, exclusiveMinimum 0)
    Case("header simple", "/items/7", headers={"X-Limit": "50"}),
    Case("header simple", "/items/7", "/header/X-Limit", headers={"X-Limit": "0"}),
    Case("header simple", "/items/7", "/header/X-Limit", headers={"X-Limit": "many"}),
    # path, style label (array of enum)
    Case("label", "/labels/.red,blue"),
    Case("label", "/labels/red,blue", "/path/colors"),  # a label value starts with '.'
    Case("label", "/labels/.red,pink", "/path/colors/1"),
    # path, style matrix, exploded object
    Case("matrix", "/points/;x=3;y=-4"),
    Case("matrix", "/points/;x=3;y=north", "/path/point/y"),
    Case("matrix", "/points/;x=3", "/path/point/y"),
    # query, style form, exploded array
    Case("form explode", "/search?q=a&tag=red&tag=blue"),
    Case("form explode", "/search?q=a&tag=red&tag=Blue1", "/query/tag/1"),
    # query, style form, not exploded
    Case("form", "/search?q=a&ids=1,2,3"),
    Case("form", "/search?q=a&ids=1,0", "/query/ids/1"),
    # query, spaceDelimited
    Case("spaceDelimited", "/search?q=a&sp=1%202%203"),
    Case("spaceDelimited", "/search?q=a&sp=1%20two", "/query/sp/1"),
    # query, pipeDelimited
    Case("pipeDelimited", "/search?q=a&pp=1%7C2%7C3"),
    Case("pipeDelimited", "/search?q=a&pp=1%7C2%7C3%7C4", "/query/pp"),
    # query, deepObject
    Case("deepObject", "/search?q=a&filter%5Bcolor%5D=red&filter%5Bsize%5D=3"),
    Case("deepObject", "/search?q=a&filter%5Bcolor%5D=pink", "/query/filter/color"),
    Case("deepObject", "/search?q=a&filter%5Bsize%5D=11", "/query/filter/size"),
    # required query parameter, unknown query parameter, repeated primitive (pollution)
    Case("form", "/search", "/query/q"),
    Case("form", "/search?q=a&debug=1", "/query/debug"),
    Case("form", "/search?q=a&q=b", "/query/q"),
    # body: 3.0 nullable / 3.1 type list, exclusiveMinimum spellings, injected maxLength
    Case("body", "/notes", body={"text": "hi", "rating": 5, "parent": None}),
    Case("body", "/notes", body={"text": "hi", "rating": 0.5, "parent": 3}),
    Case("body", "/notes", "/body/rating", body={"text": "hi", "rating": 0}),
    Case("body", "/notes", "/body/parent", body={"text": "hi", "rating": 1, "parent": "x"}),
    Case("body", "/notes", "/body/text", body={"text": "t" * 10_001, "rating": 1}),
    Case("body", "/notes", "/body/admin", body={"text": "hi", "rating": 1, "admin": True}),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.style}:{c.target[:40]}" for c in CASES])
def test_parameter_styles_are_enforced(client: Client, upstream: Upstream, case: Case) -> None:
    upstream.clear()
    method = "GET" if case.body is None else "POST"
    answer = client.request(method, case.target, json_body=case.body, headers=case.headers)
    received = upstream.received()
    if case.pointer is None:
        assert answer.status == 200, answer.describe()
        assert len(received) == 1
        assert received[0]["raw_path"] == case.target  # forwarded exactly as sent
        if case.body is not None:
            assert json.loads(received[0]["body"]) == case.body
        for name, value in case.headers.items():
            assert [name.lower(), value] in [[k.lower(), v] for k, v in received[0]["headers"]]
        return
    assert answer.contract_refusal, answer.describe()
    pointers = [e["pointer"] for e in answer.json["errors"]]
    assert case.pointer in pointers, answer.describe()
    assert not received, received


def _serialize(draw: dict[str, Any]) -> str:
    """Serialise drawn values by each parameter's style (OpenAPI "Style Examples" table)."""
    parts = [f"q={quote(draw['q'], safe='')}"]
    parts += [f"tag={t}" for t in draw.get("tag", ())]  # form, explode: tag=a&tag=b
    if "ids" in draw:  # form, not exploded: ids=1,2
        parts.append("ids=" + ",".join(map(str, draw["ids"])))
    if "sp" in draw:  # spaceDelimited: sp=1%202
        parts.append("sp=" + quote(" ".join(map(str, draw["sp"])), safe=""))
    if "pp" in draw:  # pipeDelimited: pp=1%7C2
        parts.append("pp=" + quote("|".join(map(str, draw["pp"])), safe=""))
    for key, value in draw.get("filter", {}).items():  # deepObject: filter[color]=red
        parts.append(f"{quote(f'filter[{key}]', safe='')}={value}")
    return "/search?" + "&".join(parts)


_ints = st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=3)
SEARCHES = st.fixed_dictionaries(
    {"q": from_schema({"type": "string", "minLength": 1, "maxLength": 20})},
    optional={
        "tag": st.lists(st.from_regex(r"\A[a-z]{1,10}\Z"), min_size=1, max_size=3),
        "ids": _ints,
        "sp": st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=3),
        "pp": st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=3),
        "filter": st.fixed_dictionaries(
            {},
            optional={
                "color": st.sampled_from(["red", "green", "blue"]),
                "size": st.integers(1, 10),
            },
        ),
    },
)


@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(draw=SEARCHES)
def test_generated_valid_queries_are_accepted_and_forwarded(
    styles_gateway: GatewayProc, upstream: Upstream, draw: dict[str, Any]
) -> None:
    target = _serialize(draw)
    upstream.clear()
    client = Client(styles_gateway.port)
    try:
        answer = client.request("GET", target)
    finally:
        client.close()
    assert answer.status == 200, f"{target}: {answer.describe()}"
    received = upstream.received()
    assert len(received) == 1
    # Same parameters, same values. The raw bytes may differ: the upstream client re-quotes
    # escapes the query does not need (%3F -> ?, %2C -> ,); &, =, + and % stay escaped.
    path, _, query = target.partition("?")
    assert received[0]["path"] == path
    assert parse_qsl(received[0]["query"], keep_blank_values=True) == parse_qsl(
        query, keep_blank_values=True
    )


PATHS = st.one_of(
    st.lists(st.integers(1, 100), min_size=1, max_size=3).map(
        lambda ids: "/items/" + ",".join(map(str, ids))  # simple
    ),
    st.lists(st.sampled_from(["red", "green", "blue"]), min_size=1, max_size=3).map(
        lambda colors: "/labels/." + ",".join(colors)  # label
    ),
    st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)).map(
        lambda p: f"/points/;x={p[0]};y={p[1]}"  # matrix, exploded object
    ),
)


@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(target=PATHS)
def test_generated_valid_path_parameters_are_accepted_and_forwarded(
    styles_gateway: GatewayProc, upstream: Upstream, target: str
) -> None:
    upstream.clear()
    client = Client(styles_gateway.port)
    try:
        answer = client.request("GET", target)
    finally:
        client.close()
    assert answer.status == 200, f"{target}: {answer.describe()}"
    assert [r["path"] for r in upstream.received()] == [target]


def test_repeated_property_in_an_exploded_object_parameter_is_refused(
    client: Client, upstream: Upstream
) -> None:
    upstream.clear()
    answer = client.request("GET", "/points/;x=5000;y=4;x=3")
    assert not upstream.received(), "forwarded: the upstream may read x=5000 (max 1000)"
    assert answer.contract_refusal, answer.describe()
