"""Request metrics: cheap in-process aggregation, Prometheus text exposition.

:meth:`RequestMetrics.observe` runs on the request path for every audit event, so it does
only dictionary increments and one ``bisect`` per histogram (no locks: one event loop per
process). Exposition builds prometheus-client metric families from the aggregate
(:class:`MetricsCollector`) and renders them with ``generate_latest``.

Several worker processes: every worker writes its aggregate as a JSON snapshot to a shared
directory (:class:`SnapshotDir`) once per ``snapshot_interval``; ``/metrics`` on any worker
merges its live aggregate with the other workers' snapshots, so the scrape is the sum over
the gateway instance (counters may lag by one interval). This is prometheus-client's
multiprocess idea without its per-increment mmap writes on the hot path.

The snapshot directory must be private: whoever can write to it can forge the numbers
/metrics and the dashboard show, and the default one sits in the shared temp dir under a
predictable name. So every level Bastion creates is made 0700, a directory that is a
symlink, not owned by this user or writable by group or others is refused
(:class:`UnsafeSnapshotDir`; the worker then reports only its own numbers), and files are
created, read and removed without ever following a symlink.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "BUCKETS_MS",
    "MetricsCollector",
    "RequestMetrics",
    "SnapshotDir",
    "UnsafeSnapshotDir",
    "render",
]

#: Histogram upper bounds in milliseconds (exposed in seconds).
BUCKETS_MS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
              5000.0, 10000.0)  # fmt: skip
_NB = len(BUCKETS_MS) + 1

# family name -> (help, label names)
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bastion_requests": (
        "Requests by API, route, status, decision and decision reason.",
        ("api", "route", "status", "decision", "reason"),
    ),
    "bastion_auth_failures": ("Authentication failures (401) by reason.", ("reason",)),
    "bastion_rate_limited": ("Requests refused by a rate limit (429).", ("api", "route")),
    "bastion_deprecated_calls": ("Calls to deprecated API versions.", ("api", "route")),
    "bastion_upstream_responses": (
        "Upstream answers by upstream and status class (upstream health).",
        ("upstream", "class"),
    ),
    "bastion_events": ("Audit events other than requests, by event.", ("event",)),
    "bastion_alerts": ("Alerts raised, by detector.", ("detector",)),
    "bastion_alerts_suppressed": ("Alerts dropped by dedup or rate limit.", ("why",)),
    "bastion_alert_deliveries": ("Alert deliveries by sink and outcome.", ("sink", "outcome")),
    "bastion_incident_actions": ("Playbook actions by action and outcome.", ("action", "outcome")),
    "bastion_monitor_dropped_events": ("Events the detectors could not queue.", ()),
}
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bastion_gateway_overhead_seconds": (
        "Time spent in the gateway itself (total minus upstream).",
        ("api",),
    ),
    "bastion_upstream_seconds": ("Upstream response time.", ("api", "upstream")),
}

Key = tuple[str, ...]


class RequestMetrics:
    """The aggregate of one process. Counters are ``{family: {labels: count}}``."""

    def __init__(self, top_entries: int = 2000) -> None:
        self.counters: dict[str, dict[Key, float]] = {name: {} for name in COUNTERS}
        # histogram family -> labels -> [bucket counts..., sum_ms]
        self.histograms: dict[str, dict[Key, list[float]]] = {name: {} for name in HISTOGRAMS}
        self.top_entries = top_entries
        #: Dashboard tops: value -> [requests, denied]
        self.principals: dict[str, list[int]] = {}
        self.ips: dict[str, list[int]] = {}

    def inc(self, family: str, labels: Key, amount: float = 1.0) -> None:
        series = self.counters[family]
        series[labels] = series.get(labels, 0.0) + amount

    def observe(self, event: Mapping[str, Any]) -> None:
        """Account one audit event. Odd values are skipped or raise TypeError (callers
        catch it); label values come from the config and the gateway, never raw input."""
        get = event.get
        kind = get("event")
        if kind != "request":
            self.inc("bastion_events", (str(kind),))
            return
        api = get("api") or ""
        route = get("route") or ""
        status = get("status") or 0
        reason = get("reason") or ""
        decision = get("decision") or ""
        counters = self.counters
        key = (api, route, str(status), decision, reason)
        series = counters["bastion_requests"]
        series[key] = series.get(key, 0.0) + 1.0
        if status == 401:
            self.inc("bastion_auth_failures", (reason,))
        elif status == 429 and reason.startswith("ratelimit"):
            self.inc("bastion_rate_limited", (api, route))
        if get("deprecated"):
            self.inc("bastion_deprecated_calls", (api, route))
        total = get("total_ms")
        upstream_ms = get("upstream_ms")
        if type(upstream_ms) is float or type(upstream_ms) is int:
            upstream = get("upstream")
            if upstream:
                self._hist("bastion_upstream_seconds", (api, str(upstream)), upstream_ms)
                self.inc(
                    "bastion_upstream_responses",
                    (str(upstream), f"{status // 100}xx" if status else "error"),
                )
        else:
            upstream_ms = 0.0
        if type(total) is float or type(total) is int:
            overhead = total - upstream_ms
            self._hist(
                "bastion_gateway_overhead_seconds", (api,), overhead if overhead > 0 else 0.0
            )
        denied = decision != "allow"
        principal = get("principal")
        if principal:
            _top(self.principals, str(principal), denied, self.top_entries)
        ip = get("client_ip")
        if ip:
            _top(self.ips, str(ip), denied, self.top_entries)

    def _hist(self, family: str, labels: Key, value_ms: float) -> None:
        series = self.histograms[family]
        row = series.get(labels)
        if row is None:
            row = series[labels] = [0.0] * (_NB + 1)
        row[bisect_left(BUCKETS_MS, value_ms)] += 1
        row[_NB] += value_ms

    # -- snapshots ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "counters": {f: [[list(k), v] for k, v in s.items()] for f, s in self.counters.items()},
            "histograms": {
                f: [[list(k), row] for k, row in s.items()] for f, s in self.histograms.items()
            },
            "principals": self.principals,
            "ips": self.ips,
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        for family, rows in data.get("counters", {}).items():
            if family in self.counters:
                for labels, value in rows:
                    self.inc(family, tuple(labels), float(value))
        for family, rows in data.get("histograms", {}).items():
            series = self.histograms.get(family)
            if series is None:
                continue
            for labels, row in rows:
                mine = series.setdefault(tuple(labels), [0.0] * (_NB + 1))
                for i, value in enumerate(row[: _NB + 1]):
                    mine[i] += float(value)
        for name in ("principals", "ips"):
            target: dict[str, list[int]] = getattr(self, name)
            for value, (count, denied) in data.get(name, {}).items():
                row = target.setdefault(value, [0, 0])
                row[0] += int(count)
                row[1] += int(denied)

    def totals(self) -> dict[str, Any]:
        """Small summary for the dashboard: requests by decision/reason, latency quantiles."""
        by_reason: dict[str, float] = {}
        by_status: dict[str, float] = {}
        total = denied = 0.0
        for (_, _, status, decision, reason), count in self.counters["bastion_requests"].items():
            total += count
            by_status[status[:1] + "xx"] = by_status.get(status[:1] + "xx", 0.0) + count
            if decision != "allow":
                denied += count
                by_reason[reason] = by_reason.get(reason, 0.0) + count
        return {
            "requests": total,
            "denied": denied,
            "by_reason": by_reason,
            "by_status": by_status,
            "overhead_ms": _quantiles(self.histograms["bastion_gateway_overhead_seconds"]),
            "upstream_ms": _quantiles(self.histograms["bastion_upstream_seconds"]),
            "top_principals": _top_list(self.principals),
            "top_ips": _top_list(self.ips),
        }


def _top(table: dict[str, list[int]], value: str, denied: bool, cap: int) -> None:
    row = table.get(value)
    if row is None:
        if len(table) >= cap:
            # Bounded: the less frequent half goes, so a heavy hitter arriving after
            # ``cap`` others is still counted (new values were dropped for good: one
            # request from each of 2,000 addresses hid every later attacker).
            kept = sorted(table.items(), key=lambda item: item[1][0], reverse=True)
            table.clear()
            table.update(kept[: cap // 2])
        row = table[value] = [0, 0]
    row[0] += 1
    if denied:
        row[1] += 1


def _top_list(table: Mapping[str, list[int]], n: int = 10) -> list[dict[str, Any]]:
    rows = sorted(table.items(), key=lambda item: item[1][0], reverse=True)[:n]
    return [{"value": v, "requests": c, "denied": d} for v, (c, d) in rows]


def _quantiles(series: Mapping[Key, list[float]]) -> dict[str, float | None]:
    merged = [0.0] * (_NB + 1)
    for row in series.values():
        for i, value in enumerate(row):
            merged[i] += value
    count = sum(merged[:_NB])
    out: dict[str, float | None] = {"count": count}
    for q in (0.5, 0.9, 0.99):
        out[f"p{round(q * 100)}"] = _quantile(merged, count, q)
    out["mean"] = merged[_NB] / count if count else None
    return out


def _quantile(buckets: list[float], count: float, q: float) -> float | None:
    if not count:
        return None
    rank, seen = q * count, 0.0
    for i, value in enumerate(buckets[:_NB]):
        seen += value
        if seen >= rank:
            return BUCKETS_MS[i] if i < len(BUCKETS_MS) else float("inf")
    return None


class MetricsCollector(Collector):
    """Builds the metric families from a function returning the merged aggregate."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        metrics: RequestMetrics = self._source()
        for family, (doc, labels) in COUNTERS.items():
            name = family[: -len("_total")] if family.endswith("_total") else family
            counter = CounterMetricFamily(name, doc, labels=list(labels))
            for key, value in sorted(metrics.counters[family].items()):
                counter.add_metric(list(key), value)
            yield counter
        bounds = [str(b / 1000) for b in BUCKETS_MS] + ["+Inf"]
        for family, (doc, labels) in HISTOGRAMS.items():
            hist = HistogramMetricFamily(family, doc, labels=list(labels))
            for key, row in sorted(metrics.histograms[family].items()):
                cumulative, running = [], 0.0
                for bound, count in zip(bounds, row[:_NB], strict=True):
                    running += count
                    cumulative.append((bound, running))
                hist.add_metric(list(key), cumulative, row[_NB] / 1000)
            yield hist


def render(source: Any) -> bytes:
    """Prometheus text format (0.0.4) for the aggregate ``source()`` returns."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(source))
    return generate_latest(registry)


def _server_pid() -> int:
    """The supervisor's pid when this is a worker of ``bastion gateway`` (granian spawns
    workers from it), else this process's own pid (a single-process server: uvicorn, tests,
    or a parent that is just a shell or systemd, shared by unrelated gateways)."""
    parent = os.getppid()
    try:
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return os.getpid()
    words = [Path(word.decode(errors="replace")).name for word in cmdline]
    if any(w == "bastion" or w.startswith("bastion.") for w in words) and "gateway" in words:
        return parent
    return os.getpid()


class UnsafeSnapshotDir(PermissionError):
    """A snapshot directory someone else could write to (or a symlink to one): refused."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RUN_NAME = re.compile(r"[0-9a-f]{16}")  # the default directory's per-run tags
_SNAPSHOT_NAME = re.compile(r"metrics-[0-9]+\.json")
_OUR_FILE = re.compile(r"metrics-[0-9]+\.(?:json|tmp)")


def _check_private(path: Path, *, tighten: bool = False) -> None:
    """Refuse ``path`` unless it is a directory, not a symlink, owned by this user and not
    writable by group or others. ``tighten`` also takes away group/other read access
    (directories of earlier versions were 0755)."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise UnsafeSnapshotDir(
                f"metrics snapshot directory {path} is a symlink or not a directory: refused"
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise UnsafeSnapshotDir(
                f"metrics snapshot directory {path} belongs to uid {info.st_uid}, "
                f"not to this user (uid {os.getuid()}): refused"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022:
            raise UnsafeSnapshotDir(
                f"metrics snapshot directory {path} is writable by group or others "
                f"(mode {mode:04o}): refused; remove it or use a private directory"
            )
        if tighten and mode & 0o077:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _private_dir(path: Path, *, tighten: bool = False) -> None:
    """Create ``path`` and its missing parents, each 0700, then check every level created
    (possibly by someone else meanwhile) and ``path`` itself with :func:`_check_private`."""
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another worker was first: checked below
            os.mkdir(level, 0o700)  # the umask can only take bits away from 0700
        _check_private(level)
    _check_private(path, tighten=tighten)


def _forget_old_runs(base: Path, keep: str, age: float = 86_400.0) -> None:
    """Remove snapshot directories of gateway runs untouched for a day: only real
    directories (never a symlink's target) of this user named like a run, only the snapshot
    files in them, and the directory only if that left it empty."""
    horizon = time.time() - age
    try:
        base_fd = os.open(base, _DIR_FLAGS)
    except OSError:
        return
    try:
        for name in os.listdir(base_fd):
            if name != keep and _RUN_NAME.fullmatch(name):
                with contextlib.suppress(OSError):
                    _forget_run(base_fd, name, horizon)
    finally:
        os.close(base_fd)


def _forget_run(base_fd: int, name: str, horizon: float) -> None:
    fd = os.open(name, _DIR_FLAGS, dir_fd=base_fd)  # a symlink fails here (ELOOP)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid() or info.st_mtime >= horizon:
            return
        for entry in os.listdir(fd):
            if _OUR_FILE.fullmatch(entry):
                os.unlink(entry, dir_fd=fd)  # removes a link itself, never its target
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=base_fd)


def _read_snapshot(path: Path) -> Any:
    """The JSON in ``path`` if it is a regular file of this user, not a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        return orjson.loads(fh.read())


class SnapshotDir:
    """Per-worker snapshot files ``metrics-<pid>.json`` in one private directory."""

    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.path = path
        self.pid = pid if pid is not None else os.getpid()
        _private_dir(path)

    @classmethod
    def default(cls, configured: str | None) -> SnapshotDir:
        chosen = configured or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if chosen:
            return cls(Path(chosen))
        # Workers of one server share their parent (the `bastion gateway` supervisor); key
        # by it and by the config so two gateways never add up each other's numbers.
        config = os.environ.get("BASTION_CONFIG", "")
        tag = hashlib.sha256(f"{_server_pid()}:{config}".encode()).hexdigest()[:16]
        base = Path(tempfile.gettempdir()) / f"bastion-metrics-{os.getuid()}"
        _private_dir(base, tighten=True)  # a name anyone can take first: checked
        _forget_old_runs(base, keep=tag)
        return cls(base / tag)

    def write(self, metrics: RequestMetrics) -> None:
        target = self.path / f"metrics-{self.pid}.json"
        temporary = target.with_suffix(".tmp")
        data = orjson.dumps(metrics.snapshot())
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()  # a leftover of a crash; unlink never follows a symlink
        # O_EXCL: never opens an existing file or the target of a symlink.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(temporary, flags, 0o600), "wb") as fh:
            fh.write(data)
        temporary.replace(target)  # atomic: readers never see a half-written file

    def others(self) -> Iterator[dict[str, Any]]:
        own = f"metrics-{self.pid}.json"
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in sorted(names):
            if name == own or not _SNAPSHOT_NAME.fullmatch(name):
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                data = _read_snapshot(self.path / name)
                if isinstance(data, dict):
                    yield data

    def remove_own(self) -> None:
        with contextlib.suppress(OSError):
            (self.path / f"metrics-{self.pid}.json").unlink()
