"""Attack detectors over the stream of audit events.

Each detector turns events into window updates (:class:`~.windows.Batch`) and, once the
batch is applied (locally or in Redis, see :mod:`.windows`), judges the window values of
the keys it touched. A detector that judges a key above its threshold returns a
:class:`Finding`; deduplication and rate limiting are the alert layer's job, so a detector
may report the same finding on every pass while the attack lasts.

Detectors (names as used in playbooks):

* ``auth_failure_ip`` / ``auth_failure_principal`` — 401s per client IP; 401/403s per
  principal;
* ``enumeration`` — one principal touching many distinct object ids (route template +
  path parameter values, taken from ``params`` or derived from ``path`` vs ``route``) with
  a high share of 403/404 (BOLA probing, OWASP API1:2023);
* ``credential_stuffing`` — many distinct login keys (``login_key``, a hash of the
  username) from one IP; without that field, failed logins from one IP;
* ``scraping`` — a principal's requests per interval far above its own EWMA baseline;
* ``upstream_5xx`` — 5xx answers of one upstream, by count and share;
* ``data_exposure`` — responses the contract flagged ``data_exposure_suspected``;
* ``token_many_ips`` — one credential (``credential_id``, else the principal) used from many
  client IPs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion.observability.config import DetectorsConfig
from bastion.observability.windows import Batch, Readings

__all__ = ["Detector", "Finding", "build_detectors", "object_id", "run_pass"]

Event = Mapping[str, Any]


@dataclass(frozen=True)
class Finding:
    detector: str
    subject: str
    summary: str
    severity: str = "warning"
    ip: str | None = None
    principal: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.detector}:{self.subject}"


class Detector:
    name = ""

    def collect(self, event: Event, batch: Batch) -> None:
        raise NotImplementedError

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        raise NotImplementedError


def object_id(event: Event) -> str | None:
    """``route|value,...`` for a request that names objects in its path, else None."""
    route = event.get("route")
    if not route or "{" not in route:
        return None
    params = event.get("params")
    if isinstance(params, Mapping) and params:
        values = [str(params[k]) for k in sorted(params)]
    else:
        path = event.get("path")
        if not isinstance(path, str):
            return None
        template_parts, path_parts = route.strip("/").split("/"), path.strip("/").split("/")
        if len(template_parts) != len(path_parts):
            return None
        values = [p for t, p in zip(template_parts, path_parts, strict=True) if "{" in t]
    return f"{route}|{','.join(values)}"[:512]


class _Touched:
    """Keys touched in the current pass: window key -> context for the finding."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}

    def take(self) -> dict[str, dict[str, Any]]:
        keys, self.keys = self.keys, {}
        return keys


def _client(event: Event) -> Any:
    """The client as it is counted: its IPv6 network (``client_net``) or its address."""
    return event.get("client_net") or event.get("client_ip")


class AuthFailureByIp(Detector):
    name = "auth_failure_ip"

    def __init__(self, threshold: int, window: float) -> None:
        self.threshold, self.window, self._touched = threshold, window, _Touched()

    def collect(self, event: Event, batch: Batch) -> None:
        if event.get("status") != 401:
            return
        ip = _client(event)
        if ip:
            batch.add(f"af_ip:{ip}", self.window)
            self._touched.keys[str(ip)] = {}

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        out = []
        for ip in self._touched.take():
            count = readings.counts.get((f"af_ip:{ip}", self.window), 0)
            if count >= self.threshold:
                out.append(
                    Finding(
                        self.name,
                        f"ip:{ip}",
                        f"{count} authentication failures from {ip} in {self.window:g}s",
                        ip=ip,
                        evidence={"failures": count, "window": self.window},
                    )
                )
        return out


class AuthFailureByPrincipal(Detector):
    name = "auth_failure_principal"

    def __init__(self, threshold: int, window: float) -> None:
        self.threshold, self.window, self._touched = threshold, window, _Touched()

    def collect(self, event: Event, batch: Batch) -> None:
        principal = event.get("principal")
        if principal and event.get("status") in (401, 403):
            batch.add(f"af_p:{principal}", self.window)
            self._touched.keys[str(principal)] = {"ip": _client(event)}

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        out = []
        for principal, ctx in self._touched.take().items():
            count = readings.counts.get((f"af_p:{principal}", self.window), 0)
            if count >= self.threshold:
                out.append(
                    Finding(
                        self.name,
                        f"principal:{principal}",
                        f"{count} refusals for principal {principal} in {self.window:g}s",
                        principal=principal,
                        ip=ctx.get("ip"),
                        evidence={"refusals": count, "window": self.window},
                    )
                )
        return out


class Enumeration(Detector):
    name = "enumeration"

    def __init__(self, distinct_objects: int, denied_ratio: float, window: float) -> None:
        self.distinct, self.ratio, self.window = distinct_objects, denied_ratio, window
        self._touched = _Touched()

    def collect(self, event: Event, batch: Batch) -> None:
        principal = event.get("principal")
        if not principal or event.get("event") != "request":
            return
        obj = object_id(event)
        if obj is None:
            return
        batch.add(f"en_t:{principal}", self.window)
        if event.get("status") in (403, 404):
            batch.add(f"en_d:{principal}", self.window)
        batch.add_member(f"en_o:{principal}", self.window, obj)
        self._touched.keys[str(principal)] = {
            "ip": _client(event),
            "route": event.get("route"),
        }

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        out = []
        for principal, ctx in self._touched.take().items():
            objects = readings.distinct.get((f"en_o:{principal}", self.window), 0)
            total = readings.counts.get((f"en_t:{principal}", self.window), 0)
            denied = readings.counts.get((f"en_d:{principal}", self.window), 0)
            if objects >= self.distinct and total and denied / total >= self.ratio:
                out.append(
                    Finding(
                        self.name,
                        f"principal:{principal}",
                        f"principal {principal} touched {objects} distinct objects in "
                        f"{self.window:g}s, {denied}/{total} refused (403/404)",
                        severity="critical",
                        principal=principal,
                        ip=ctx.get("ip"),
                        evidence={
                            "distinct_objects": objects,
                            "requests": total,
                            "denied": denied,
                            "route": ctx.get("route"),
                            "window": self.window,
                        },
                    )
                )
        return out


class CredentialStuffing(Detector):
    name = "credential_stuffing"

    def __init__(self, distinct_usernames: int, window: float) -> None:
        self.threshold, self.window, self._touched = distinct_usernames, window, _Touched()

    def collect(self, event: Event, batch: Batch) -> None:
        login = event.get("login")
        if login is None:
            return
        ip = _client(event)
        if not ip:
            return
        key = event.get("login_key")
        if isinstance(key, str) and key:
            batch.add_member(f"cs_u:{ip}", self.window, key)
            self._touched.keys[str(ip)] = {"distinct": True}
        elif login in ("failure", "lockout", "locked"):
            batch.add(f"cs_f:{ip}", self.window)
            self._touched.keys.setdefault(str(ip), {"distinct": False})

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        out = []
        for ip, ctx in self._touched.take().items():
            if ctx["distinct"]:
                value = readings.distinct.get((f"cs_u:{ip}", self.window), 0)
                what = "distinct usernames"
            else:
                value = readings.counts.get((f"cs_f:{ip}", self.window), 0)
                what = "failed logins"
            if value >= self.threshold:
                out.append(
                    Finding(
                        self.name,
                        f"ip:{ip}",
                        f"{value} {what} from {ip} in {self.window:g}s",
                        severity="critical",
                        ip=ip,
                        evidence={what.replace(" ", "_"): value, "window": self.window},
                    )
                )
        return out


@dataclass
class _Baseline:
    interval: int
    reading: int = 0
    baseline: float = 0.0
    seen: int = 0


class Scraping(Detector):
    """Volume per principal against its own EWMA baseline (kept per process; the volume
    itself is read from the shared window)."""

    name = "scraping"
    MAX_TRACKED = 100_000

    def __init__(
        self, interval: float, factor: float, min_requests: int, alpha: float, warmup: int
    ) -> None:
        self.interval, self.factor, self.min_requests = interval, factor, min_requests
        self.alpha, self.warmup = alpha, warmup
        self._touched = _Touched()
        self._state: OrderedDict[str, _Baseline] = OrderedDict()

    def collect(self, event: Event, batch: Batch) -> None:
        principal = event.get("principal")
        if principal and event.get("event") == "request":
            batch.add(f"sc:{principal}", self.interval)
            self._touched.keys[str(principal)] = {"ip": _client(event)}

    def _fold(self, principal: str, now: float) -> _Baseline:
        index = int(now // self.interval)
        state = self._state.get(principal)
        if state is None:
            state = _Baseline(interval=index)
            self._state[principal] = state
            if len(self._state) > self.MAX_TRACKED:
                self._state.popitem(last=False)
        else:
            self._state.move_to_end(principal)
        if index > state.interval:
            # Close the previous interval with its last reading; empty intervals fold zeros.
            state.baseline = self.alpha * state.reading + (1 - self.alpha) * state.baseline
            state.baseline *= (1 - self.alpha) ** min(index - state.interval - 1, 1000)
            state.seen += index - state.interval
            state.interval, state.reading = index, 0
        return state

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        out = []
        for principal, ctx in self._touched.take().items():
            state = self._fold(principal, now)
            # The shared sliding count over one interval, attributed to the current one.
            count = readings.counts.get((f"sc:{principal}", self.interval), 0)
            state.reading = max(state.reading, count)
            limit = max(self.min_requests, self.factor * state.baseline)
            if state.seen >= self.warmup and count > limit:
                out.append(
                    Finding(
                        self.name,
                        f"principal:{principal}",
                        f"principal {principal}: {count} requests in {self.interval:g}s, "
                        f"baseline {state.baseline:.1f}",
                        principal=principal,
                        ip=ctx.get("ip"),
                        evidence={
                            "requests": count,
                            "baseline": round(state.baseline, 2),
                            "interval": self.interval,
                        },
                    )
                )
        return out


class UpstreamErrors(Detector):
    name = "upstream_5xx"

    def __init__(self, threshold: int, ratio: float, window: float) -> None:
        self.threshold, self.ratio, self.window = threshold, ratio, window
        self._touched = _Touched()

    def collect(self, event: Event, batch: Batch) -> None:
        upstream = event.get("upstream")
        if not upstream or event.get("event") != "request":
            return
        batch.add(f"up_t:{upstream}", self.window)
        status = event.get("status")
        if isinstance(status, int) and status >= 500:
            batch.add(f"up_e:{upstream}", self.window)
            self._touched.keys[str(upstream)] = {}

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        out = []
        for upstream in self._touched.take():
            errors = readings.counts.get((f"up_e:{upstream}", self.window), 0)
            total = readings.counts.get((f"up_t:{upstream}", self.window), 0)
            if errors >= self.threshold and total and errors / total >= self.ratio:
                out.append(
                    Finding(
                        self.name,
                        f"upstream:{upstream}",
                        f"upstream {upstream}: {errors}/{total} answers 5xx in {self.window:g}s",
                        severity="critical",
                        evidence={"errors": errors, "requests": total, "window": self.window},
                    )
                )
        return out


class DataExposure(Detector):
    name = "data_exposure"

    def __init__(self) -> None:
        self._found: list[Finding] = []

    def collect(self, event: Event, batch: Batch) -> None:
        flagged = event.get("data_exposure_suspected")
        if not flagged and event.get("event") != "data_exposure_suspected":
            return
        kinds = sorted(
            {str(item.get("kind")) for item in flagged if isinstance(item, Mapping)}
            if isinstance(flagged, list)
            else set()
        )
        where = f"{event.get('api')} {event.get('route')}"
        self._found.append(
            Finding(
                self.name,
                f"route:{where}",
                f"suspected sensitive data ({', '.join(kinds) or 'unknown'}) in a response of "
                f"{where}",
                severity="critical",
                principal=event.get("principal"),
                ip=_client(event),
                evidence={"kinds": kinds, "request_id": event.get("request_id")},
            )
        )

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        found, self._found = self._found, []
        return found


class TokenManyIps(Detector):
    name = "token_many_ips"

    def __init__(self, distinct_ips: int, window: float) -> None:
        self.threshold, self.window, self._touched = distinct_ips, window, _Touched()

    def collect(self, event: Event, batch: Batch) -> None:
        principal = event.get("principal")
        if not principal or event.get("status") == 401:
            return
        ip = _client(event)
        if not ip:
            return
        credential = str(event.get("credential_id") or principal)
        batch.add_member(f"tk:{credential}", self.window, str(ip))
        self._touched.keys[credential] = {"principal": principal}

    def judge(self, readings: Readings, now: float) -> list[Finding]:
        out = []
        for credential, ctx in self._touched.take().items():
            ips = readings.distinct.get((f"tk:{credential}", self.window), 0)
            if ips >= self.threshold:
                out.append(
                    Finding(
                        self.name,
                        f"credential:{credential}",
                        f"credential {credential} used from {ips} IPs in {self.window:g}s",
                        principal=ctx["principal"],
                        evidence={"distinct_ips": ips, "window": self.window},
                    )
                )
        return out


def build_detectors(config: DetectorsConfig) -> list[Detector]:
    if not config.enabled:
        return []
    c = config
    candidates: Sequence[tuple[bool, Any]] = (
        (c.auth_failure_ip.enabled, lambda: AuthFailureByIp(
            c.auth_failure_ip.threshold, c.auth_failure_ip.window)),
        (c.auth_failure_principal.enabled, lambda: AuthFailureByPrincipal(
            c.auth_failure_principal.threshold, c.auth_failure_principal.window)),
        (c.enumeration.enabled, lambda: Enumeration(
            c.enumeration.distinct_objects, c.enumeration.denied_ratio, c.enumeration.window)),
        (c.credential_stuffing.enabled, lambda: CredentialStuffing(
            c.credential_stuffing.distinct_usernames, c.credential_stuffing.window)),
        (c.scraping.enabled, lambda: Scraping(
            c.scraping.interval, c.scraping.factor, c.scraping.min_requests, c.scraping.alpha,
            c.scraping.warmup_intervals)),
        (c.upstream_5xx.enabled, lambda: UpstreamErrors(
            c.upstream_5xx.threshold, c.upstream_5xx.ratio, c.upstream_5xx.window)),
        (c.data_exposure.enabled, DataExposure),
        (c.token_many_ips.enabled, lambda: TokenManyIps(
            c.token_many_ips.distinct_ips, c.token_many_ips.window)),
    )  # fmt: skip
    return [factory() for enabled, factory in candidates if enabled]


async def run_pass(
    detectors: Iterable[Detector], events: Iterable[Event], windows: Any, now: float
) -> list[Finding]:
    """Feed ``events`` to every detector, apply the window updates, judge."""
    batch = Batch()
    detectors = list(detectors)
    for event in events:
        for detector in detectors:
            detector.collect(event, batch)
    readings = await windows.apply(batch, now) if batch else Readings({}, {})
    findings: list[Finding] = []
    for detector in detectors:
        findings.extend(detector.judge(readings, now))
    return findings
