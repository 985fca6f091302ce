"""Fields read for decisions (owner rules, login lockout, rate-limit keys) are read the way
the upstream reads them, or refused: never silently absent."""

from __future__ import annotations

import pytest

from bastion.decisions import MISSING, parse_field_ref
from bastion.errors import BadRequest, UnsupportedMediaType
from bastion.policies.request_fields import request_value
from bastion.types import RequestContext
from tests.support.context import request_context


def _ctx(
    body: bytes | None = None,
    content_type: str | None = None,
    query: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
) -> RequestContext:
    pairs = [*headers, *([("content-type", content_type)] if content_type else [])]
    return request_context(method="POST", path="/login", query=query, headers=pairs, body=body)


USERNAME = parse_field_ref("body.username")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"username": "alice"}', "application/json"),
        (b'{"username": "alice"}', "application/vnd.api+json; charset=utf-8"),
        (b"username=alice&password=x", "application/x-www-form-urlencoded"),
    ],
)
def test_json_and_form_bodies_are_read(body: bytes, content_type: str) -> None:
    assert request_value(_ctx(body, content_type), USERNAME) == "alice"


def test_absent_is_missing() -> None:
    assert request_value(_ctx(None, "application/json"), USERNAME) is MISSING
    assert request_value(_ctx(b'{"user": "alice"}', "application/json"), USERNAME) is MISSING
    assert request_value(_ctx(), parse_field_ref("query.account")) is MISSING
    assert request_value(_ctx(), parse_field_ref("header.x-account")) is MISSING


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b'{"username": "alice", "UserName": "bob"}', "application/json", BadRequest),
        (b'{"username": "alice", "username": "bob"}', "application/json", BadRequest),
        (b"username=alice&username=bob", "application/x-www-form-urlencoded", BadRequest),
        (b"username=%ff", "application/x-www-form-urlencoded", BadRequest),
        (b"{not json", "application/json", BadRequest),
        (b'{"username": "alice"}', "text/plain", UnsupportedMediaType),
        (b'{"username": "alice"}', None, UnsupportedMediaType),
    ],
)
def test_what_the_upstream_could_read_differently_is_refused(
    body: bytes, content_type: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        request_value(_ctx(body, content_type), USERNAME)


def test_ambiguous_query_and_header_fields_are_refused() -> None:
    account = parse_field_ref("query.account")
    assert request_value(_ctx(query=b"account=bob&x=1"), account) == "bob"
    for query in (b"account=bob&account=eve", b"account=bob;account=eve", b"x=1;account=eve"):
        with pytest.raises(BadRequest):
            request_value(_ctx(query=query), account)
    with pytest.raises(BadRequest):
        request_value(_ctx(headers=(("x-a", "1"), ("x-a", "2"))), parse_field_ref("header.x-a"))


@pytest.mark.parametrize(
    ("ref", "query", "body"),
    [
        # ASP.NET Core binds query names case-insensitively (the first copy wins)
        ("query.account", b"Account=u-alice&account=u-bob", None),
        # PHP reads '.', ' ' and '[' in names as '_' (the last copy wins)
        ("query.account_id", b"account_id=u-bob&account.id=u-alice", None),
        ("query.account_id", b"account_id=u-bob&account%20id=u-alice", None),
        ("body.account_id", b"", b"account_id=u-bob&account.id=u-alice"),
    ],
)
def test_a_field_also_given_under_another_spelling_is_refused(
    ref: str, query: bytes, body: bytes | None
) -> None:
    content_type = "application/x-www-form-urlencoded" if body else None
    with pytest.raises(BadRequest, match="spelling"):
        request_value(_ctx(body, content_type, query=query), parse_field_ref(ref))
    if query:  # the spelling read alone is read; another spelling alone is refused too
        name = ref.split(".", 1)[1].encode()
        exact = [p for p in query.split(b"&") if p.split(b"=")[0] == name]
        other = [p for p in query.split(b"&") if p.split(b"=")[0] != name]
        assert request_value(_ctx(query=exact[0]), parse_field_ref(ref)) == "u-bob"
        with pytest.raises(BadRequest, match="spelling"):
            request_value(_ctx(query=other[0]), parse_field_ref(ref))
