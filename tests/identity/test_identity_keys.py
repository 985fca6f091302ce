"""ES256 key rotation: publish next, sign with next, retire after the longest lifetime."""

from __future__ import annotations

import pytest
from joserfc import jws

from tests.identity.harness import Live, seed

pytestmark = pytest.mark.rfc("7517-5")


async def _jwks_kids(live: Live) -> list[str]:
    async with live.http.get(live.base + "/.well-known/jwks.json") as resp:
        return sorted(k["kid"] for k in (await resp.json())["keys"])


async def _token(live: Live) -> str:
    status, body = await live.token("svc", grant_type="client_credentials")
    assert status == 200
    return str(body["access_token"])


def _kid(token: str) -> str:
    return str(jws.extract_compact(token.encode()).protected["kid"])


async def test_rotation_lifecycle(live_sqlite: Live) -> None:
    live = live_sqlite
    await seed(live)
    keys = live.service.keys
    with pytest.raises(RuntimeError, match="published long enough"):
        await keys.rotate()
    live.clock.advance(live.service.settings.keys.publish_ahead)
    first = await _token(live)
    published = await _jwks_kids(live)
    assert len(published) == 2  # active + next, published before it signs
    assert _kid(first) in published
    next_kid = next(k for k in published if k != _kid(first))
    result = await keys.rotate()
    assert result.active_kid == next_kid
    second = await _token(live)
    assert _kid(second) == next_kid
    assert sorted([_kid(first), next_kid, result.next_kid]) == await _jwks_kids(live)
    assert live.service.tokens.verify(first, live.clock.now) is not None  # still verifies

    live.clock.advance(live.service.settings.tokens.access_token_ttl + 61)
    assert await keys.maintain() is None
    assert _kid(first) not in await _jwks_kids(live)


async def test_scheduled_rotation_after_interval(live_sqlite: Live) -> None:
    live = live_sqlite
    await seed(live)
    before = _kid(await _token(live))
    live.clock.advance(live.service.settings.keys.rotation_interval)
    rotated = await live.service.keys.maintain()
    assert rotated is not None
    assert _kid(await _token(live)) == rotated.active_kid != before


async def test_private_keys_are_sealed_at_rest(live_sqlite: Live) -> None:
    from sqlalchemy import select

    from bastion.identity.schema import signing_keys

    async with live_sqlite.service.db.read() as conn:
        rows = list(await conn.execute(select(signing_keys.c.sealed_private)))
    assert rows
    assert all(r.sealed_private.startswith("v1.") for r in rows)
    assert all("PRIVATE KEY" not in r.sealed_private for r in rows)
