"""The scanner's HTTP driver: aiohttp on the scanner's own asyncio loop.

Every request goes through :meth:`Probe.send`, which enforces, in this order: the scope
(only the target's scheme, host and port), safe mode (no DELETE, no writes to objects the
scanner did not create, unless ``unsafe``), the time budget, and the client-side rate limit
(a token bucket). Redirects are never followed, so a redirect cannot leave the scope. Each
exchange is recorded for the checks and the reports.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from bastion.jsonutil import dumps, loads_strict

__all__ = [
    "BudgetExhausted",
    "Exchange",
    "OutOfScope",
    "Probe",
    "RateLimiter",
    "UnsafeRequest",
]

Clock = Callable[[], float]
MAX_BODY = 1 << 20


class ProbeError(Exception):
    """A request the probe refused to send."""


class OutOfScope(ProbeError):
    pass


class UnsafeRequest(ProbeError):
    pass


class BudgetExhausted(ProbeError):
    pass


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes | None
    status: int | None
    response_headers: dict[str, str]
    body: bytes
    elapsed: float
    identity: str | None = None
    operation: str | None = None
    error: str | None = None
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.response_headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        if not self._parsed:
            self._parsed = True
            try:
                self._json = loads_strict(self.body) if self.body else None
            except ValueError:
                self._json = None
        return self._json


class RateLimiter:
    """Token bucket: at most ``rate`` requests per second, bursts of ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.sleep = sleep
        self.capacity = float(burst if burst is not None else max(1, int(rate)))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            wait = (1 - self.tokens) / self.rate
            await self.sleep(wait)
            # the token that accrued during the wait is the one this caller takes
            self.tokens, self.updated = 0.0, now + wait


class Probe:
    def __init__(
        self,
        target: str,
        *,
        rate: float = 50.0,
        budget: float = 60.0,
        unsafe: bool = False,
        timeout: float = 10.0,
        concurrency: int = 8,
        ca_file: str | None = None,
        insecure: bool = False,
        clock: Clock = time.monotonic,
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"target must be an http(s) URL, got {target!r}")
        self.target = target.rstrip("/")
        self.scheme = parts.scheme
        self.netloc = parts.netloc.lower()
        self.base_path = parts.path.rstrip("/")
        self.unsafe = unsafe
        self.ca_file, self.insecure = ca_file, insecure
        self.clock = clock
        self.deadline = clock() + budget
        self.limiter = RateLimiter(rate, clock=clock)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.semaphore = asyncio.Semaphore(concurrency)
        self.exchanges: list[Exchange] = []
        self.created_paths: set[str] = set()
        self.refused: list[str] = []
        self.on_exchange: Callable[[Exchange], None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Probe:
        tls: ssl.SSLContext | bool = True
        if self.insecure:
            tls = False
        elif self.ca_file:
            tls = ssl.create_default_context(cafile=self.ca_file)
        connector = aiohttp.TCPConnector(limit=32, force_close=False, ssl=tls)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def remaining(self) -> float:
        return self.deadline - self.clock()

    def url(
        self, path: str, query: dict[str, Any] | Iterable[tuple[str, Any]] | None = None
    ) -> str:
        base = f"{self.scheme}://{self.netloc}"
        url = base + (path if path.startswith("/") else "/" + path)
        if query:
            url += "?" + urlencode(
                list(query.items()) if isinstance(query, dict) else list(query), doseq=True
            )
        return url

    def in_scope(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme == self.scheme and parts.netloc.lower() == self.netloc

    def mark_created(self, path: str) -> None:
        self.created_paths.add(path.rstrip("/"))

    def write_allowed(self, method: str, path: str, template: str | None) -> bool:
        """Safe mode: creations (POST to a path without object ids) and writes under objects
        the scanner created; never DELETE."""
        if self.unsafe or method in {"GET", "HEAD", "OPTIONS"}:
            return True
        if method == "DELETE" or method == "TRACE":
            return method == "TRACE"
        concrete = path.split("?", 1)[0].rstrip("/")
        if any(concrete == p or concrete.startswith(p + "/") for p in self.created_paths):
            return True
        has_ids = "{" in (template or "")
        return method == "POST" and not has_ids and template is not None

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        identity: str | None = None,
        operation: str | None = None,
        template: str | None = None,
        url: str | None = None,
    ) -> Exchange:
        method = method.upper()
        full = url or self.url(path, query)
        if not self.in_scope(full):
            raise OutOfScope(full)
        if not self.write_allowed(method, urlsplit(full).path, template):
            self.refused.append(f"{method} {urlsplit(full).path}")
            raise UnsafeRequest(f"{method} {full} needs --unsafe")
        if self.remaining <= 0:
            raise BudgetExhausted()
        send_headers = dict(headers or {})
        body = data
        if json is not None:
            body = dumps(json)
            send_headers.setdefault("Content-Type", "application/json")
        send_headers.setdefault("User-Agent", "bastion-scan/0.1")
        await self.limiter.acquire()
        assert self._session is not None, "use Probe as an async context manager"
        async with self.semaphore:
            started = self.clock()
            try:
                payload: bytes | io.BytesIO | None = body
                if body is not None and len(body) > 512 * 1024:
                    payload = io.BytesIO(body)  # aiohttp streams it instead of warning
                async with self._session.request(
                    method,
                    full,
                    headers=send_headers,
                    data=payload,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=max(0.5, min(self.timeout.total or 10, self.remaining + 1))
                    ),
                ) as response:
                    content = await response.content.read(MAX_BODY)
                    exchange = Exchange(
                        method,
                        full,
                        send_headers,
                        body,
                        response.status,
                        {str(k): str(v) for k, v in response.headers.items()},
                        content,
                        self.clock() - started,
                        identity,
                        operation,
                    )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                exchange = Exchange(
                    method,
                    full,
                    send_headers,
                    body,
                    None,
                    {},
                    b"",
                    self.clock() - started,
                    identity,
                    operation,
                    error=type(exc).__name__,
                )
        self.exchanges.append(exchange)
        if self.on_exchange is not None:
            self.on_exchange(exchange)
        return exchange
