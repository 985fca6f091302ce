"""Typed configuration of monitoring: metrics, detectors, alerts, playbooks, dashboard.

Pydantic v2 models, frozen, unknown keys rejected; every field has a description
(docs/configuration.md is generated from them). Durations are seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AlertsConfig",
    "AuditDbConfig",
    "AuthFailureConfig",
    "CredentialStuffingConfig",
    "DataExposureConfig",
    "DetectorsConfig",
    "EnumerationConfig",
    "MetricsConfig",
    "MonitoringConfig",
    "PlaybookConfig",
    "ScrapingConfig",
    "ServerErrorsConfig",
    "SinkConfig",
    "TokenSharingConfig",
]

DETECTOR_NAMES = (
    "auth_failure_ip",
    "auth_failure_principal",
    "enumeration",
    "credential_stuffing",
    "scraping",
    "upstream_5xx",
    "data_exposure",
    "token_many_ips",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricsConfig(_Model):
    multiprocess_dir: str | None = Field(
        None,
        description="Directory where every worker process writes its metric snapshot so that "
        "/metrics on any worker reports the sum over all workers. Default: "
        "$PROMETHEUS_MULTIPROC_DIR, else a private directory under the system temp dir keyed "
        "by the supervising process.",
    )
    snapshot_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between two snapshots written by a worker."
    )
    top_entries: int = Field(
        2000,
        ge=10,
        le=100_000,
        description="Most distinct principals / client IPs tracked for the dashboard's top "
        "lists (bounded memory under spoofed or random values).",
    )


class AuthFailureConfig(_Model):
    enabled: bool = Field(True, description="Run this detector.")
    threshold: int = Field(20, ge=1, description="Failures within `window` that fire it.")
    window: float = Field(60.0, gt=0, description="Sliding window, seconds.")


class EnumerationConfig(_Model):
    enabled: bool = Field(True, description="Run this detector.")
    distinct_objects: int = Field(
        20, ge=2, description="Distinct object ids one principal touched within `window`."
    )
    denied_ratio: float = Field(
        0.5, ge=0, le=1, description="Share of those requests answered 403 or 404 (at least)."
    )
    window: float = Field(60.0, gt=0, description="Sliding window, seconds.")


class CredentialStuffingConfig(_Model):
    enabled: bool = Field(True, description="Run this detector.")
    distinct_usernames: int = Field(
        10,
        ge=2,
        description="Distinct login keys (hashed usernames, event field `login_key`) tried "
        "from one IP within `window`; without that field, failed logins from one IP.",
    )
    window: float = Field(300.0, gt=0, description="Sliding window, seconds.")


class ScrapingConfig(_Model):
    enabled: bool = Field(True, description="Run this detector.")
    interval: float = Field(60.0, gt=0, description="Length of one counting interval, seconds.")
    factor: float = Field(
        5.0, gt=1, description="Fire when one interval exceeds `factor` x the EWMA baseline."
    )
    min_requests: int = Field(
        100, ge=1, description="Never fire below this many requests in one interval."
    )
    alpha: float = Field(0.3, gt=0, le=1, description="EWMA smoothing factor per interval.")
    warmup_intervals: int = Field(
        3, ge=1, description="Intervals of history a principal needs before it can fire."
    )


class ServerErrorsConfig(_Model):
    enabled: bool = Field(True, description="Run this detector.")
    threshold: int = Field(20, ge=1, description="5xx answers of one upstream within `window`.")
    ratio: float = Field(0.2, ge=0, le=1, description="and at least this share of its answers.")
    window: float = Field(60.0, gt=0, description="Sliding window, seconds.")


class DataExposureConfig(_Model):
    enabled: bool = Field(True, description="Alert on `data_exposure_suspected` events.")


class TokenSharingConfig(_Model):
    enabled: bool = Field(True, description="Run this detector.")
    distinct_ips: int = Field(
        5, ge=2, description="Distinct client IPs using one credential within `window`."
    )
    window: float = Field(300.0, gt=0, description="Sliding window, seconds.")


class DetectorsConfig(_Model):
    enabled: bool = Field(True, description="Run the detectors at all.")
    shared: bool = Field(
        True,
        description="With the Redis state backend, keep the windows in Redis so that every "
        "gateway sees the traffic of all (otherwise each process counts its own).",
    )
    flush_interval: float = Field(
        0.1, gt=0, le=10, description="Seconds between two detector passes over queued events."
    )
    queue_size: int = Field(
        50_000,
        ge=100,
        description="Events queued for the detectors; beyond, events are counted "
        "as dropped (the request path never waits).",
    )
    auth_failure_ip: AuthFailureConfig = Field(
        default_factory=lambda: AuthFailureConfig(),
        description="Authentication failures (401) per client IP.",
    )
    auth_failure_principal: AuthFailureConfig = Field(
        default_factory=lambda: AuthFailureConfig(threshold=10),
        description="Refusals (401/403) per principal.",
    )
    enumeration: EnumerationConfig = Field(
        default_factory=lambda: EnumerationConfig(), description="Object enumeration (BOLA)."
    )
    credential_stuffing: CredentialStuffingConfig = Field(
        default_factory=lambda: CredentialStuffingConfig(),
        description="Many usernames tried from one IP.",
    )
    scraping: ScrapingConfig = Field(
        default_factory=lambda: ScrapingConfig(),
        description="A principal far above its own EWMA baseline.",
    )
    upstream_5xx: ServerErrorsConfig = Field(
        default_factory=lambda: ServerErrorsConfig(), description="5xx spikes per upstream."
    )
    data_exposure: DataExposureConfig = Field(
        default_factory=lambda: DataExposureConfig(),
        description="Responses flagged `data_exposure_suspected` by the contract.",
    )
    token_many_ips: TokenSharingConfig = Field(
        default_factory=lambda: TokenSharingConfig(),
        description="One credential (credential_id, else principal) used from many IPs.",
    )


class SinkConfig(_Model):
    type: Literal["log", "webhook", "slack", "smtp"] = Field(
        description="log: stderr JSON line; webhook: signed JSON POST; slack: "
        "Slack-compatible incoming webhook; smtp: e-mail."
    )
    url: str | None = Field(None, description="webhook / slack: the URL to POST to.")
    secret: str | None = Field(
        None,
        description="webhook: HMAC-SHA256 key; the body is signed in header "
        "`X-Bastion-Signature: t=<unix>,v1=<hex>` over `<t>.<body>` (use ${ENV}).",
    )
    timeout: float = Field(5.0, gt=0, le=60, description="Per-attempt timeout, seconds.")
    max_attempts: int = Field(6, ge=1, le=20, description="Delivery attempts per alert.")
    backoff: float = Field(
        0.5, gt=0, le=60, description="First retry delay; doubles per attempt (capped 60 s)."
    )
    smtp_host: str = Field("127.0.0.1", description="smtp: server host.")
    smtp_port: int = Field(25, ge=1, le=65535, description="smtp: server port.")
    smtp_starttls: bool = Field(False, description="smtp: upgrade with STARTTLS.")
    smtp_username: str | None = Field(None, description="smtp: login user (optional).")
    smtp_password: str | None = Field(None, description="smtp: login password (use ${ENV}).")
    mail_from: str = Field("bastion@localhost", description="smtp: From address.")
    mail_to: list[str] = Field(default_factory=list, description="smtp: recipients.")

    @model_validator(mode="after")
    def _needs(self) -> SinkConfig:
        if self.type in ("webhook", "slack") and not self.url:
            raise ValueError(f"a {self.type} sink needs `url`")
        if self.type == "smtp" and not self.mail_to:
            raise ValueError("an smtp sink needs `mail_to`")
        credentials = self.smtp_username and self.smtp_password
        if self.type == "smtp" and credentials and not self.smtp_starttls:
            raise ValueError(
                "an smtp sink with `smtp_username` and `smtp_password` needs "
                "`smtp_starttls: true` (credentials are never sent without TLS)"
            )
        return self


class AlertsConfig(_Model):
    sinks: list[SinkConfig] = Field(
        default_factory=lambda: [SinkConfig(type="log")], description="Where alerts go."
    )
    dedup_window: float = Field(
        300.0,
        ge=0,
        description="The same detector firing for the same subject raises one alert per "
        "window (shared through Redis across gateways).",
    )
    max_per_minute: int = Field(
        60,
        ge=1,
        description="Alerts per minute per process beyond which alerts are dropped "
        "(counted in bastion_alerts_suppressed_total).",
    )
    queue_size: int = Field(1000, ge=1, description="Alerts waiting for delivery per sink.")


class PlaybookConfig(_Model):
    name: str = Field(description="Name recorded as the actor of every action.")
    when: list[str] = Field(
        description=f"Detectors that trigger it: {', '.join(DETECTOR_NAMES)}.", min_length=1
    )
    actions: list[
        Literal["block_ip", "block_principal", "revoke_principal", "throttle", "alert"]
    ] = Field(
        description="block_ip / block_principal for `duration`; revoke_principal: every token "
        "issued before now; throttle: a short block (`throttle_duration`) of the subject; "
        "alert: nothing but the alert.",
        min_length=1,
    )
    duration: float = Field(
        900.0, gt=0, le=30 * 86_400, description="Block duration, seconds (blocks expire)."
    )
    throttle_duration: float = Field(
        30.0, gt=0, le=3600, description="Duration of a `throttle` block, seconds."
    )
    dry_run: bool = Field(
        False, description="Record what would be done (audited) without doing it."
    )

    @model_validator(mode="after")
    def _known(self) -> PlaybookConfig:
        unknown = [d for d in self.when if d not in DETECTOR_NAMES]
        if unknown:
            raise ValueError(f"unknown detector(s) {unknown}; known: {list(DETECTOR_NAMES)}")
        return self


class AuditDbConfig(_Model):
    url: str = Field(
        description="SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db (use ${ENV} "
        "for credentials); sqlite+aiosqlite:///audit.db also works."
    )
    table: str = Field("bastion_audit", description="Table name (created if missing).")
    batch_size: int = Field(500, ge=1, le=10_000, description="Rows per INSERT.")
    flush_interval: float = Field(1.0, gt=0, le=60, description="Seconds between inserts.")
    max_buffer: int = Field(
        100_000,
        ge=100,
        description="Events buffered while the database is slow or down; "
        "beyond, events are dropped from the database (the audit file still has them).",
    )


class MonitoringConfig(_Model):
    metrics: bool = Field(True, description="Expose Prometheus metrics on the admin listener.")
    metrics_options: MetricsConfig = Field(
        default_factory=lambda: MetricsConfig(), description="Metric collection details."
    )
    detectors: DetectorsConfig = Field(
        default_factory=lambda: DetectorsConfig(), description="Attack detectors."
    )
    alerts: AlertsConfig = Field(
        default_factory=lambda: AlertsConfig(), description="Alert delivery."
    )
    playbooks: list[PlaybookConfig] = Field(
        default_factory=list, description="Automatic responses when detectors fire."
    )
    dashboard: bool = Field(True, description="Serve the dashboard at /dashboard (admin).")
    session_ttl: float = Field(
        8 * 3600.0, gt=60, le=7 * 86_400, description="Dashboard session lifetime, seconds."
    )
    audit_db: AuditDbConfig | None = Field(
        None, description="Also write audit events to a database (batched inserts)."
    )
    incidents_kept: int = Field(
        500, ge=10, le=100_000, description="Recent alerts/incidents kept for the dashboard/CLI."
    )
