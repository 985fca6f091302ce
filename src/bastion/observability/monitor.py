"""The monitor: metrics, detectors, alerts and playbooks for one gateway process.

The gateway calls :meth:`Monitor.observe` synchronously after every audit event. It costs
one bounded list append; everything else — metric aggregation (also done right before a
scrape, so /metrics is current), window updates (Redis round trips), alerts, playbook
actions, metric snapshots — runs in the background loop started by :meth:`Monitor.start`.
``observe`` never raises and never waits: a full queue drops the event and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from starlette.routing import BaseRoute

from bastion.observability.alerts import Alert, AlertDispatcher
from bastion.observability.audit import AuditLog
from bastion.observability.audit_db import AuditDbSink
from bastion.observability.config import MonitoringConfig
from bastion.observability.detectors import Finding, build_detectors, run_pass
from bastion.observability.incidents import AlertGate, IncidentLog
from bastion.observability.metrics import RequestMetrics, SnapshotDir, UnsafeSnapshotDir
from bastion.observability.playbooks import PlaybookRunner
from bastion.observability.windows import FallbackWindows, LocalWindows, RedisWindows, Windows
from bastion.state.base import StateStore

__all__ = ["Monitor"]

Event = Mapping[str, Any]


def _redis_of(store: StateStore) -> tuple[Any, str] | None:
    """The Redis client and key prefix of a Redis state store (None for other stores)."""
    from bastion.state.redis_store import RedisStateStore

    if isinstance(store, RedisStateStore):
        return store.client, store.prefix
    return None


class Monitor:
    def __init__(
        self,
        config: MonitoringConfig,
        *,
        store: StateStore,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.clock = clock
        self.gateway = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = RequestMetrics(config.metrics_options.top_entries)
        self._metrics_on = config.metrics or config.dashboard
        self.detectors = build_detectors(config.detectors)
        self._pending: list[Event] = []
        self._detect_queue: list[Event] = []
        self._dropped = 0
        self._queue_size = config.detectors.queue_size
        self._detecting = bool(self.detectors)
        redis = _redis_of(store)
        client, prefix = redis if redis is not None else (None, "bastion")
        self.windows: Windows = (
            FallbackWindows(RedisWindows(client, prefix))
            if client is not None and config.detectors.shared
            else LocalWindows()
        )
        self.incidents = IncidentLog(config.incidents_kept, client, prefix)
        self.gate = AlertGate(
            config.alerts.dedup_window, config.alerts.max_per_minute, clock, client, prefix
        )
        self.dispatcher = AlertDispatcher(
            config.alerts,
            count=lambda sink, outcome: self.metrics.inc(
                "bastion_alert_deliveries", (sink, outcome)
            ),
            clock=clock,
        )
        self.playbooks = PlaybookRunner(
            config.playbooks,
            store,
            self.emit,
            clock,
            count=lambda action, outcome: self.metrics.inc(
                "bastion_incident_actions", (action, outcome)
            ),
        )
        self.audit_db: AuditDbSink | None = None
        if config.audit_db is not None:
            db = config.audit_db
            self.audit_db = AuditDbSink(
                db.url,
                table=db.table,
                batch_size=db.batch_size,
                flush_interval=db.flush_interval,
                max_buffer=db.max_buffer,
                redactor=audit.redactor,
                clock=clock,
            )
        self.snapshots: SnapshotDir | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._errors: set[str] = set()
        self._lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self.audit_db is not None:
            await self.audit_db.start()
        await self.dispatcher.start()
        self._tasks.append(asyncio.create_task(self._detect_loop()))
        if self._metrics_on:
            try:
                self.snapshots = SnapshotDir.default(self.config.metrics_options.multiprocess_dir)
            except OSError as exc:
                self._note("snapshots", exc)
            else:
                self._tasks.append(asyncio.create_task(self._snapshot_loop()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.process_pending()
        if self.snapshots is not None:
            with contextlib.suppress(OSError):
                self.snapshots.write(self.metrics)
        await self.dispatcher.close()
        if self.audit_db is not None:
            await self.audit_db.close()

    # -- hot path ---------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Queue one audit event (bounded; a full queue drops and counts). Never raises.

        Metrics and detectors run over the queue in the background loop, and metrics also
        right before every scrape, so the request path only pays for one list append.
        """
        pending = self._pending
        if len(pending) < self._queue_size:
            pending.append(event)
        else:
            self._dropped += 1

    def emit(self, event: dict[str, Any]) -> None:
        """Audit an event of the monitor's own (alerts, incident actions, dashboard actions):
        to the audit log and, when configured, the audit database."""
        self.audit.emit(event)
        # When the monitor observes its audit log, the event came back through observe()
        # and reaches the database with the queue (it used to be stored twice).
        observed = self.audit.enabled and self.observe in self.audit.observers
        if self.audit_db is not None and not observed:
            self.audit_db.add(event)

    def account(self) -> None:
        """Move queued events into the metrics (and the detectors' queue). Synchronous."""
        events, self._pending = self._pending, []
        if self._dropped:
            self.metrics.inc("bastion_monitor_dropped_events", (), self._dropped)
            self._dropped = 0
        if self.audit_db is not None:
            for event in events:
                self.audit_db.add(event)
        if self._metrics_on:
            observe = self.metrics.observe
            for event in events:
                try:
                    observe(event)
                except Exception as exc:  # an odd event must not stop the others
                    self._note("metrics", exc)
        if self._detecting:
            room = self._queue_size - len(self._detect_queue)
            if len(events) > room:
                self.metrics.inc("bastion_monitor_dropped_events", (), len(events) - room)
                events = events[: max(room, 0)]
            self._detect_queue.extend(events)

    # -- background -------------------------------------------------------------------

    async def _detect_loop(self) -> None:
        interval = self.config.detectors.flush_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.process_pending()
            except Exception as exc:  # a Redis outage must not kill the loop
                self._note("detectors", exc)

    async def _snapshot_loop(self) -> None:
        assert self.snapshots is not None
        while True:
            await asyncio.sleep(self.config.metrics_options.snapshot_interval)
            try:
                self.account()
                self.snapshots.write(self.metrics)
            except OSError as exc:
                self._note("snapshots", exc)

    async def process_pending(self) -> list[Alert]:
        """Run the detectors over the queued events; raise alerts and run playbooks.

        Called by the background loop; tests call it directly with an injected clock.
        """
        async with self._lock:
            self.account()
            events, self._detect_queue = self._detect_queue, []
            if not events:
                return []
            findings = await run_pass(self.detectors, events, self.windows, self.clock())
            alerts = []
            for finding in findings:
                alert = await self._raise(finding)
                if alert is not None:
                    alerts.append(alert)
            return alerts

    async def _raise(self, finding: Finding) -> Alert | None:
        why_not = await self.gate.admit(finding.key)
        if why_not == "duplicate":
            self.metrics.inc("bastion_alerts_suppressed", (why_not,))
            return None
        alert = Alert.from_finding(finding, self.clock(), self.gateway)
        # The alert rate limit spares the channels, not the enforcement: a flood of cheap
        # findings in the same minute used to keep a real attacker's playbook from running
        # (and, holding its claim, for the whole dedup window).
        actions = await self.playbooks.run(finding, alert.id)
        alert = replace(alert, actions=tuple(actions))
        if why_not is not None:
            self.metrics.inc("bastion_alerts_suppressed", (why_not,))
            if not actions:
                return None
        self.metrics.inc("bastion_alerts", (finding.detector,))
        self.emit(
            {
                "event": "alert",
                "alert_id": alert.id,
                "detector": alert.detector,
                "subject": alert.subject,
                "severity": alert.severity,
                "summary": alert.summary,
                "evidence": dict(alert.evidence),
            }
        )
        try:
            await self.incidents.add(alert.to_json())
        except Exception as exc:  # the alert still goes out
            self._note("incidents", exc)
        if why_not is not None:
            return None  # recorded with its actions; the channels are spared
        self.dispatcher.submit(alert)
        return alert

    def _note(self, where: str, exc: BaseException) -> None:
        if where not in self._errors:
            self._errors.add(where)
            # The type only (a driver's message may quote a URL with its credentials),
            # except for the snapshot directory refusal, which names what to fix.
            why = f": {exc}" if isinstance(exc, UnsafeSnapshotDir) else ""
            print(f"bastion: monitor {where} failed: {type(exc).__name__}{why}", file=sys.stderr)

    # -- views ------------------------------------------------------------------------

    def merged_metrics(self) -> RequestMetrics:
        """This worker's live aggregate plus every other worker's last snapshot."""
        self.account()
        merged = RequestMetrics(self.metrics.top_entries)
        merged.merge(self.metrics.snapshot())
        if self.snapshots is not None:
            for other in self.snapshots.others():
                merged.merge(other)
        return merged

    def admin_routes(self, runtime_token: str) -> list[BaseRoute]:
        """Routes for the admin listener: /metrics, /incidents and the dashboard."""
        from bastion.observability.dashboard import admin_routes

        return admin_routes(self, runtime_token)
