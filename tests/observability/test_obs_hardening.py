"""Hardening of the monitoring side against local and remote attackers (security audit):
the metrics snapshot directory, SMTP over verified TLS, terminal escapes in CLI output,
client-chosen text in alerts, and receivers answering huge bodies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socketserver
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner

from bastion.observability import metrics as metrics_module
from bastion.observability.alerts import (
    Alert,
    AlertDispatcher,
    AlertSinkError,
    _send_mail,
    slack_payload,
)
from bastion.observability.cli import audit, incidents
from bastion.observability.config import AlertsConfig, SinkConfig
from bastion.observability.metrics import RequestMetrics, SnapshotDir, UnsafeSnapshotDir
from bastion.observability.safetext import json_line, printable
from tests.observability.receiver import serve
from tests.observability.streams import request
from tests.support.tls import self_signed

# ESC ] 0 ; title BEL, CSI 2J, C1 CSI, DEL, RLO, LS, CR/LF, a zero-width space.
HOSTILE = "/x\x1b]0;PWNED\x07\x1b[2J\x9b1m\x7f\u202eevil\u2028\r\nFAKE\u200b"


def _visible(text: str) -> bool:
    """True if ``text`` has no character a terminal would act on, apart from newlines."""
    return all(line.isprintable() for line in text.split("\n"))


# -- metrics snapshot directory ------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _aged(path: Path, days: float = 3) -> None:
    old = time.time() - days * 86_400
    os.utime(path, (old, old), follow_symlinks=False)


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private stand-in for the system temp dir (what `$TMPDIR` would be)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    directory = tmp_path / "victim"
    directory.mkdir()
    (directory / "id_ed25519").write_text("PRIVATE KEY")
    (directory / "metrics-1.json").write_text("{}")
    _aged(directory)
    return directory


def test_default_snapshot_dir_refuses_a_base_others_can_write(
    tmpdir_env: Path, victim: Path
) -> None:
    base = tmpdir_env / f"bastion-metrics-{os.getuid()}"
    base.mkdir()
    base.chmod(0o777)  # pre-created by another local user
    planted = base / "0123456789abcdef"
    planted.symlink_to(victim)
    _aged(planted)
    with pytest.raises(UnsafeSnapshotDir, match="writable by group or others"):
        SnapshotDir.default(None)
    assert sorted(p.name for p in victim.iterdir()) == ["id_ed25519", "metrics-1.json"]


def test_default_snapshot_dir_refuses_a_base_of_another_user(
    tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.getuid()
    fake = real + 4242  # so the directory this test creates belongs to "someone else"
    monkeypatch.setattr(metrics_module.os, "getuid", lambda: fake)
    (tmpdir_env / f"bastion-metrics-{fake}").mkdir(mode=0o700)
    with pytest.raises(UnsafeSnapshotDir, match=f"belongs to uid {real}"):
        SnapshotDir.default(None)


def test_default_snapshot_dir_refuses_a_symlinked_base(tmpdir_env: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)  # private and ours, but reached through someone's symlink
    (tmpdir_env / f"bastion-metrics-{os.getuid()}").symlink_to(mine)
    with pytest.raises(UnsafeSnapshotDir, match="symlink"):
        SnapshotDir.default(None)
    assert list(mine.iterdir()) == []


def test_every_snapshot_dir_level_is_created_private(tmpdir_env: Path, tmp_path: Path) -> None:
    old_umask = os.umask(0)  # 0700 must come from Bastion, not from a strict umask
    try:
        configured = SnapshotDir(tmp_path / "a" / "b" / "c")
        default = SnapshotDir.default(None)
    finally:
        os.umask(old_umask)
    for level in (tmp_path / "a", tmp_path / "a" / "b", configured.path):
        assert _mode(level) == 0o700, level
    assert _mode(default.path.parent) == 0o700
    assert _mode(default.path) == 0o700


def test_an_existing_readable_base_of_ours_is_tightened(tmpdir_env: Path) -> None:
    base = tmpdir_env / f"bastion-metrics-{os.getuid()}"
    base.mkdir()
    base.chmod(0o755)  # what earlier versions left behind
    SnapshotDir.default(None)
    assert _mode(base) == 0o700


def test_cleanup_and_snapshot_reads_never_follow_symlinks(
    tmpdir_env: Path, victim: Path, tmp_path: Path
) -> None:
    first = SnapshotDir.default(None)
    base = first.path.parent
    link = base / "0123456789abcdef"  # looks like an old run, points elsewhere
    link.symlink_to(victim)
    _aged(link)
    old_run = base / "fedcba9876543210"
    old_run.mkdir(mode=0o700)
    (old_run / "metrics-7.json").write_text("{}")
    _aged(old_run)
    kept_run = base / "00000000000000aa"  # old, but holds something that is not ours
    kept_run.mkdir(mode=0o700)
    (kept_run / "notes.txt").write_text("keep me")
    _aged(kept_run)

    again = SnapshotDir.default(None)
    assert again.path == first.path
    assert sorted(p.name for p in victim.iterdir()) == ["id_ed25519", "metrics-1.json"]
    assert link.is_symlink()
    assert not old_run.exists()
    assert (kept_run / "notes.txt").read_text() == "keep me"

    # A symlinked snapshot is never read; a symlink where a worker writes is not followed.
    forged = tmp_path / "forged.json"
    forged.write_bytes(orjson.dumps({"principals": {"FORGED-admin": [1_000_000, 0]}}))
    (first.path / "metrics-999999.json").symlink_to(forged)
    target = tmp_path / "precious"
    target.write_text("precious")
    (first.path / f"metrics-{first.pid}.tmp").symlink_to(target)
    first.write(RequestMetrics())
    assert target.read_text() == "precious"
    assert list(SnapshotDir(first.path, pid=1).others()) != []  # the real snapshot of `first`
    assert all("FORGED-admin" not in s.get("principals", {}) for s in first.others())


def test_workers_still_share_the_default_snapshot_dir(tmpdir_env: Path) -> None:
    one = SnapshotDir.default(None)  # first worker creates the directories
    two = SnapshotDir(SnapshotDir.default(None).path, pid=one.pid + 1)  # a second finds them
    assert two.path == one.path
    metrics = RequestMetrics()
    metrics.observe(request())
    two.write(metrics)
    merged = RequestMetrics()
    for other in one.others():
        merged.merge(other)
    assert merged.totals()["requests"] == 1


# -- SMTP ----------------------------------------------------------------------------------


@dataclass
class FakeSmtp:
    """A tiny SMTP server on a thread: STARTTLS with ``context``, AUTH, DATA."""

    context: ssl.SSLContext | None = None
    commands: list[tuple[str, bool]] = field(default_factory=list)  # (verb, over TLS)
    messages: list[str] = field(default_factory=list)
    port: int = 0


@contextmanager
def fake_smtp(context: ssl.SSLContext | None = None) -> Iterator[FakeSmtp]:
    state = FakeSmtp(context)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            opened: list[Any] = []
            # A client refusing our certificate hangs up mid-handshake.
            with contextlib.suppress(OSError, ssl.SSLError):
                self._session(opened)
            for thing in reversed(opened):
                with contextlib.suppress(OSError):
                    thing.close()

        def _session(self, opened: list[Any]) -> None:
            sock, tls = self.request, False
            stream = sock.makefile("rwb")
            opened.append(stream)

            def say(line: str) -> None:
                stream.write(line.encode() + b"\r\n")
                stream.flush()

            say("220 fake ESMTP")
            data: list[str] | None = None
            while raw := stream.readline():
                line = raw.decode().rstrip("\r\n")
                if data is not None:
                    if line == ".":
                        state.messages.append("\n".join(data))
                        data = None
                        say("250 queued")
                    else:
                        data.append(line)
                    continue
                verb = line.split(" ")[0].upper()
                state.commands.append((verb, tls))
                if verb == "EHLO":
                    say("250-fake")
                    if tls:
                        say("250-AUTH PLAIN LOGIN")
                    say("250 STARTTLS" if state.context and not tls else "250 8BITMIME")
                elif verb == "STARTTLS" and state.context is not None:
                    say("220 go ahead")
                    sock = state.context.wrap_socket(sock, server_side=True)
                    stream, tls = sock.makefile("rwb"), True
                    opened += [sock, stream]
                elif verb == "AUTH":
                    say("235 ok")
                elif verb == "DATA":
                    data = []
                    say("354 go ahead")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("250 ok")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.port = server.server_address[1]
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _server_tls(folder: Path) -> tuple[ssl.SSLContext, Path]:
    cert, key = self_signed(folder)  # for 127.0.0.1, its own CA
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


def _alert(subject: str = "principal:u-eve", summary: str = "principal u-eve probed") -> Alert:
    return Alert("al_1", "enumeration", subject, summary, "critical", 1_800_000_000.0)


def _smtp_sink(port: int, **options: Any) -> SinkConfig:
    return SinkConfig(
        type="smtp", smtp_port=port, mail_to=["soc@example.com"], timeout=5, **options
    )


def test_smtp_starttls_verifies_the_certificate_before_sending_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    context, _ = _server_tls(tmp_path)  # not trusted by the system store
    with fake_smtp(context) as server:
        sink = _smtp_sink(
            server.port, smtp_starttls=True, smtp_username="alerts", smtp_password="S3cret"
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            _send_mail(sink, _alert())
    assert ("AUTH", True) not in server.commands
    assert server.messages == []


def test_smtp_starttls_to_a_trusted_server_logs_in_over_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, cert = _server_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how an operator trusts a private CA
    with fake_smtp(context) as server:
        sink = _smtp_sink(
            server.port, smtp_starttls=True, smtp_username="alerts", smtp_password="S3cret"
        )
        _send_mail(sink, _alert())
    assert ("AUTH", True) in server.commands
    assert all(tls for verb, tls in server.commands if verb in ("AUTH", "MAIL", "DATA"))
    assert len(server.messages) == 1


def test_smtp_credentials_are_never_sent_without_tls() -> None:
    with pytest.raises(ValueError, match="smtp_starttls: true"):
        SinkConfig(type="smtp", mail_to=["soc@example.com"], smtp_username="u", smtp_password="p")
    with fake_smtp() as server:
        # Even a config that skipped validation never logs in over plain text.
        sink = SinkConfig.model_construct(
            type="smtp",
            smtp_port=server.port,
            smtp_username="alerts",
            smtp_password="S3cret",
            mail_to=["soc@example.com"],
            timeout=5,
        )
        with pytest.raises(AlertSinkError, match="without TLS"):
            _send_mail(sink, _alert())
    assert [verb for verb, _ in server.commands if verb in ("AUTH", "MAIL", "DATA")] == []


# -- alert text ----------------------------------------------------------------------------


def test_a_principal_with_crlf_cannot_suppress_its_email_alert() -> None:
    with fake_smtp() as server:
        _send_mail(
            _smtp_sink(server.port),
            _alert(
                subject="principal:u-mallory\r\nX-Injected: 1",
                summary="principal u-mallory\r\nX-Injected: 1: 900 requests",
            ),
        )
    [message] = server.messages
    headers, _, body = message.partition("\n\n")
    headers = headers.replace("\n ", " ")  # unfold long header lines
    subject = "Subject: [bastion] critical: enumeration principal:u-mallory\\r\\nX-Injected: 1"
    assert subject in headers
    assert not any(line.startswith("X-Injected") for line in headers.splitlines())
    assert body.startswith("principal u-mallory\\r\\nX-Injected: 1: 900 requests")


def test_slack_text_escapes_mentions_links_and_control_characters() -> None:
    evil = "<!channel> <https://evil.example/unblock|Click to acknowledge> & more\n*fixed*"
    payload = slack_payload(_alert(subject=f"principal:{evil}", summary=f"principal {evil}"))
    context = payload["blocks"][1]["elements"][0]["text"]
    for text in (payload["text"], payload["blocks"][0]["text"]["text"], context):
        assert "<" not in text
        assert ">" not in text
        assert "\n" not in text
        assert "&lt;!channel&gt; &lt;https://evil.example/unblock|Click to acknowledge&gt;" in text
        assert "&amp; more\\n*fixed*" in text


def test_a_subject_cannot_close_its_slack_code_span() -> None:
    """Inside the span nothing is formatted; a backtick would end it and let the rest be
    read as formatting (a bold "acknowledged" after the span)."""
    payload = slack_payload(_alert(subject="principal:u`*acknowledged by on-call*`x"))
    context = payload["blocks"][1]["elements"][0]["text"]
    span = context.removeprefix("subject ").split(" · ")[0]
    assert span == "`principal:u\\x60*acknowledged by on-call*\\x60x`"
    assert span.count("`") == 2


# -- webhook / Slack receivers -------------------------------------------------------------


async def test_a_receivers_huge_answer_is_never_read() -> None:
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200)
        response.content_length = 1 << 40  # a terabyte announced, 64 KiB sent, then silence
        await response.prepare(request)
        await response.write(b"A" * 65536)
        await release.wait()
        return response

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner, base = await serve(app)
    url = f"{base}/hook"
    outcomes: list[tuple[str, str]] = []
    config = AlertsConfig(
        sinks=[
            SinkConfig(type="webhook", url=url, timeout=3, max_attempts=1),
            SinkConfig(type="slack", url=url, timeout=3, max_attempts=1),
        ]
    )
    dispatcher = AlertDispatcher(config, count=lambda s, o: outcomes.append((s, o)))
    await dispatcher.start()
    dispatcher.submit(_alert())
    await dispatcher.close(grace=10)
    release.set()
    await runner.cleanup()
    assert sorted(outcomes) == [("slack", "delivered"), ("webhook", "delivered")]


# -- CLI output ----------------------------------------------------------------------------


def test_printable_escapes_controls_and_format_characters_only() -> None:
    assert printable("/orders/1041 ü 東京 ok") == "/orders/1041 ü 東京 ok"
    assert printable(HOSTILE) == (
        "/x\\x1b]0;PWNED\\x07\\x1b[2J\\x9b1m\\x7f\\u202eevil\\u2028\\r\\nFAKE\\u200b"
    )
    assert printable("a\\x1b") == "a\\\\x1b"  # a literal backslash is never mistaken
    assert printable("\U000e0041") == "\\U000e0041"  # a tag character (format, Cf)
    assert printable(404) == "404"
    line = json_line({"path": HOSTILE, "tag": "\U000e0041"})
    assert line.isprintable()
    assert orjson.loads(line) == {"path": HOSTILE, "tag": "\U000e0041"}


def test_audit_search_never_prints_terminal_escapes(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    event = {
        "event": "request",
        "time": "2026-11-28T04:00:00Z",
        "status": 400,
        "method": "GET",
        "path": HOSTILE,
        "principal": "u-\x1b[31mroot",
        "reason": "path.control_char\x07",
        "user_agent": "curl\x1b]8;;https://evil\x07",
    }
    log.write_bytes(orjson.dumps(event) + b"\n")
    runner = CliRunner()
    table = runner.invoke(audit, ["search", "--file", str(log), "--table-output"])
    assert table.exit_code == 0, table.output
    assert _visible(table.output)
    assert "GET /x\\x1b]0;PWNED\\x07\\x1b[2J" in table.output
    assert "u-\\x1b[31mroot" in table.output
    as_json = runner.invoke(audit, ["search", "--file", str(log)])
    assert as_json.exit_code == 0, as_json.output
    assert _visible(as_json.output)
    assert orjson.loads(as_json.output) == event


def test_incidents_never_prints_terminal_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    row = {
        "time": 1_800_000_000.0,
        "severity": "critical\x1b[2J",
        "detector": "enumeration",
        "subject": "principal:" + HOSTILE,
        "summary": "probed \u202eevil",
        "actions": [{"action": "block_principal", "outcome": "done\x07"}],
    }
    monkeypatch.setattr(
        "bastion.admin_client._call", lambda *args: {"incidents": [row]}, raising=True
    )
    runner = CliRunner()
    text = runner.invoke(incidents, ["--config", "unused.yaml"])
    assert text.exit_code == 0, text.output
    assert _visible(text.output)
    assert "principal:/x\\x1b]0;PWNED" in text.output
    assert "probed \\u202eevil" in text.output
    assert "[block_principal:done\\x07]" in text.output
    as_json = runner.invoke(incidents, ["--config", "unused.yaml", "--json"])
    assert _visible(as_json.output)
    assert orjson.loads(as_json.output) == row
