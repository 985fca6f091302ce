"""Login flows: form bodies, tokens from a response header, custom apply formats."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.scanner.identities import load_identities, login_all
from bastion.scanner.probe import Probe
from bastion.scanner.redact import Redactor
from tests.scanner.servers import serve


async def login(request: Request) -> Response:
    form = await request.form()
    if form.get("user") == "carol" and form.get("pass") == "s3cret-pass":
        return JSONResponse({"ok": True}, headers={"X-Auth-Token": "tok-carol-123"})
    return JSONResponse({"ok": False}, 401)


def test_form_login_with_token_from_a_header(tmp_path: Path) -> None:
    ids = tmp_path / "ids.yaml"
    ids.write_text(
        "version: 1\nidentities:\n"
        "  - name: carol\n    roles: [user]\n    login:\n      path: /auth\n"
        "      form: {user: carol, pass: s3cret-pass}\n"
        "      token: {header: X-Auth-Token}\n"
        "      apply: {header: X-Session, format: 'Token {token}'}\n"
        "  - name: dave\n    login:\n      path: /auth\n      form: {user: dave, pass: nope}\n"
        "      token: {header: X-Auth-Token}\n",
        encoding="utf-8",
    )
    identities = load_identities(ids)
    redactor = Redactor()
    with serve(Starlette(routes=[Route("/auth", login, methods=["POST"])])) as url:

        async def run() -> None:
            async with Probe(url) as probe:
                await login_all(probe, identities, redactor)

        asyncio.run(run())
    carol, dave, anonymous = identities
    assert carol.headers == {"X-Session": "Token tok-carol-123"}
    assert carol.problem is None
    assert dave.problem == "login failed with HTTP 401"
    assert anonymous.headers == {}
    assert redactor.text("pass=s3cret-pass&t=tok-carol-123") == (
        "pass=${BASTION_CAROL_PASS}&t=${BASTION_CAROL_TOKEN}"
    )
