"""End to end through real processes: a BOLA enumeration against one gateway raises a
signed alert at a local webhook receiver and an automatic block that a second gateway
(sharing Redis) enforces within a second; with a receiver down, alerts are retried while
requests keep being served."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.observability.alerts import SIGNATURE_HEADER, verify_signature
from bastion.observability.cli import incidents
from tests.observability.receiver import Receiver
from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import ROOT, free_port, stop, wait_for_port

pytestmark = pytest.mark.services

ADMIN_TOKEN = "adm-" + secrets.token_urlsafe(32)
WEBHOOK_SECRET = secrets.token_urlsafe(32)
PROPAGATION_DEADLINE = 1.0


@dataclass
class Proc:
    port: int
    admin_port: int
    audit: Path
    proc: subprocess.Popen[bytes]
    config: Path

    def audit_events(self) -> list[dict[str, object]]:
        if not self.audit.exists():
            return []
        lines = self.audit.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]


@contextmanager
def spawn(args: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.observability.harness", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "ADMIN_TOKEN": ADMIN_TOKEN},
        )
    try:
        try:
            wait_for_port(port, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text()}") from None
        yield proc
    finally:
        stop(proc)


@contextmanager
def gateway(
    tmp: Path, upstream: int, issuer: KeyIssuer, state: str, sink_url: str
) -> Iterator[Proc]:
    port, admin_port = free_port(), free_port()
    audit = tmp / f"audit-{port}.jsonl"
    config = tmp / f"gateway-{port}.yaml"
    config.write_text(
        f"""version: 1
mode: development
audit: {{sink: file, path: "{audit}"}}
{state}
{issuer.config()}
upstreams:
  orders: {{url: "http://127.0.0.1:{upstream}", timeout: {{connect: 1, read: 2, total: 3}}}}
apis:
  - name: shop
    upstream: orders
    routes:
      - {{path: "/orders/{{order_id}}", methods: [GET], allow: authenticated}}
"""
    )
    monitoring = tmp / f"monitoring-{port}.yaml"
    monitoring.write_text(
        f"""detectors:
  flush_interval: 0.05
  enumeration: {{distinct_objects: 10, denied_ratio: 0.5, window: 60}}
alerts:
  sinks:
    - {{type: webhook, url: "{sink_url}", secret: "{WEBHOOK_SECRET}", backoff: 0.2,
       max_attempts: 20, timeout: 1}}
playbooks:
  - {{name: bola, when: [enumeration], actions: [block_principal], duration: 120}}
"""
    )
    args = ["--config", str(config), "--monitoring", str(monitoring), "--port", str(port),
            "--admin-port", str(admin_port)]  # fmt: skip
    with spawn(args, port, tmp / f"gateway-{port}.stderr") as proc:
        wait_for_port(admin_port, proc)
        yield Proc(port, admin_port, audit, proc, config)


def get(port: int, path: str, token: str | None = None, admin: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN if admin else token}"}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def setup(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Proc, Proc, Receiver, int, KeyIssuer]]:
    tmp = tmp_path_factory.mktemp("obs-e2e")
    issuer = make_issuer(tmp)
    upstream = free_port()
    prefix = f"bastion-obs-{secrets.token_hex(4)}"
    state = f"state: {{backend: redis, url: '{redis_url}', prefix: {prefix}}}"
    receiver = Receiver()
    down_port = free_port()  # nothing listens here until the retry test starts a receiver
    down_url = f"http://127.0.0.1:{down_port}/hook"
    with (
        spawn(["--orders-upstream", str(upstream)], upstream, tmp / "upstream.stderr"),
        gateway(tmp, upstream, issuer, state, receiver.url) as one,
        gateway(tmp, upstream, issuer, state, down_url) as two,
    ):
        yield one, two, receiver, down_port, issuer
    receiver.close()


def test_enumeration_alerts_and_blocks_on_every_gateway(
    setup: tuple[Proc, Proc, Receiver, int, KeyIssuer],
) -> None:
    one, two, receiver, _, issuer = setup
    eve, bob = issuer.token("u-eve", ["customer"]), issuer.token("u-bob", ["customer"])
    assert get(two.port, "/orders/1", eve)[0] == 200
    for n in range(1000, 1020):  # probing other people's orders (blocked part-way: 403)
        assert get(one.port, f"/orders/{n}", eve)[0] in (403, 404)
    headers, body = receiver.wait_for(
        lambda a: a["detector"] == "enumeration" and a["subject"] == "principal:u-eve"
    )
    received = time.monotonic()
    assert verify_signature(WEBHOOK_SECRET, body, headers[SIGNATURE_HEADER.lower()], time.time())
    alert = json.loads(body)
    assert alert["evidence"]["distinct_objects"] >= 10
    assert [(a["action"], a["outcome"]) for a in alert["actions"]] == [("block_principal", "done")]

    while get(two.port, "/orders/1", eve)[0] != 403:
        assert time.monotonic() - received < PROPAGATION_DEADLINE, "block did not propagate"
        time.sleep(0.02)
    assert get(two.port, "/orders/1", bob)[0] == 200  # only the attacker is blocked

    deadline = time.monotonic() + 5  # the audit line is written by another process
    while not (actions := [e for e in one.audit_events() if e.get("event") == "incident_action"]):
        others = [e for e in two.audit_events() if e.get("event") in ("incident_action", "alert")]
        assert time.monotonic() < deadline, f"no incident_action on gateway one; two: {others}"
        time.sleep(0.05)
    assert actions[0]["actor"] == "playbook:bola"
    assert actions[0]["detector"] == "enumeration"
    assert actions[0]["target"] == "u-eve"

    status, metrics = get(one.admin_port, "/metrics", admin=True)
    assert status == 200
    assert b'bastion_alerts_total{detector="enumeration"} 1.0' in metrics
    assert b'status="404"' in metrics
    assert get(one.admin_port, "/metrics")[0] == 401  # the admin token is required

    status, listing = get(two.admin_port, "/incidents", admin=True)
    assert status == 200
    assert any(i["subject"] == "principal:u-eve" for i in json.loads(listing)["incidents"])

    # `bastion incidents` reads the same list through the admin API named in the config.
    cli_config = two.config.with_name("cli.yaml")
    cli_config.write_text(
        two.config.read_text() + f"admin: {{port: {two.admin_port}, token: '{ADMIN_TOKEN}'}}\n"
    )
    result = CliRunner().invoke(incidents, ["--config", str(cli_config)])
    assert result.exit_code == 0, result.output
    assert "enumeration" in result.output
    assert "principal:u-eve" in result.output
    assert "block_principal:done" in result.output


def test_alerts_are_retried_while_the_receiver_is_down(
    setup: tuple[Proc, Proc, Receiver, int, KeyIssuer],
) -> None:
    _, two, _, down_port, issuer = setup
    zed, carol = issuer.token("u-zed", ["customer"]), issuer.token("u-carol", ["customer"])
    for n in range(2000, 2015):
        assert get(two.port, f"/orders/{n}", zed)[0] in (403, 404)
    deadline = time.monotonic() + 15
    retry_line = b'bastion_alert_deliveries_total{outcome="retry",sink="webhook"}'
    while retry_line not in get(two.admin_port, "/metrics", admin=True)[1]:
        assert time.monotonic() < deadline, "no failed delivery was retried"
        time.sleep(0.05)
    # Requests keep being served while deliveries fail.
    for _ in range(20):
        assert get(two.port, "/orders/2", carol)[0] == 200
    late = Receiver(down_port)
    try:
        late.wait_for(lambda a: a["subject"] == "principal:u-zed")
    finally:
        late.close()
