"""A version's lifecycle as the gateway applies it: dates in UTC, restarts after the sunset,
who counts as calling a deprecated version, one Deprecation/Sunset per answer."""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from bastion.config.models import GatewayConfig, VersionConfig
from bastion.errors import Gone
from bastion.gateway.assembly import _version_policy
from bastion.gateway.server import create_gateway
from bastion.policies.versioning import VersionPolicy
from bastion.types import RequestContext, UpstreamResponse
from tests.support.context import request_context

SUNSET = "2026-11-29T00:00:00"  # no time zone: UTC, as the headers say
SUNSET_EPOCH = calendar.timegm((2026, 11, 29, 0, 0, 0))


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's local time is not UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _api(version: dict[str, Any] | None, name: str = "v1") -> Any:
    return SimpleNamespace(name=name, version=VersionConfig(**version) if version else None)


def _route(deprecated: bool = False) -> Any:
    return SimpleNamespace(deprecated=deprecated)


def _ctx() -> RequestContext:
    return request_context(path="/v1/items")


def _run(policy: VersionPolicy, ctx: RequestContext) -> None:
    asyncio.run(policy.on_request(ctx))


@pytest.mark.usefixtures("tokyo")
def test_a_sunset_without_a_time_zone_is_enforced_in_utc_as_announced() -> None:
    policy = _version_policy(_api({"sunset_at": SUNSET}), _route(), time.time, {})
    assert isinstance(policy, VersionPolicy)
    assert policy.sunset_at == SUNSET_EPOCH
    assert ("Sunset", "Sun, 29 Nov 2026 00:00:00 GMT") in policy.headers
    before = VersionPolicy(
        headers=policy.headers,
        sunset_at=policy.sunset_at,
        successor=None,
        clock=lambda: SUNSET_EPOCH - 1,
    )
    _run(before, _ctx())  # 9 hours "late" in Tokyo's local time: still served
    after = VersionPolicy(
        headers=policy.headers,
        sunset_at=policy.sunset_at,
        successor=None,
        clock=lambda: SUNSET_EPOCH,
    )
    with pytest.raises(Gone):
        _run(after, _ctx())


def test_a_deprecated_operation_still_starts_after_its_versions_sunset() -> None:
    """No configured deprecation date: 'since load' would come after the sunset."""
    api = _api({"sunset_at": "2026-06-01T00:00:00Z", "successor": "v2"})
    policy = _version_policy(api, _route(deprecated=True), lambda: SUNSET_EPOCH, {"v2": "/v2"})
    headers = dict(policy.headers)  # type: ignore[attr-defined]
    assert headers["Deprecation"] == f"@{calendar.timegm((2026, 6, 1, 0, 0, 0))}"
    assert headers["Link"] == '</v2>; rel="successor-version"'


def test_a_sunset_before_the_deprecation_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="sunset_at is before deprecated_at"):
        VersionConfig(deprecated_at="2027-01-01", sunset_at="2026-01-01")  # type: ignore[arg-type]


def test_an_unknown_successor_is_a_config_error() -> None:
    config: dict[str, Any] = {
        "version": 1,
        "upstreams": {"up": {"url": "http://127.0.0.1:1"}},
        "apis": [
            {
                "name": "v1",
                "upstream": "up",
                "routes": [{"path": "/v1/x", "methods": ["GET"], "public": True}],
            },
        ],
    }
    config["apis"][0]["version"] = {"successor": "v9"}
    with pytest.raises(ValidationError, match="unknown successor 'v9'"):
        GatewayConfig(**config)


@pytest.mark.parametrize(
    ("deprecated_at", "sunset_at", "marked"),
    [
        (None, None, False),  # only a successor named
        (SUNSET_EPOCH + 10, None, False),  # deprecated from a future date
        (None, SUNSET_EPOCH + 10, False),  # only a sunset to come
        (SUNSET_EPOCH - 10, None, True),
        (SUNSET_EPOCH, None, True),
    ],
)
def test_only_calls_to_a_deprecated_version_are_counted(
    deprecated_at: float | None, sunset_at: float | None, marked: bool
) -> None:
    """`bastion versions` lists who still calls a deprecated version, not every caller."""
    policy = VersionPolicy(
        headers=(),
        deprecated_at=deprecated_at,
        sunset_at=sunset_at,
        successor="v2",
        clock=lambda: SUNSET_EPOCH,
    )
    ctx = _ctx()
    _run(policy, ctx)
    assert ("deprecated" in ctx.audit) is marked


def test_the_upstreams_own_deprecation_and_sunset_give_way_to_the_gateways() -> None:
    """Two Deprecation (or Sunset) fields are an invalid value that clients discard."""
    policy = _version_policy(
        _api({"deprecated_at": "2026-01-01T00:00:00Z", "sunset_at": "2030-01-01T00:00:00Z"}),
        _route(),
        lambda: SUNSET_EPOCH,
        {},
    )
    response = UpstreamResponse(
        200,
        [
            ("Content-Type", "application/json"),
            ("deprecation", "@1600000000"),
            ("Sunset", "Wed, 01 Jan 2031 00:00:00 GMT"),
            ("Link", '</docs>; rel="help"'),
        ],
    )
    asyncio.run(policy.on_response(_ctx(), response))
    assert response.headers == [
        ("Content-Type", "application/json"),
        ("Link", '</docs>; rel="help"'),
    ]


def _deprecated_spec_gateway(tmp_path: Path, version: str) -> list[str]:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/old": {"get": {"deprecated": True, "responses": {"200": {"description": "ok"}}}},
            "/new": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    path = tmp_path / "bastion.yaml"
    path.write_text(
        "version: 1\nmode: development\n"
        "upstreams: {up: {url: 'http://127.0.0.1:9'}}\n"
        "apis:\n  - name: shop\n    upstream: up\n    openapi: spec.json\n"
        "    allow: authenticated\n"
        "    routes: [{path: /old, methods: [GET], public: true},"
        " {path: /new, methods: [GET], public: true}]\n" + version
    )
    return create_gateway(path).runtime.warnings


def test_a_deprecated_operation_without_a_date_is_a_startup_warning(tmp_path: Path) -> None:
    notes = [w for w in _deprecated_spec_gateway(tmp_path, "") if "deprecated-without-date" in w]
    assert len(notes) == 1  # /old only
    assert notes[0].startswith(f"{tmp_path / 'spec.json'}#/paths/~1old/get: warning:")
    assert "moves with every restart" in notes[0]
    dated = "    version: {deprecated_at: '2026-01-01T00:00:00Z'}\n"
    assert not [w for w in _deprecated_spec_gateway(tmp_path, dated) if "without-date" in w]
