"""Shared state of one scan: the spec, the probe, identities, known objects and findings.

Checks receive a :class:`ScanContext` and speak only through it: ``ctx.call`` sends a
request for an operation as an identity (filling path parameters with real objects when
known), ``ctx.report`` records a finding with redacted evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bastion.scanner.callback import CallbackListener
from bastion.scanner.findings import CHECKS, Confidence, Evidence, Finding, Severity
from bastion.scanner.identities import ANONYMOUS, Identity
from bastion.scanner.probe import Exchange, OutOfScope, Probe, UnsafeRequest
from bastion.scanner.redact import Redactor
from bastion.scanner.sampling import sample, unique_tag
from bastion.scanner.spec import ApiSpec, Operation

__all__ = ["UNSET", "ObjectRef", "ScanContext", "ScanOptions"]

UNSET: Any = object()
_PARAM = re.compile(r"\{([^}]+)\}")
OWNER_FIELDS = frozenset(
    {
        "owner",
        "ownerid",
        "userid",
        "customerid",
        "createdby",
        "accountid",
        "tenantid",
        "author",
        "authorid",
        "uid",
    }
)  # compared lower-cased, without "_" or "-"


@dataclass
class ScanOptions:
    unsafe: bool = False
    budget: float = 60.0
    rate: float = 50.0
    concurrency: int = 8
    timeout: float = 10.0
    burst: bool = False
    burst_size: int = 30
    examples: int = 2
    checks: tuple[str, ...] = tuple(CHECKS)
    callback_host: str = "127.0.0.1"
    timing_delay: float = 2.0
    progress: bool = False
    ca_file: str | None = None
    insecure: bool = False


@dataclass
class ObjectRef:
    collection: str
    id: Any
    path: str
    owner: str
    created: bool
    data: dict[str, Any]
    seen_by: set[str] = field(default_factory=set)


def collection_of(template: str, param: str) -> str:
    return template.split("{" + param + "}", 1)[0].rstrip("/")


def object_id(data: Any, param: str | None = None) -> Any:
    if not isinstance(data, dict):
        return None
    keys = ([param] if param else []) + ["id", "uuid", "_id", "key"]
    for key in keys:
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return value
    return None


def owner_value(data: Any) -> Any:
    """The value of the first owner-like field (``owner``, ``owner_id``, ``ownerId``, …)."""
    if isinstance(data, dict):
        for key, value in data.items():
            normal = str(key).lower().replace("_", "").replace("-", "")
            if normal in OWNER_FIELDS and isinstance(value, str | int):
                return value
    return None


@dataclass
class ScanContext:
    spec: ApiSpec
    probe: Probe
    identities: list[Identity]
    options: ScanOptions
    redactor: Redactor
    findings: list[Finding] = field(default_factory=list)
    objects: list[ObjectRef] = field(default_factory=list)
    baselines: dict[tuple[str, str], Exchange] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cracked_secret: bytes | None = None
    callback_url: str | None = None
    listener: CallbackListener | None = None

    # -- identities -----------------------------------------------------------------------
    def identity(self, name: str) -> Identity:
        return next(i for i in self.identities if i.name == name)

    @property
    def anonymous(self) -> Identity:
        return self.identity(ANONYMOUS)

    def users(self) -> list[Identity]:
        """Named identities with working credentials."""
        return [i for i in self.identities if not i.anonymous and i.usable]

    def low_privilege(self) -> list[Identity]:
        return [i for i in self.users() if not i.privileged]

    # -- objects --------------------------------------------------------------------------
    def owner_values(self, who: Identity) -> set[str]:
        """Owner-field values that mean "``who``'s": from the file, and from its creations."""
        values = {str(v) for v in who.owner_values}
        for obj in self.objects:
            if obj.owner == who.name and obj.created:
                value = owner_value(obj.data)
                if value is not None:
                    values.add(str(value))
        return values

    def owner_of(self, data: Any) -> str | None:
        """The user an object's owner field (``owner``, ``customer_id``, …) names, if any."""
        value = owner_value(data)
        if value is None:
            return None
        return next((u.name for u in self.users() if str(value) in self.owner_values(u)), None)

    def add_object(
        self,
        collection: str,
        concrete_collection: str,
        data: Any,
        owner: str,
        created: bool,
        param: str | None = None,
    ) -> ObjectRef | None:
        """Record an object ``owner`` created, or saw (then its owner field, if any, decides)."""
        oid = object_id(data, param)
        if oid is None:
            return None
        path = f"{concrete_collection.rstrip('/')}/{quote(str(oid), safe='')}"
        claimed = None if created else self.owner_of(data)
        for ref in self.objects:
            if ref.path == path:
                ref.seen_by.add(owner)
                if created and not ref.created:
                    ref.created, ref.owner = True, owner
                elif not ref.created and claimed is not None:
                    ref.owner = claimed
                return ref
        ref = ObjectRef(
            collection,
            oid,
            path,
            claimed or owner,
            created,
            data if isinstance(data, dict) else {},
            {owner},
        )
        self.objects.append(ref)
        if created:
            self.probe.mark_created(path)
        return ref

    def objects_for(
        self, op: Operation, *, owner: str | None = None, created: bool | None = None
    ) -> list[ObjectRef]:
        params = op.path_params
        if not params:
            return []
        collection = collection_of(op.path, params[-1].name)
        return [
            o
            for o in self.objects
            if o.collection == collection
            and (owner is None or o.owner == owner)
            and (created is None or o.created == created)
        ]

    # -- requests -------------------------------------------------------------------------
    def concrete_path(
        self, op: Operation, obj: ObjectRef | None = None, values: dict[str, Any] | None = None
    ) -> str:
        values = dict(values or {})
        params = op.path_params
        if obj is not None and params:
            values.setdefault(params[-1].name, obj.id)
        for param in params:
            if param.name not in values:
                candidates = [
                    o for o in self.objects if o.collection == collection_of(op.path, param.name)
                ]
                values[param.name] = candidates[0].id if candidates else sample(param.schema)
        path = _PARAM.sub(lambda m: quote(str(values.get(m.group(1), "1")), safe=""), op.path)
        return self.probe.base_path + path

    def default_query(self, op: Operation) -> dict[str, Any]:
        return {p.name: sample(p.schema) for p in op.params if p.location == "query" and p.required}

    async def call(
        self,
        op: Operation,
        identity: Identity | None,
        *,
        obj: ObjectRef | None = None,
        path: str | None = None,
        query: dict[str, Any] | None = None,
        body: Any = UNSET,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        auth: bool = True,
    ) -> Exchange:
        send_headers: dict[str, str] = {}
        for param in op.params:
            if param.location == "header" and param.required:
                send_headers[param.name] = str(sample(param.schema))
        if identity is not None and auth:
            send_headers.update(identity.headers)
        send_headers.update(headers or {})
        if body is UNSET:
            verb = method or op.method
            # a POST creates: unique free-text fields, so usernames and e-mails do not collide
            tag = unique_tag() if verb == "POST" else ""
            body = op.sample_body(tag) if verb in {"POST", "PUT", "PATCH"} else None
        return await self.probe.send(
            method or op.method,
            path or self.concrete_path(op, obj),
            query=self.default_query(op) if query is None else query,
            headers=send_headers,
            json=body,
            identity=identity.name if identity else None,
            operation=op.label,
            template=op.path,
        )

    async def try_call(
        self, op: Operation, identity: Identity | None, **kwargs: Any
    ) -> Exchange | None:
        """Like :meth:`call`, but a request refused by safe mode or scope returns None."""
        try:
            return await self.call(op, identity, **kwargs)
        except (UnsafeRequest, OutOfScope):
            return None

    # -- findings -------------------------------------------------------------------------
    def evidence(self, exchange: Exchange) -> Evidence:
        r = self.redactor
        return Evidence(
            method=exchange.method,
            url=r.url(exchange.url),
            request_headers=r.headers(exchange.request_headers),
            request_body=r.body(exchange.request_body),
            status=exchange.status,
            response_headers=r.headers(exchange.response_headers),
            response_body=r.body(exchange.body),
            elapsed_ms=exchange.elapsed * 1000,
            identity=exchange.identity,
            curl=r.curl(
                exchange.method, exchange.url, exchange.request_headers, exchange.request_body
            ),
        )

    def report(
        self,
        check: str,
        rule: str,
        title: str,
        severity: Severity,
        confidence: Confidence,
        description: str,
        *,
        op: Operation | None = None,
        operation: str | None = None,
        identities: Iterable[str] = (),
        exchanges: Iterable[Exchange] = (),
        cwe: int | None = None,
        spec_pointer: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Finding:
        finding = Finding(
            check=check,
            rule=rule,
            title=title,
            severity=severity,
            confidence=confidence,
            description=self.redactor.text(description),
            operation=op.label if op is not None else operation,
            identities=tuple(dict.fromkeys(identities)),
            evidence=tuple(self.evidence(e) for e in exchanges),
            cwe=cwe,
            spec_pointer=spec_pointer or (op.pointer if op is not None else None),
            details=details or {},
        )
        if all(f.id != finding.id for f in self.findings):
            self.findings.append(finding)
        return finding
