"""A target that answers nonsense must give a report, never a crash of the scanner."""

from __future__ import annotations

import random

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.scanner.conftest import scan
from tests.scanner.servers import serve

BODIES = [
    (b"", "application/json"),
    (b"{", "application/json"),
    (b'{"items": 5, "id": null}', "application/json"),
    (b"[[[[[[[[[[[[]]]]]]]]]]]]", "application/json"),
    (b'{"id": {"nested": [1, 2]}, "owner": []}', "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b"<html>oops</html>", "text/html"),
    (b'"just a string"', "application/json"),
    (b'{"access_token": 12}', "application/json"),
]


def test_nonsense_answers_do_not_crash_the_scan() -> None:
    rng = random.Random(7)

    async def chaos(request: Request) -> Response:
        body, media = rng.choice(BODIES)
        status = rng.choice([200, 200, 201, 204, 301, 400, 401, 403, 404, 500])
        if status == 204:
            body = b""
        headers = {"location": "http://elsewhere.invalid/"} if status == 301 else {}
        return Response(body, status, headers=headers, media_type=media)

    app = Starlette(
        routes=[
            Route(
                "/{path:path}",
                chaos,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "OPTIONS"],
            )
        ]
    )
    with serve(app) as url:
        result = scan(url, unsafe=True, burst=True, examples=1)
    assert len(result.operations_exercised) >= 15
    assert result.problems  # no identity could log in: said, not hidden
    assert not [reason for reason in result.checks_skipped.values() if "internal error" in reason]
