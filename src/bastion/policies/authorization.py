"""Authorization before forwarding: function level (roles, scopes) and object level
(ownership read from the request, or from the object itself fetched first for writes).

Function-level denial is 403. Object-level denial is 404 by default so that whether an
object exists does not leak (configurable to 403). The decision and its reasons are put on
the context, so the audit event records why.
"""

from __future__ import annotations

from typing import Literal

from bastion.decisions import (
    MISSING,
    AllowRule,
    FieldRef,
    OwnerSpec,
    decide_allow,
    decide_owner,
    lookup_path,
)
from bastion.errors import Forbidden, ObjectNotFound
from bastion.gateway.headers import request_headers_for_upstream
from bastion.gateway.upstream import UpstreamRequest, UpstreamRuntime
from bastion.jsonutil import JSONError, loads_strict
from bastion.policies.request_fields import request_value
from bastion.types import Decision, Policy, RequestContext, Response

__all__ = ["AllowPolicy", "OwnerPrefetchPolicy", "RequestOwnerPolicy", "deny_object"]

_PREFETCH_LIMIT = 4_194_304


def deny_object(ctx: RequestContext, decision: Decision, status: Literal[403, 404]) -> None:
    ctx.decision = decision
    if status == 403:
        raise Forbidden(reason=decision.reason)
    raise ObjectNotFound(reason=decision.reason)


class AllowPolicy(Policy):
    """Roles and scopes: may this principal call this route at all?"""

    name = "allow"

    def __init__(self, rule: AllowRule) -> None:
        self.rule = rule

    async def on_request(self, ctx: RequestContext) -> Response | None:
        decision = decide_allow(ctx.principal, self.rule)
        ctx.decision = decision
        if not decision.allowed:
            raise Forbidden(reason=decision.reason)
        return None


class RequestOwnerPolicy(Policy):
    """The owner named in the request (path, query, header or body) must be the caller."""

    name = "owner"

    def __init__(self, field: FieldRef, spec: OwnerSpec, status: Literal[403, 404]) -> None:
        self.field, self.spec, self.status = field, spec, status
        self.needs_request_body = field.source == "body"

    async def on_request(self, ctx: RequestContext) -> Response | None:
        decision = decide_owner(ctx.principal, request_value(ctx, self.field), self.spec)
        if not decision.allowed:
            deny_object(ctx, decision, self.status)
        ctx.decision = decision
        return None


class OwnerPrefetchPolicy(Policy):
    """For writes: GET the object from the upstream first and check its owner field.

    A response-side rule alone would come too late for PATCH/PUT/DELETE: the upstream would
    already have changed a foreign object. The prefetch carries the caller's own headers.
    """

    name = "owner_prefetch"

    def __init__(
        self, field: FieldRef, spec: OwnerSpec, status: Literal[403, 404], upstream: UpstreamRuntime
    ) -> None:
        self.field, self.spec, self.status = field, spec, status
        self.upstream = upstream

    async def on_request(self, ctx: RequestContext) -> Response | None:
        upstream = self.upstream
        if ctx.principal is not None and self.spec.unless_roles & ctx.principal.roles:
            return None
        headers = request_headers_for_upstream(
            ctx.headers,
            client_ip=ctx.client_ip,
            peer_trusted=False,
            scheme=ctx.scheme,
            host=ctx.headers.get("host"),
            request_id=ctx.request_id,
            drop=ctx.upstream_drop,
        )
        headers = [(k, v) for k, v in headers if k not in ("content-type", "content-length")]
        headers.extend(upstream.headers)
        headers.extend(ctx.upstream_headers)
        reply = await upstream.transport.send(
            UpstreamRequest(
                "GET", upstream.base_url + ctx.upstream_path, headers, None, upstream.timeouts
            )
        )
        document = await reply.read(_PREFETCH_LIMIT)
        owner = MISSING
        if 200 <= reply.status < 300:
            try:
                owner = lookup_path(loads_strict(document), self.field.path)
            except JSONError:
                owner = MISSING
        decision = decide_owner(ctx.principal, owner, self.spec)
        if reply.status == 404:
            decision = Decision.deny("owner.object_not_found", "prefetch returned 404")
        if not decision.allowed:
            deny_object(ctx, decision, self.status)
        ctx.decision = decision
        return None
