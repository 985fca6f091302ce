"""Each detector fires on its attack pattern and stays silent on normal traffic
(synthetic event streams, injected time, no sleeps)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.observability.config import DetectorsConfig
from bastion.observability.detectors import build_detectors, object_id, run_pass
from bastion.observability.windows import LocalWindows
from tests.observability.streams import normal_traffic, request


class Harness:
    def __init__(self, **overrides: Any) -> None:
        self.detectors = build_detectors(DetectorsConfig(**overrides))
        self.windows = LocalWindows()

    async def feed(self, events: list[dict[str, Any]], now: float, per_pass: int = 50) -> set[str]:
        fired: set[str] = set()
        for start in range(0, len(events), per_pass):
            findings = await run_pass(
                self.detectors, events[start : start + per_pass], self.windows, now
            )
            fired |= {f"{f.detector} {f.subject}" for f in findings}
        return fired


async def test_normal_traffic_raises_nothing() -> None:
    harness = Harness()
    fired: set[str] = set()
    for minute in range(10):
        fired |= await harness.feed(normal_traffic(), now=1000.0 + minute * 60)
    assert fired == set()


async def test_auth_failure_burst_per_ip_fires_and_per_principal() -> None:
    harness = Harness()
    burst = [
        request(
            ip="203.0.113.9", principal=None, status=401, reason="jwt.bad_signature", route=None
        )
        for _ in range(25)
    ]
    refusals = [request(principal="u-mallory", status=403, reason="scope.missing")] * 12
    fired = await harness.feed(normal_traffic() + burst + refusals, now=5000.0)
    assert "auth_failure_ip ip:203.0.113.9" in fired
    assert "auth_failure_principal principal:u-mallory" in fired
    assert not any("10.0." in f for f in fired)


async def test_auth_failures_spread_over_time_stay_below_the_window() -> None:
    harness = Harness()
    fired: set[str] = set()
    for second in range(0, 600, 10):  # one failure every 10 s: 6 per minute < 20
        fired |= await harness.feed(
            [request(ip="203.0.113.9", principal=None, status=401, route=None)],
            now=5000.0 + second,
        )
    assert fired == set()


async def test_enumeration_fires_on_bola_probing_only() -> None:
    harness = Harness()
    probe = [
        request(
            principal="u-eve", ip="192.0.2.66", path=f"/orders/{n}", status=404 if n % 5 else 200
        )
        for n in range(1000, 1040)
    ]
    fired = await harness.feed(normal_traffic() + probe, now=7000.0)
    assert "enumeration principal:u-eve" in fired
    assert [f for f in fired if f.startswith("enumeration")] == ["enumeration principal:u-eve"]


async def test_many_objects_all_allowed_is_not_enumeration() -> None:
    harness = Harness()
    browsing = [request(principal="u-admin", path=f"/orders/{n}") for n in range(100)]
    assert await harness.feed(browsing, now=7000.0) == set()


def test_object_id_from_params_or_path() -> None:
    assert object_id(request(path="/orders/42")) == "/orders/{order_id}|42"
    assert object_id(request(params={"order_id": "7"})) == "/orders/{order_id}|7"
    assert object_id(request(route="/orders", path="/orders")) is None
    assert object_id(request(route="/a/{x}/b/{y}", path="/a/1/b/2")) == "/a/{x}/b/{y}|1,2"


async def test_credential_stuffing_with_login_keys_and_without() -> None:
    harness = Harness()
    stuffing = [
        request(
            ip="203.0.113.50", principal=None, route="/login", path="/login", status=401,
            login="failure", login_key=f"login:shop:{n:032x}",
        )
        for n in range(12)
    ]  # fmt: skip
    one_user = [
        request(
            ip="198.51.100.3", principal=None, route="/login", path="/login", status=401,
            login="failure", login_key="login:shop:" + "a" * 32,
        )
        for _ in range(12)
    ]  # fmt: skip
    fired = await harness.feed(stuffing + one_user, now=9000.0)
    assert "credential_stuffing ip:203.0.113.50" in fired
    assert not any("198.51.100.3" in f for f in fired)
    # Without login_key in events: failed logins per IP are counted.
    bare = [
        request(ip="203.0.113.51", principal=None, route="/login", path="/login", status=401,
                login="failure")
        for _ in range(10)
    ]  # fmt: skip
    assert "credential_stuffing ip:203.0.113.51" in await Harness().feed(bare, now=9000.0)


async def test_scraping_fires_far_above_own_baseline_not_on_steady_volume() -> None:
    harness = Harness(scraping={"interval": 60, "min_requests": 100, "factor": 5})
    fired: set[str] = set()
    for minute in range(6):  # 150 requests a minute, steadily: a busy but normal client
        fired |= await harness.feed(
            [request(principal="u-bot", path="/orders/1")] * 150, now=10_000.0 + minute * 60
        )
    assert fired == set()
    burst = [request(principal="u-bot", path="/orders/1")] * 1200
    assert "scraping principal:u-bot" in await harness.feed(burst, now=10_000.0 + 6 * 60)


async def test_scraping_needs_history_before_firing() -> None:
    harness = Harness()
    burst = [request(principal="u-new", path="/orders/1")] * 2000
    assert await harness.feed(burst, now=10_000.0) == set()


async def test_upstream_5xx_spike() -> None:
    harness = Harness()
    errors = [
        request(principal="u-1", status=502, upstream="billing", reason="upstream.error")
    ] * 30
    ok = [request(principal="u-1", upstream="billing")] * 30
    fired = await harness.feed(normal_traffic() + ok + errors, now=11_000.0)
    assert "upstream_5xx upstream:billing" in fired
    assert not any("upstream:shop" in f for f in fired)


async def test_a_few_5xx_among_many_requests_is_not_a_spike() -> None:
    harness = Harness()
    events = [request(principal="u-1")] * 500 + [request(principal="u-1", status=500)] * 25
    assert await harness.feed(events, now=11_000.0) == set()


async def test_data_exposure_event_alerts() -> None:
    harness = Harness()
    leaked = request(
        data_exposure_suspected=[{"pointer": "/card", "kind": "pan", "filtered": False}]
    )
    fired = await harness.feed([*normal_traffic(2, 3), leaked], now=12_000.0)
    assert fired == {"data_exposure route:shop /orders/{order_id}"}


async def test_one_token_from_many_ips() -> None:
    harness = Harness()
    shared = [
        request(principal="u-carol", credential_id="jti-1", ip=f"100.64.0.{n}") for n in range(8)
    ]
    roaming = [request(principal="u-dave", ip=f"100.65.0.{n % 2}") for n in range(20)]
    fired = await harness.feed(shared + roaming, now=13_000.0)
    assert fired == {"token_many_ips credential:jti-1"}


@pytest.mark.parametrize("name", ["enumeration", "scraping", "token_many_ips"])
def test_detectors_can_be_disabled(name: str) -> None:
    names = {d.name for d in build_detectors(DetectorsConfig(**{name: {"enabled": False}}))}
    assert name not in names
    assert build_detectors(DetectorsConfig(enabled=False)) == []
