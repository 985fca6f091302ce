"""Audit events: one JSON line per request, built by a structlog processor chain.

The chain is plain callables ``(logger, method_name, event_dict) -> event_dict``:

1. :func:`add_timestamp` — UTC ISO-8601 time;
2. :class:`Redactor` — removes credentials and configured body/query fields, and records
   which fields it redacted (``redacted: [...]``);
3. :func:`render_json` — orjson, one line.

Sinks: stdout, a size-rotated file, or a list (tests: :func:`capture_audit`). Writing never
raises into the request path: a failing sink is reported once on stderr and the event is
dropped, because an audit failure must not turn into a client-visible 5xx.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl

import orjson
import structlog

from bastion.types import RequestContext

__all__ = [
    "AuditLog",
    "Redactor",
    "add_timestamp",
    "capture_audit",
    "event_from_context",
    "render_json",
]

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], Any]
REDACTED = "[REDACTED]"
ALWAYS_REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


def add_timestamp(_: Any, __: str, event: EventDict) -> EventDict:
    now = time.time()
    event["time"] = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    )
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


class _Sink:
    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write

    def msg(self, line: bytes) -> None:
        self.write(line)

    info = msg


class AuditLog:
    """Builds and writes audit events. Thread- and process-safe per line."""

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
    ) -> None:
        self._lock = threading.Lock()
        self._failed = False
        self.enabled = sink != "none"
        write: Callable[[bytes], None]
        if sink == "file":
            assert path is not None
            path.parent.mkdir(parents=True, exist_ok=True)
            self._rotating = _RotatingWriter(path, max_bytes, backups)
            write = self._rotating.write
        else:
            out = stream if stream is not None else sys.stdout.buffer
            write = _stream_writer(out)
        self.redactor = Redactor(redact, redact_headers)
        processors: list[Processor] = [add_timestamp, self.redactor, render_json]
        self._logger = structlog.wrap_logger(
            _Sink(write), processors=processors, cache_logger_on_first_use=True
        )

    def emit(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            with self._lock:
                self._logger.info(**event)
        except Exception as exc:  # an audit sink failure must never break a request
            if not self._failed:
                self._failed = True
                print(f"bastion: audit sink failed: {type(exc).__name__}", file=sys.stderr)

    def close(self) -> None:
        rotating = getattr(self, "_rotating", None)
        if rotating is not None:
            rotating.close()


def _stream_writer(out: IO[bytes]) -> Callable[[bytes], None]:
    def write(line: bytes) -> None:
        out.write(line)
        out.flush()

    return write


class _RotatingWriter:
    """Size-based rotation: path, path.1, ... path.N (like logging's RotatingFileHandler)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._fh = open(path, "ab")  # noqa: SIM115 - long-lived handle
        self._size = self._fh.tell()

    def write(self, line: bytes) -> None:
        if self._size + len(line) > self.max_bytes and self._size > 0:
            self._rotate()
        self._fh.write(line)
        self._fh.flush()
        self._size += len(line)

    def _rotate(self) -> None:
        self._fh.close()
        if self.backups > 0:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._fh.close()


def event_from_context(ctx: RequestContext, now: float) -> dict[str, Any]:
    """The audit event for one finished request (before redaction)."""
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
    original = log._logger

    def keep(line: bytes) -> None:
        captured.append(orjson.loads(line))

    log._logger = structlog.wrap_logger(
        _Sink(keep), processors=[add_timestamp, log.redactor, render_json]
    )
    try:
        yield captured
    finally:
        log._logger = original
