"""The monitor in one process: metrics exposition (also summed over worker processes),
playbooks (block, revoke, throttle, dry run; audited), alert dedup and rate limit, and
alert sinks (signed webhook, Slack format, SMTP against a local fake server)."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bastion.observability.alerts import (
    SIGNATURE_HEADER,
    Alert,
    AlertDispatcher,
    slack_payload,
    verify_signature,
)
from bastion.observability.audit import AuditLog, capture_audit
from bastion.observability.config import AlertsConfig, MonitoringConfig, SinkConfig
from bastion.observability.metrics import RequestMetrics, SnapshotDir, render
from bastion.observability.monitor import Monitor
from bastion.state.memory import MemoryStateStore
from tests.observability.receiver import serve
from tests.observability.streams import normal_traffic, request


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def make_monitor(tmp_path: Path, clock: Clock, **config: Any) -> tuple[Monitor, AuditLog]:
    audit = AuditLog(sink="stdout", stream=io.BytesIO())
    settings = MonitoringConfig.model_validate(
        {"metrics_options": {"multiprocess_dir": str(tmp_path / "m")}, **config}
    )
    store = MemoryStateStore(clock=clock)
    return Monitor(settings, store=store, audit=audit, clock=clock), audit


def test_metrics_by_route_status_reason_latency_split_auth_and_deprecation() -> None:
    metrics = RequestMetrics()
    metrics.observe(request(status=200))
    metrics.observe(request(status=200, total_ms=12.0, upstream_ms=10.0))
    metrics.observe(request(status=401, principal=None, reason="jwt.expired", upstream=None))
    metrics.observe(request(status=429, reason="ratelimit.exceeded", upstream=None))
    metrics.observe(request(status=200, deprecated=True))
    metrics.observe({"event": "admin_action", "action": "block"})
    got = samples(render(lambda: metrics))
    route = (("api", "shop"), ("route", "/orders/{order_id}"))
    key = (("decision", "allow"), ("reason", "allowed"), ("status", "200"))
    assert got[("bastion_requests_total", tuple(sorted(route + key)))] == 3
    assert got[("bastion_auth_failures_total", (("reason", "jwt.expired"),))] == 1
    assert got[("bastion_rate_limited_total", route)] == 1
    assert got[("bastion_deprecated_calls_total", route)] == 1
    assert got[("bastion_events_total", (("event", "admin_action"),))] == 1
    # gateway overhead = total - upstream: 0.5 ms, 2 ms; upstream 2 ms and 10 ms
    overhead = ("bastion_gateway_overhead_seconds_bucket", (("api", "shop"), ("le", "0.0025")))
    assert got[overhead] == 5  # every request: 0.5, 2 or 2.5 ms in the gateway
    upstream_le_2_5ms = (
        "bastion_upstream_seconds_bucket",
        (("api", "shop"), ("le", "0.0025"), ("upstream", "shop")),
    )
    assert got[upstream_le_2_5ms] == 2
    assert got[("bastion_upstream_seconds_count", (("api", "shop"), ("upstream", "shop")))] == 3


def test_metrics_of_several_worker_processes_add_up(tmp_path: Path) -> None:
    directory = tmp_path / "multi"
    workers = [SnapshotDir(directory, pid=pid) for pid in (101, 102, 103)]
    for n, snapshot in enumerate(workers):
        metrics = RequestMetrics()
        for _ in range(n + 1):
            metrics.observe(request())
        snapshot.write(metrics)
    live = RequestMetrics()
    live.observe(request(status=404))
    merged = RequestMetrics()
    merged.merge(live.snapshot())
    for other in SnapshotDir(directory, pid=103).others():  # worker 103 serves the scrape
        merged.merge(other)
    merged_totals = merged.totals()
    assert merged_totals["requests"] == 1 + 1 + 2  # its own live numbers + 101 + 102
    assert merged_totals["top_principals"][0] == {"value": "u-alice", "requests": 4, "denied": 1}


async def test_observe_never_raises_and_queues_boundedly(tmp_path: Path) -> None:
    monitor, _ = make_monitor(tmp_path, Clock(), detectors={"queue_size": 100})
    monitor.observe({"event": "request", "status": "weird", "total_ms": "x"})
    monitor.observe({})
    monitor.observe({"event": "request", "status": "x", "upstream": "u", "upstream_ms": 1.0})
    for _ in range(150):
        monitor.observe(request())
    monitor.account()
    assert monitor.metrics.counters["bastion_monitor_dropped_events"][()] == 53
    assert monitor.metrics.totals()["requests"] == 99  # 97 + the two odd request events


def test_observe_is_cheap(tmp_path: Path) -> None:
    """Not a timing assertion: reports the per-event cost measured (see docs/monitoring.md)."""
    monitor, _ = make_monitor(tmp_path, Clock(), detectors={"queue_size": 1_000_000})
    events = normal_traffic(20, 50)
    started = time.perf_counter()
    for event in events * 10:
        monitor.observe(event)
    per_event = (time.perf_counter() - started) / (len(events) * 10)
    started = time.perf_counter()
    monitor.account()
    aggregate = (time.perf_counter() - started) / (len(events) * 10)
    print(f"observe: {per_event * 1e6:.2f} µs/event; background aggregation "
          f"{aggregate * 1e6:.2f} µs/event")  # fmt: skip
    assert monitor.metrics.totals()["requests"] == len(events) * 10


async def test_playbook_blocks_principal_with_expiry_and_audits(tmp_path: Path) -> None:
    clock = Clock()
    monitor, audit = make_monitor(
        tmp_path,
        clock,
        detectors={"enumeration": {"distinct_objects": 10}},
        playbooks=[{"name": "bola", "when": ["enumeration"], "actions": ["block_principal",
                                                                        "revoke_principal"],
                    "duration": 300}],
    )  # fmt: skip
    with capture_audit(audit) as events:
        for n in range(12):
            monitor.observe(request(principal="u-eve", path=f"/orders/{500 + n}", status=404))
        alerts = await monitor.process_pending()
    assert [a.detector for a in alerts] == ["enumeration"]
    assert [(a["action"], a["outcome"]) for a in alerts[0].actions] == [
        ("block_principal", "done"),
        ("revoke_principal", "done"),
    ]
    mirror = monitor.store.mirror
    assert mirror.is_blocked("principal", "u-eve", clock.now) is not None
    assert mirror.subject_not_before("u-eve") == clock.now
    assert mirror.is_blocked("principal", "u-eve", clock.now + 301) is None  # it expires
    actions = [e for e in events if e["event"] == "incident_action"]
    assert [a["action"] for a in actions] == ["block_principal", "revoke_principal"]
    assert actions[0]["actor"] == "playbook:bola"
    assert actions[0]["evidence"]["distinct_objects"] == 12
    assert "u-eve" in actions[0]["why"]
    assert [e["detector"] for e in events if e["event"] == "alert"] == ["enumeration"]
    recent = await monitor.incidents.recent()
    assert recent[0]["subject"] == "principal:u-eve"


async def test_dry_run_and_throttle(tmp_path: Path) -> None:
    clock = Clock()
    monitor, audit = make_monitor(
        tmp_path,
        clock,
        playbooks=[
            {"name": "watch", "when": ["auth_failure_ip"], "actions": ["block_ip"],
             "dry_run": True},
            {"name": "slow", "when": ["auth_failure_ip"], "actions": ["throttle"],
             "throttle_duration": 20},
        ],
    )  # fmt: skip
    with capture_audit(audit) as events:
        for _ in range(25):
            monitor.observe(request(ip="203.0.113.4", principal=None, status=401, route=None))
        alerts = await monitor.process_pending()
    outcomes = [(a["action"], a["outcome"]) for a in alerts[0].actions]
    assert outcomes == [("block_ip", "dry_run"), ("throttle", "done")]
    entry = monitor.store.mirror.is_blocked("ip", "203.0.113.4", clock.now)
    assert entry is not None
    assert entry.until == clock.now + 20
    assert [e["dry_run"] for e in events if e["event"] == "incident_action"] == [True, False]


async def test_an_ipv6_client_rotating_addresses_is_detected_and_blocked_as_its_64(
    tmp_path: Path,
) -> None:
    """Each failure from another address of one /64: the audit events' ``client_net``
    makes them one client, and the playbook blocks the whole network."""
    clock = Clock()
    monitor, _ = make_monitor(
        tmp_path,
        clock,
        playbooks=[{"name": "shut", "when": ["auth_failure_ip"], "actions": ["block_ip"]}],
    )
    for n in range(25):
        monitor.observe(
            request(
                ip=f"2001:db8:7:1::{n + 1:x}",
                client_net="2001:db8:7:1::/64",
                principal=None,
                status=401,
                route=None,
            )
        )
    alerts = await monitor.process_pending()
    assert [(a.detector, a.subject) for a in alerts] == [
        ("auth_failure_ip", "ip:2001:db8:7:1::/64")
    ]
    mirror = monitor.store.mirror
    assert mirror.is_blocked("ip", "2001:db8:7:1:ffff::1", clock.now) is not None
    assert mirror.is_blocked("ip", "2001:db8:7:2::1", clock.now) is None


def test_audit_events_name_an_ipv6_clients_network() -> None:
    from bastion.observability.audit import event_from_context
    from tests.support.context import request_context

    def event(address: str, prefix: int = 64) -> dict[str, Any]:
        return event_from_context(request_context(client_ip=address), 0.0, prefix)

    assert event("2001:db8:7:1::9")["client_net"] == "2001:db8:7:1::/64"
    assert event("2001:db8:7:1::9", 48)["client_net"] == "2001:db8:7::/48"
    assert "client_net" not in event("2001:db8:7:1::9", 128)
    assert "client_net" not in event("198.51.100.7")


async def test_alerts_are_deduplicated_and_rate_limited(tmp_path: Path) -> None:
    clock = Clock()
    monitor, _ = make_monitor(
        tmp_path, clock, alerts={"sinks": [], "dedup_window": 300, "max_per_minute": 2}
    )
    burst = [request(ip="203.0.113.4", principal=None, status=401, route=None)] * 25
    for event in burst:
        monitor.observe(event)
    assert len(await monitor.process_pending()) == 1
    for event in burst:
        monitor.observe(event)
    assert await monitor.process_pending() == []  # same detector and subject: deduplicated
    for ip in ("203.0.113.5", "203.0.113.6"):
        for _ in range(25):
            monitor.observe(request(ip=ip, principal=None, status=401, route=None))
    assert len(await monitor.process_pending()) == 1  # 2 per minute
    suppressed = monitor.metrics.counters["bastion_alerts_suppressed"]
    assert suppressed[("duplicate",)] >= 1
    assert suppressed[("rate_limited",)] == 1
    clock.now += 301
    for event in burst:
        monitor.observe(event)
    assert len(await monitor.process_pending()) == 1  # the dedup window has passed


async def test_playbooks_run_when_the_alert_rate_limit_spares_the_channels(
    tmp_path: Path,
) -> None:
    """A flood of cheap findings in one minute used to use up the alert rate limit, and the
    real attacker's finding, refused with it, also held its dedup claim: its playbook never
    ran for the whole window. The rate limit now spares the channels only."""
    clock = Clock()
    monitor, _ = make_monitor(
        tmp_path,
        clock,
        alerts={"sinks": [], "dedup_window": 300, "max_per_minute": 1},
        playbooks=[{"name": "shut", "when": ["auth_failure_ip"], "actions": ["block_ip"]}],
    )
    for ip in ("203.0.113.5", "203.0.113.6", "203.0.113.7"):
        for _ in range(25):
            monitor.observe(request(ip=ip, principal=None, status=401, route=None))
    assert len(await monitor.process_pending()) == 1  # one alert goes out this minute
    for ip in ("203.0.113.5", "203.0.113.6", "203.0.113.7"):
        assert monitor.store.mirror.is_blocked("ip", ip, clock.now) is not None, ip
    suppressed = monitor.metrics.counters["bastion_alerts_suppressed"]
    assert suppressed[("rate_limited",)] == 2


def _alert() -> Alert:
    return Alert(
        id="al_1",
        detector="enumeration",
        subject="principal:u-eve",
        summary="probing",
        severity="critical",
        time=1_800_000_000.0,
        evidence={"distinct_objects": 12},
        actions=({"action": "block_principal", "target": "u-eve", "outcome": "done"},),
        gateway="gw-1",
    )


async def test_webhook_is_signed_and_retried_with_backoff() -> None:
    received: list[tuple[str, bytes]] = []
    failures = 2

    async def hook(request: web.Request) -> web.Response:
        nonlocal failures
        if failures:
            failures -= 1
            return web.Response(status=503)
        received.append((request.headers[SIGNATURE_HEADER], await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner, base = await serve(app)
    delays: list[float] = []

    async def no_sleep(seconds: float) -> None:
        delays.append(seconds)

    outcomes: list[str] = []
    config = AlertsConfig(
        sinks=[SinkConfig(type="webhook", url=f"{base}/hook", secret="s" * 32,
                          backoff=0.5)]
    )  # fmt: skip
    dispatcher = AlertDispatcher(
        config, count=lambda s, o: outcomes.append(o), sleep=no_sleep, clock=lambda: 1_800_000_000
    )
    await dispatcher.start()
    dispatcher.submit(_alert())
    await dispatcher.close(grace=10)
    await runner.cleanup()
    assert delays == [0.5, 1.0]
    assert outcomes == ["retry", "retry", "delivered"]
    signature, body = received[0]
    assert verify_signature("s" * 32, body, signature, now=1_800_000_010)
    assert not verify_signature("s" * 32, body + b" ", signature, now=1_800_000_010)
    assert not verify_signature("s" * 32, body, signature, now=1_800_009_999)  # stale
    forged = signature.split("v1=")[0] + "v1=\u00e9"  # any text: False, not a TypeError
    assert not verify_signature("s" * 32, body, forged, now=1_800_000_010)
    assert orjson.loads(body)["subject"] == "principal:u-eve"


def test_slack_payload_shape() -> None:
    payload = slack_payload(_alert())
    assert payload["text"].startswith(":rotating_light: *enumeration*")
    assert payload["blocks"][0]["type"] == "section"
    assert "block_principal u-eve" in payload["blocks"][1]["elements"][0]["text"]


async def test_full_queue_drops_instead_of_blocking() -> None:
    outcomes: list[str] = []
    config = AlertsConfig(sinks=[SinkConfig(type="log")], queue_size=2)
    dispatcher = AlertDispatcher(config, count=lambda s, o: outcomes.append(o), log=lambda b: None)
    for _ in range(5):  # not started: nothing drains the queue
        dispatcher.submit(_alert())
    assert outcomes == ["dropped"] * 3


async def test_smtp_sink_against_a_local_fake_server() -> None:
    messages: list[bytes] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        data_mode, buffer = False, b""
        while line := await reader.readline():
            if data_mode:
                if line == b".\r\n":
                    messages.append(buffer)
                    data_mode, buffer = False, b""
                    writer.write(b"250 queued\r\n")
                else:
                    buffer += line
            elif line.upper().startswith(b"DATA"):
                data_mode = True
                writer.write(b"354 go ahead\r\n")
            elif line.upper().startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            elif line.upper().startswith(b"EHLO"):
                writer.write(b"250 fake\r\n")
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = AlertsConfig(
        sinks=[SinkConfig(type="smtp", smtp_port=port, mail_to=["soc@example.com"])]
    )
    outcomes: list[str] = []
    dispatcher = AlertDispatcher(config, count=lambda s, o: outcomes.append(o))
    await dispatcher.start()
    dispatcher.submit(_alert())
    await dispatcher.close(grace=10)
    server.close()
    assert outcomes == ["delivered"]
    assert b"Subject: [bastion] critical: enumeration principal:u-eve" in messages[0]


@pytest.mark.parametrize(
    "bad",
    [
        {"playbooks": [{"name": "x", "when": ["nope"], "actions": ["alert"]}]},
        {"alerts": {"sinks": [{"type": "webhook"}]}},
        {"detectors": {"enumeration": {"denied_ratio": 2}}},
        {"unknown": 1},
    ],
)
def test_config_rejects_mistakes(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        MonitoringConfig.model_validate(bad)


class _DownRedis:
    """A client whose every call fails like an unreachable Redis."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("redis down")

        return fail


async def test_detection_and_alerts_continue_when_redis_is_down() -> None:
    from bastion.observability.config import DetectorsConfig
    from bastion.observability.detectors import build_detectors, run_pass
    from bastion.observability.incidents import AlertGate, IncidentLog
    from bastion.observability.windows import FallbackWindows, RedisWindows

    windows = FallbackWindows(RedisWindows(_DownRedis(), "bastion"))
    detectors = build_detectors(DetectorsConfig())
    burst = [request(ip="203.0.113.4", principal=None, status=401, route=None)] * 25
    findings = await run_pass(detectors, burst, windows, 1000.0)
    assert [f.detector for f in findings] == ["auth_failure_ip"]
    assert windows.failures == 1
    gate = AlertGate(300, 10, Clock(), client=_DownRedis())
    assert await gate.admit("k") is None
    assert await gate.admit("k") == "duplicate"  # deduplicated locally meanwhile
    log = IncidentLog(10, client=_DownRedis())
    with pytest.raises(ConnectionError):
        await log.add({"id": "al_1"})
    assert await log.recent() == [{"id": "al_1"}]


def test_workers_of_one_gateway_share_a_snapshot_dir_single_processes_do_not() -> None:
    import os
    import subprocess
    import sys

    from bastion.observability.metrics import _server_pid

    assert _server_pid() == os.getpid()  # pytest's parent is not a `bastion gateway`
    child = "from bastion.observability.metrics import _server_pid; print(_server_pid())"
    parent = (
        "import os, subprocess\n"
        f"out = subprocess.run([{sys.executable!r}, '-c', {child!r}], capture_output=True)\n"
        "print(os.getpid(), out.stdout.decode().strip())\n"
    )
    # A parent that looks like the supervisor: argv `bastion - gateway`.
    script = f"exec -a bastion {sys.executable} - gateway"
    done = subprocess.run(
        ["bash", "-c", script], input=parent.encode(), capture_output=True, check=True
    )
    supervisor, seen_by_worker = done.stdout.decode().split()
    assert supervisor == seen_by_worker


def test_an_event_of_the_monitors_own_reaches_the_audit_database_once(tmp_path: Path) -> None:
    """Alerts, incident actions and dashboard actions were stored twice: once by emit and
    once more when they came back through the audit log the monitor observes."""
    monitor, audit = make_monitor(tmp_path, Clock())
    audit.observers.append(monitor.observe)
    stored: list[dict[str, Any]] = []

    class Sink:
        def add(self, event: dict[str, Any]) -> None:
            stored.append(event)

    monitor.audit_db = Sink()  # type: ignore[assignment]
    monitor.emit({"event": "admin_action", "action": "block"})
    monitor.account()
    assert [e["event"] for e in stored] == ["admin_action"]


def test_a_heavy_hitter_arriving_after_the_table_filled_is_listed() -> None:
    """The dashboard's top clients kept the first 2,000 values ever seen and dropped every
    later one: one request from each of 2,000 addresses hid the attacker that followed."""
    metrics = RequestMetrics(top_entries=100)
    for n in range(100):
        metrics.observe(request(ip=f"198.51.100.{n}", status=200))
    for _ in range(500):
        metrics.observe(request(ip="203.0.113.66", status=404))
    top = metrics.totals()["top_ips"][0]
    assert top["value"] == "203.0.113.66"
    assert top["requests"] == 500
    assert len(metrics.ips) <= 100
