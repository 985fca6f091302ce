"""RFC 9457 problem details: the one place where errors become HTTP responses."""

from __future__ import annotations

from typing import Any

from bastion.errors import BastionError
from bastion.jsonutil import dumps
from bastion.types import Response

__all__ = ["PROBLEM_CONTENT_TYPE", "render_problem"]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "https://bastion.dev/problems/"


def render_problem(
    error: BastionError, *, request_id: str, instance: str | None = None
) -> Response:
    """Render ``error`` as ``application/problem+json``.

    Only what the error class declares public is included: status, code, title, the safe
    ``detail`` and extensions. ``reason`` (the precise cause) never leaves the gateway.
    """
    body: dict[str, Any] = {
        "type": _TYPE_BASE + error.code.replace("_", "-"),
        "title": error.title,
        "status": error.status,
        "code": error.code,
    }
    if error.detail:
        body["detail"] = error.detail
    if instance:
        body["instance"] = instance
    body["request_id"] = request_id
    for key, value in error.extensions.items():
        if key not in body:
            body[key] = value
    headers = [("content-type", PROBLEM_CONTENT_TYPE)]
    headers.extend((name.lower(), value) for name, value in error.headers.items())
    return Response(status=error.status, headers=headers, body=dumps(body))
