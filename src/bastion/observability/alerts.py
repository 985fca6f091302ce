"""Alert delivery: log, signed webhook, Slack-compatible webhook, SMTP.

Every sink has its own bounded queue and one delivery task, so a slow or dead receiver
never blocks a request or another sink: :meth:`AlertDispatcher.submit` only does
``put_nowait`` (a full queue drops the alert and counts it). Failed deliveries are retried
with exponential backoff (``backoff * 2**attempt``, capped at 60 s) up to ``max_attempts``.

Webhook signature: header ``X-Bastion-Signature: t=<unix seconds>,v1=<hex>`` where ``hex``
is HMAC-SHA256(secret, ``"<t>." + body``). A receiver recomputes it, compares in constant
time and rejects stale ``t`` (replay).

Alert text embeds client-chosen values (a principal is a JWT ``sub``, a jti, a key name):
the e-mail and Slack sinks show control and format characters as escapes
(:func:`~bastion.observability.safetext.printable`; a CR/LF in a subject would otherwise
make the e-mail fail, silencing alerts about that principal) and Slack text has ``&``,
``<``, ``>`` escaped (no ``<!channel>`` or ``<url|text>`` links); the subject is a code
span its value cannot close (a backtick shows as ``\\x60``). Webhook and log bodies are
JSON, which escapes by itself, and keep the exact values.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import smtplib
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiohttp
import orjson

from bastion.observability.config import AlertsConfig, SinkConfig
from bastion.observability.detectors import Finding
from bastion.observability.safetext import printable
from bastion.secrets import constant_time_equals

__all__ = [
    "SIGNATURE_HEADER",
    "Alert",
    "AlertDispatcher",
    "AlertSinkError",
    "sign",
    "slack_payload",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Bastion-Signature"

#: A receiver's answer body is read only when it declares at most this many bytes (so the
#: connection can be reused); a bigger or unannounced body is never read, the connection
#: is closed instead (a hostile receiver could otherwise answer gigabytes into memory).
MAX_RECEIVER_BODY = 4096


class AlertSinkError(RuntimeError):
    """A delivery refused or failed for a reason worth printing (no secrets in it)."""


@dataclass(frozen=True)
class Alert:
    id: str
    detector: str
    subject: str
    summary: str
    severity: str
    time: float
    evidence: Mapping[str, Any] = field(default_factory=dict)
    actions: tuple[Mapping[str, Any], ...] = ()
    gateway: str = ""

    @classmethod
    def from_finding(cls, finding: Finding, now: float, gateway: str) -> Alert:
        digest = hashlib.sha256(f"{finding.key}:{now}:{gateway}".encode()).hexdigest()[:16]
        return cls(
            id=f"al_{digest}",
            detector=finding.detector,
            subject=finding.subject,
            summary=finding.summary,
            severity=finding.severity,
            time=now,
            evidence=dict(finding.evidence),
            gateway=gateway,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "alert",
            "id": self.id,
            "detector": self.detector,
            "subject": self.subject,
            "summary": self.summary,
            "severity": self.severity,
            "time": self.time,
            "evidence": dict(self.evidence),
            "actions": [dict(a) for a in self.actions],
            "gateway": self.gateway,
        }


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, now: float, tolerance: float = 300.0
) -> bool:
    """Receiver side of :func:`sign` (constant-time, rejects stale timestamps)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp)
    return constant_time_equals(expected, header.strip())


def _mrkdwn(value: object) -> str:
    """Literal text inside Slack mrkdwn: one line, and ``&``, ``<``, ``>`` escaped as Slack
    requires (``<!channel>``, ``<@U123>`` and ``<url|text>`` all start with ``<``)."""
    return printable(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_span(value: object) -> str:
    """A mrkdwn code span (its text is not formatted) that ``value`` cannot close: a
    backtick shows as ``\\x60``, like the other escapes of
    :func:`~bastion.observability.safetext.printable` (which doubles backslashes)."""
    return "`" + _mrkdwn(value).replace("`", "\\x60") + "`"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack incoming-webhook message (also accepted by Mattermost and Rocket.Chat)."""
    icon = ":rotating_light:" if alert.severity == "critical" else ":warning:"
    actions = ", ".join(
        _mrkdwn(f"{a.get('action')} {a.get('target', '')}".strip()) for a in alert.actions
    )
    text = f"{icon} *{_mrkdwn(alert.detector)}* {_mrkdwn(alert.summary)}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"subject {_code_span(alert.subject)} · "
                    f"gateway {_mrkdwn(alert.gateway)} · "
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(alert.time))}"
                    + (f" · actions: {actions}" if actions else ""),
                }
            ],
        },
    ]
    return {"text": text, "blocks": blocks}


Deliver = Callable[[Alert], Awaitable[None]]


class _SinkWorker:
    def __init__(
        self,
        config: SinkConfig,
        deliver: Deliver,
        queue_size: int,
        count: Callable[[str, str], None],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.config = config
        self.name = config.type
        self.deliver = deliver
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self.count = count
        self.sleep = sleep
        self.task: asyncio.Task[None] | None = None

    def submit(self, alert: Alert) -> None:
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.count(self.name, "dropped")

    async def run(self) -> None:
        while True:
            alert = await self.queue.get()
            try:
                await self._deliver_with_retries(alert)
            finally:
                self.queue.task_done()

    async def _deliver_with_retries(self, alert: Alert) -> None:
        attempts = self.config.max_attempts
        for attempt in range(attempts):
            try:
                await self.deliver(alert)
            except Exception as exc:  # any failure of a receiver is retried, then dropped
                self.count(self.name, "retry" if attempt + 1 < attempts else "failed")
                if attempt + 1 < attempts:
                    await self.sleep(min(60.0, self.config.backoff * 2**attempt))
                else:
                    # The type only (a receiver's error may quote its URL, a Slack
                    # webhook's secret), except for our own errors, written to be shown.
                    why = f": {exc}" if isinstance(exc, AlertSinkError) else ""
                    print(
                        f"bastion: alert sink {self.name} gave up on {alert.id}: "
                        f"{type(exc).__name__}{why}",
                        file=sys.stderr,
                    )
            else:
                self.count(self.name, "delivered")
                return


class AlertDispatcher:
    """Fans alerts out to every configured sink through bounded queues."""

    def __init__(
        self,
        config: AlertsConfig,
        *,
        count: Callable[[str, str], None] = lambda sink, outcome: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        log: Callable[[bytes], None] | None = None,
    ) -> None:
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._log = log or _stderr_line
        self.workers = [
            _SinkWorker(sink, self._deliverer(sink), config.queue_size, count, sleep)
            for sink in config.sinks
        ]

    async def start(self) -> None:
        for worker in self.workers:
            worker.task = asyncio.create_task(worker.run())

    async def close(self, grace: float = 1.0) -> None:
        pending = [w.queue.join() for w in self.workers if w.task is not None]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), grace)
        for worker in self.workers:
            if worker.task is not None:
                worker.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.task
                worker.task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(self, alert: Alert) -> None:
        """Never blocks, never raises."""
        for worker in self.workers:
            worker.submit(alert)

    # -- sinks ------------------------------------------------------------------------

    def _deliverer(self, sink: SinkConfig) -> Deliver:
        if sink.type == "log":
            return self._to_log
        if sink.type == "webhook":
            return lambda alert: self._to_webhook(sink, alert)
        if sink.type == "slack":
            return lambda alert: self._post(sink, orjson.dumps(slack_payload(alert)), {})
        return lambda alert: asyncio.to_thread(_send_mail, sink, alert)

    async def _to_log(self, alert: Alert) -> None:
        self._log(orjson.dumps({"bastion": "alert", **alert.to_json()}) + b"\n")

    async def _to_webhook(self, sink: SinkConfig, alert: Alert) -> None:
        body = orjson.dumps(alert.to_json())
        headers = {}
        if sink.secret:
            headers[SIGNATURE_HEADER] = sign(sink.secret, body, int(self._clock()))
        await self._post(sink, body, headers)

    async def _post(self, sink: SinkConfig, body: bytes, headers: dict[str, str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        assert sink.url is not None
        timeout = aiohttp.ClientTimeout(total=sink.timeout)
        async with self._session.post(
            sink.url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=timeout,
            allow_redirects=False,
        ) as response:
            length = response.content_length
            if length is not None and length <= MAX_RECEIVER_BODY:
                await response.read()  # small and announced: keeps the connection reusable
            # Otherwise leaving the block closes the connection without reading the body.
            if response.status >= 300:
                raise AlertSinkError(f"receiver answered {response.status}")


def _stderr_line(line: bytes) -> None:
    sys.stderr.buffer.write(line)
    sys.stderr.buffer.flush()


def _send_mail(sink: SinkConfig, alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"] = printable(f"[bastion] {alert.severity}: {alert.detector} {alert.subject}")
    message["From"] = sink.mail_from
    message["To"] = ", ".join(sink.mail_to)
    message.set_content(
        f"{printable(alert.summary)}\n\n"
        + orjson.dumps(alert.to_json(), option=orjson.OPT_INDENT_2).decode()
    )
    with smtplib.SMTP(sink.smtp_host, sink.smtp_port, timeout=sink.timeout) as smtp:
        if sink.smtp_starttls:
            # Certificate and host name verified against the system trust store
            # (SSL_CERT_FILE / SSL_CERT_DIR point OpenSSL at a private CA).
            smtp.starttls(context=ssl.create_default_context())
        if sink.smtp_username and sink.smtp_password:
            if not isinstance(smtp.sock, ssl.SSLSocket):  # the config refuses it too
                raise AlertSinkError(
                    "refusing to send SMTP credentials over a connection without TLS "
                    "(set smtp_starttls: true)"
                )
            smtp.login(sink.smtp_username, sink.smtp_password)
        smtp.send_message(message)
