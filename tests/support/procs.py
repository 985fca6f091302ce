"""Real processes for integration tests: the test upstream and the gateway."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BASTION = str(Path(sys.executable).with_name("bastion"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 90.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serving(
    argv: list[str], port: int, errors: Path, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` (stderr to ``errors``), wait until ``port`` listens, stop it after."""
    with errors.open("wb") as err:
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})}
        )
    try:
        try:
            wait_for_port(port, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{errors.read_text()}") from None
        yield proc
    finally:
        stop(proc)


@dataclass
class Upstream:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def clear(self) -> None:
        self.log.write_text("")


@contextmanager
def run_upstream(tmp: Path) -> Iterator[Upstream]:
    port = free_port()
    log = tmp / f"upstream-{port}.jsonl"
    log.write_text("")
    argv = [sys.executable, "-m", "tests.support.upstream", "--port", str(port), "--log", str(log)]
    with serving(argv, port, tmp / f"upstream-{port}.stderr"):
        yield Upstream(port, log)


@dataclass
class GatewayProc:
    port: int
    proc: subprocess.Popen[bytes]
    config: Path
    audit: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def audit_events(self, at_least: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Audit events so far, waiting (bounded) until ``at_least`` have been written.

        The event is written after the response is sent, so a test polls for it.
        """
        deadline = time.monotonic() + timeout
        while True:
            events = []
            if self.audit.exists():
                events = [
                    json.loads(line)
                    for line in self.audit.read_text().split("\n")
                    if line.endswith("}")
                ]
            if len(events) >= at_least or time.monotonic() > deadline:
                return events
            time.sleep(0.02)

    def wait_event(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first audit event matching ``predicate`` (events are written in batches, so
        a test waits for the one it means instead of taking the last line)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.audit_events(at_least=0, timeout=0):
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError("no matching audit event was written")
            time.sleep(0.02)

    def event_for(self, request_id: str) -> dict[str, Any]:
        return self.wait_event(lambda e: e.get("request_id") == request_id)

    def stderr_text(self) -> str:
        return self._stderr.read_text() if self._stderr.exists() else ""

    @property
    def _stderr(self) -> Path:
        return self.config.with_suffix(".stderr")


@contextmanager
def run_gateway(
    config_text: str,
    tmp: Path,
    *,
    server: str = "granian",
    env: dict[str, str] | None = None,
    port: int | None = None,
    scheme: str = "http",
) -> Iterator[GatewayProc]:
    port = port or free_port()
    config = tmp / f"gateway-{port}.yaml"
    audit = tmp / f"audit-{port}.jsonl"
    config.write_text(config_text.replace("{AUDIT}", str(audit)))
    argv = [BASTION, "gateway", "--config", str(config), "--server", server, "--port", str(port)]
    with serving(argv, port, config.with_suffix(".stderr"), env=env, cwd=tmp) as proc:
        yield GatewayProc(port, proc, config, audit, scheme)


def dev_config(
    upstream_url: str,
    *,
    extra: str = "",
    routes: str | None = None,
    api_extra: str = "",
    upstream_extra: str = "",
) -> str:
    """A development-mode config with public echo routes (plain HTTP on loopback)."""
    routes = (
        routes
        or """
      - {path: /echo, methods: [GET, POST, PUT, PATCH, DELETE], public: true}
      - {path: "/echo/{item_id}", methods: [GET, POST], public: true}
      - {path: /slow, methods: [GET], public: true}
      - {path: /big, methods: [GET], public: true}
      - {path: /hop, methods: [GET], public: true}
      - {path: "/status/{code}", methods: [GET], public: true}
"""
    )
    return f"""version: 1
mode: development
audit: {{sink: file, path: "{{AUDIT}}"}}
{extra}
upstreams:
  echo:
    url: {upstream_url}
    timeout: {{connect: 1, read: 2, total: 3}}
{upstream_extra}
apis:
  - name: echo
    upstream: echo
{api_extra}
    routes:{routes}
"""


@contextmanager
def run_shop(tmp: Path) -> Iterator[str]:
    """The demo shop upstream under granian; yields its base URL."""
    port = free_port()
    granian = str(Path(sys.executable).with_name("granian"))
    argv = [
        granian,
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ws",
        "bastion.demo.shop:create_shop_app",
    ]
    with serving(argv, port, tmp / f"shop-{port}.stderr"):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def run_demo(state: Path, *options: str) -> Iterator[dict[str, Any]]:
    """`bastion demo --json` as a real process; yields the JSON line it prints first."""
    proc = subprocess.Popen(
        [BASTION, "demo", "--json", "--port", "0", "--state-dir", str(state), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "bastion demo printed nothing"
        info: dict[str, Any] = json.loads(line)
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            if proc.stdout:
                proc.stdout.close()
