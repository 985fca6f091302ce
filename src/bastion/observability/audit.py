"""Audit events: one JSON line per request, built by a structlog processor chain.

The chain is structlog processors, plain callables ``(logger, method_name, event_dict) ->
event_dict``, run directly by :class:`AuditLog` (without structlog's bound-logger layer,
which cost more than the processors themselves on the hot path):

1. :func:`add_timestamp` — UTC ISO-8601 time;
2. :class:`Redactor` — removes credentials and configured body/query fields, and records
   which fields it redacted (``redacted: [...]``);
3. :func:`render_json` — orjson, one line.

Sinks: stdout, a size-rotated file, or a list (tests: :func:`capture_audit`). Writing never
raises into the request path: a failing sink is reported once on stderr and the event is
dropped, because an audit failure must not turn into a client-visible 5xx.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl

import orjson
from structlog.typing import EventDict, Processor

from bastion.gateway.request import client_key
from bastion.types import RequestContext

__all__ = [
    "AuditLog",
    "Redactor",
    "add_timestamp",
    "capture_audit",
    "event_from_context",
    "render_json",
]

REDACTED = "[REDACTED]"
ALWAYS_REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


_second_cache: list[Any] = [-1, ""]


def add_timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    """UTC ISO-8601 with milliseconds; the formatted second is cached."""
    now = time.time()
    second = int(now)
    if second != _second_cache[0]:
        _second_cache[0] = second
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    event["time"] = f"{_second_cache[1]}.{int((now - second) * 1000):03d}Z"
    return event


class Redactor:
    """Replace sensitive values anywhere in the event; list what was redacted."""

    def __init__(self, fields: Iterable[str], headers: Iterable[str] = ()) -> None:
        self._fields = frozenset(f.lower() for f in fields)
        self._headers = ALWAYS_REDACTED_HEADERS | frozenset(h.lower() for h in headers)

    def __call__(self, _: Any, __: str, event: EventDict) -> EventDict:
        redacted: list[str] = []
        for key in ("headers", "query", "body", "response_headers"):
            value = event.get(key)
            if isinstance(value, Mapping):
                event[key] = self._walk(value, key, redacted)
        if redacted:
            event["redacted"] = sorted(set(redacted) | set(event.get("redacted", ())))
        return event

    def _sensitive(self, key: str, section: str) -> bool:
        lowered = key.lower()
        if section.endswith("headers"):
            return lowered in self._headers or lowered in self._fields
        return lowered in self._fields

    def _walk(self, value: Mapping[str, Any], path: str, redacted: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        section = path.split(".", 1)[0]
        for key, item in value.items():
            here = f"{path}.{key}"
            if self._sensitive(str(key), section):
                out[key] = REDACTED
                redacted.append(here)
            elif isinstance(item, Mapping):
                out[key] = self._walk(item, here, redacted)
            elif isinstance(item, list):
                out[key] = [
                    self._walk(v, here, redacted) if isinstance(v, Mapping) else v for v in item
                ]
            else:
                out[key] = item
        return out


def render_json(_: Any, __: str, event: EventDict) -> bytes:
    return orjson.dumps(event, default=str) + b"\n"


class AuditLog:
    """Builds and writes audit events.

    The processor chain runs in the request path (it is cheap: a dict walk and one orjson
    call); writing is batched: lines are buffered and written with one ``write()`` per
    ``flush_interval`` (or as soon as 64 KiB are pending, or at shutdown), so the event
    loop does not pay a blocking syscall per request. A crash can lose at most the last
    ``flush_interval`` of events; set it to 0 to write every line at once.
    """

    def __init__(
        self,
        *,
        sink: str = "stdout",
        path: Path | None = None,
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        redact: Iterable[str] = (),
        redact_headers: Iterable[str] = (),
        stream: IO[bytes] | None = None,
        flush_interval: float = 0.05,
    ) -> None:
        self._lock = threading.Lock()
        self._failed = False
        self.enabled = sink != "none"
        self._rotating: _RotatingWriter | None = None
        self._write: Callable[[bytes], None]
        if sink == "file":
            assert path is not None
            path.parent.mkdir(parents=True, exist_ok=True)
            self._rotating = _RotatingWriter(path, max_bytes, backups)
            self._write = self._rotating.write
        else:
            out = stream if stream is not None else sys.stdout.buffer
            self._write = _stream_writer(out)
        self.redactor = Redactor(redact, redact_headers)
        self.processors: list[Processor] = [add_timestamp, self.redactor, render_json]
        #: Called with every (redacted) event, e.g. the monitor; must be cheap, never raise.
        self.observers: list[Callable[[dict[str, Any]], None]] = []
        self.flush_interval = flush_interval
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_handle: asyncio.TimerHandle | None = None

    def emit(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            value: Any = event
            for processor in self.processors:
                value = processor(None, "info", value)
                if processor is self.redactor:
                    for observer in self.observers:  # they see the redacted event only
                        observer(value)
            line: bytes = value
            with self._lock:
                self._pending.append(line)
                self._pending_bytes += len(line)
                if self._pending_bytes >= _FLUSH_BYTES or self.flush_interval <= 0:
                    self._flush_locked()
                elif self._flush_handle is None:
                    try:
                        loop = asyncio.get_running_loop()
                    except RuntimeError:
                        self._flush_locked()
                    else:
                        self._flush_handle = loop.call_later(self.flush_interval, self.flush)
        except Exception as exc:  # an audit sink failure must never break a request
            self._report(exc)

    def flush(self) -> None:
        """Write every pending line now."""
        try:
            with self._lock:
                self._flush_locked()
        except Exception as exc:
            self._report(exc)

    def _flush_locked(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._write(data)

    def _report(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            print(f"bastion: audit sink failed: {type(exc).__name__}", file=sys.stderr)

    def close(self) -> None:
        self.flush()
        if self._rotating is not None:
            self._rotating.close()


_FLUSH_BYTES = 65_536


def _stream_writer(out: IO[bytes]) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    return write


class _RotatingWriter:
    """Size-based rotation: path, path.1, ... path.N (like logging's RotatingFileHandler).

    Lines are appended with O_APPEND in whole-line writes, so several worker processes may
    share one file; rotation is done by whichever process crosses the size first.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._rotate()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.backups > 0:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            if self.path.exists():
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def event_from_context(ctx: RequestContext, now: float, ipv6_prefix: int = 64) -> dict[str, Any]:
    """The audit event for one finished request (before redaction).

    An IPv6 client also gets ``client_net``, the network it is counted as
    (:func:`~bastion.gateway.request.client_key`): detectors and playbooks act on it.
    """
    decision = ctx.decision
    event: dict[str, Any] = {
        "event": "request",
        "request_id": ctx.request_id,
        "client_ip": ctx.client_ip,
        "method": ctx.method,
        "path": ctx.path,
        "api": ctx.api,
        "route": ctx.route,
        "status": ctx.status,
        "decision": _decision(ctx),
        "reason": ctx.error_reason or (decision.reason if decision else "allowed"),
        "principal": ctx.principal.subject if ctx.principal else None,
        "upstream": ctx.upstream,
        "upstream_ms": round(ctx.upstream_latency * 1000, 3)
        if ctx.upstream_latency is not None
        else None,
        "total_ms": round((now - ctx.started) * 1000, 3),
        "bytes_in": ctx.bytes_in,
        "bytes_out": ctx.bytes_out,
    }
    if ctx.principal is not None and ctx.principal.credential_id:
        event["credential_id"] = ctx.principal.credential_id
    if ctx.path_params:
        event["params"] = dict(ctx.path_params)
    if ctx.peer_ip != ctx.client_ip:
        event["peer_ip"] = ctx.peer_ip
    network = client_key(ctx.client_ip, ipv6_prefix)
    if network != ctx.client_ip:
        event["client_net"] = network
    traceparent = ctx.headers.get("traceparent")
    if traceparent:
        event["traceparent"] = traceparent
    user_agent = ctx.headers.get("user-agent")
    if user_agent:
        event["user_agent"] = user_agent[:256]
    if ctx.query_string:
        event["query"] = _query_map(ctx.query_string)
    if decision is not None and decision.details:
        event["decision_details"] = list(decision.details)
    if ctx.audit:
        event.update(ctx.audit)
    return event


def _decision(ctx: RequestContext) -> str:
    """allow, deny (a policy refused), or error (the gateway or the upstream failed)."""
    if ctx.decision is not None and not ctx.decision.allowed:
        return "deny"
    if ctx.error_reason is not None:
        return "error" if ctx.status >= 500 or ctx.status == 0 else "deny"
    return "allow"


def _query_map(query: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        out[key] = value[:256]
    return out


@contextmanager
def capture_audit(log: AuditLog) -> Iterator[list[dict[str, Any]]]:
    """Test helper: collect the events ``log`` emits (after redaction) in a list."""
    captured: list[dict[str, Any]] = []
    original = (log._write, log.flush_interval, log.enabled)

    def keep(data: bytes) -> None:
        captured.extend(orjson.loads(line) for line in data.splitlines() if line)

    log.flush()
    log._write, log.flush_interval, log.enabled = keep, 0.0, True
    try:
        yield captured
    finally:
        log._write, log.flush_interval, log.enabled = original
