"""HTTP helpers shared by the endpoints: strict form parsing and OAuth JSON responses.

RFC 6749 §3.1/§3.2: parameters sent without a value are treated as omitted, and a
parameter must not appear more than once; bodies are ``application/x-www-form-urlencoded``
only, capped in size, valid UTF-8.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.oautherrors import InvalidRequest, OAuthError
from bastion.jsonutil import dumps

__all__ = [
    "JSON_NO_STORE",
    "Form",
    "json_response",
    "oauth_error_response",
    "parse_params",
    "read_form",
]

MAX_BODY = 64 * 1024
MULTI_VALUED = frozenset({"resource"})
JSON_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class Form(dict[str, str]):
    """Single-valued parameters plus the multi-valued ones (``resource``, RFC 8707)."""

    def __init__(self, single: dict[str, str], multi: dict[str, list[str]]) -> None:
        super().__init__(single)
        self.multi = multi

    def many(self, name: str) -> list[str]:
        return self.multi.get(name, [])


def parse_params(text: str) -> Form:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        raise InvalidRequest("too many or malformed parameters") from None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise InvalidRequest("parameters must not contain NUL")
        if value == "":
            continue
        if key in MULTI_VALUED:
            multi.setdefault(key, []).append(value)
            continue
        if key in single:
            raise InvalidRequest(f"parameter {key[:40]} is repeated")
        single[key] = value
    return Form(single, multi)


async def read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("content type must be application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise InvalidRequest("request body is too large")
    body = bytearray()  # extended in place: b"" += chunk copied the body each time
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidRequest("request body is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    return parse_params(text)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    merged = dict(JSON_NO_STORE)
    merged.update(headers or {})
    return Response(dumps(body), status_code=status, media_type="application/json", headers=merged)


def oauth_error_response(error: OAuthError) -> Response:
    body: dict[str, str] = {"error": error.code}
    if error.detail:
        body["error_description"] = error.detail
    return json_response(body, error.status, error.headers)
