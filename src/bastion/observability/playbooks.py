"""Playbooks: when a detector fires, block, revoke, throttle — or only alert (dry run).

Every action (also a dry run, also a failure) is written to the audit log as an
``incident_action`` event with who (``actor: playbook:<name>``) and why (the detector, the
subject and the evidence). Actions go to the shared state store, so with Redis they reach
every gateway within a second; blocks carry ``until`` and expire by themselves.

``throttle`` is a short block (``throttle_duration``) of the subject: the rate limiter has
no per-subject override, so tightening a limit means refusing the subject for a while.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bastion.errors import BastionError
from bastion.observability.config import PlaybookConfig
from bastion.observability.detectors import Finding
from bastion.state.base import StateStore

__all__ = ["PlaybookRunner"]


class PlaybookRunner:
    def __init__(
        self,
        playbooks: Sequence[PlaybookConfig],
        store: StateStore,
        emit: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.time,
        count: Callable[[str, str], None] = lambda action, outcome: None,
    ) -> None:
        self.playbooks = tuple(playbooks)
        self.store, self.emit, self.clock, self.count = store, emit, clock, count

    def matching(self, detector: str) -> list[PlaybookConfig]:
        return [p for p in self.playbooks if detector in p.when]

    async def run(self, finding: Finding, alert_id: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for playbook in self.matching(finding.detector):
            for action in playbook.actions:
                records.append(await self._act(playbook, action, finding, alert_id))
        return records

    async def _act(
        self, playbook: PlaybookConfig, action: str, finding: Finding, alert_id: str
    ) -> dict[str, Any]:
        now = self.clock()
        target: str | None = None
        until: float | None = None
        kind: str | None = None
        if action in ("block_ip",):
            kind, target, until = "ip", finding.ip, now + playbook.duration
        elif action in ("block_principal",):
            kind, target, until = "principal", finding.principal, now + playbook.duration
        elif action == "throttle":
            if finding.principal:
                kind, target = "principal", finding.principal
            else:
                kind, target = "ip", finding.ip
            until = now + playbook.throttle_duration
        elif action == "revoke_principal":
            target = finding.principal
        reason = f"playbook {playbook.name}: {finding.detector} {finding.subject}"[:256]
        record: dict[str, Any] = {
            "action": action,
            "kind": kind,
            "target": target,
            "until": until,
            "dry_run": playbook.dry_run,
        }
        if action == "alert":
            outcome = "alerted"
        elif target is None:
            outcome = "skipped_no_subject"
        elif playbook.dry_run:
            outcome = "dry_run"
        else:
            try:
                if action == "revoke_principal":
                    await self.store.revoke_subject(target, now)
                else:
                    assert kind is not None
                    await self.store.block(kind, target, until, reason)  # type: ignore[arg-type]
                outcome = "done"
            except (BastionError, ValueError) as exc:
                outcome = "failed"
                record["error"] = getattr(exc, "reason", None) or type(exc).__name__
        record["outcome"] = outcome
        self.count(action, outcome)
        self.emit(
            {
                "event": "incident_action",
                "actor": f"playbook:{playbook.name}",
                "alert_id": alert_id,
                "detector": finding.detector,
                "subject": finding.subject,
                "why": finding.summary,
                "evidence": dict(finding.evidence),
                **record,
            }
        )
        return record
