"""Authorization after the response (anti-BOLA reads): the object the upstream returned
must belong to the caller; in a list, foreign items are filtered out (or the whole
response is refused).

Only successful responses are inspected (an error from the upstream reveals no object),
and they must be JSON: a 2xx body of any other media type is refused with 502, because an
upstream that negotiates (``Accept: text/html``, ``text/csv``) or omits the Content-Type
would otherwise hand out an object nobody checked. A 2xx response whose owner field cannot
be found is refused too: fail closed. ``HEAD`` is refused (405) on these routes: its
answer has no body to check, yet its status tells whether a foreign object exists; and
with the default 404 for foreign objects, the upstream's own 404 is answered with the same
problem document, so that nothing tells a foreign object from a missing one.
"""

from __future__ import annotations

from typing import Any, Literal

from bastion.decisions import MISSING, FieldRef, OwnerSpec, decide_owner, filter_owned, lookup_path
from bastion.errors import BadGateway, MethodNotAllowed, ObjectNotFound
from bastion.jsonutil import JSONError, dumps, loads_strict
from bastion.policies.authorization import deny_object
from bastion.types import Decision, Later, Policy, RequestContext, Response, UpstreamResponse

__all__ = ["OwnerListPolicy", "ResponseOwnerPolicy"]


def _inspected(response: UpstreamResponse) -> bool:
    """Only successful answers carry an object to check."""
    return 200 <= response.status < 300


def _json(response: UpstreamResponse) -> Any:
    if not _inspected(response) or not response.body:
        return MISSING
    content_type = (response.header("content-type") or "").lower()
    if "json" not in content_type:
        raise BadGateway(reason="owner.response_not_json")
    try:
        return loads_strict(response.body)
    except JSONError:
        raise BadGateway(reason="owner.response_not_json") from None


class _ResponseOwnership(Policy):
    """What both response-side owner rules share: HEAD refused, 2xx bodies read."""

    needs_response_body = True

    def on_request_now(self, ctx: RequestContext) -> Response | Later | None:
        if ctx.method == "HEAD":
            raise MethodNotAllowed(["GET"], reason="owner.head_unverifiable")
        return None

    async def on_request(self, ctx: RequestContext) -> Response | None:
        self.on_request_now(ctx)
        return None

    def wants_response_body(self, ctx: RequestContext, response: UpstreamResponse) -> bool:
        return _inspected(response)


class ResponseOwnerPolicy(_ResponseOwnership):
    name = "owner_response"

    def __init__(self, field: FieldRef, spec: OwnerSpec, status: Literal[403, 404]) -> None:
        self.field, self.spec, self.status = field, spec, status

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        if response.status == 404 and self.status == 404:
            # The upstream's own "not found" answers as the refusal of a foreign object
            # does: otherwise the two differ, and that tells which objects exist.
            raise ObjectNotFound(reason="owner.upstream_not_found")
        document = _json(response)
        if document is MISSING:
            return
        decision = decide_owner(ctx.principal, lookup_path(document, self.field.path), self.spec)
        if not decision.allowed:
            deny_object(ctx, decision, self.status)
        ctx.decision = decision


class OwnerListPolicy(_ResponseOwnership):
    name = "owner_list"

    def __init__(
        self,
        items: FieldRef,
        field: tuple[str | int, ...],
        spec: OwnerSpec,
        mode: Literal["filter", "deny"],
    ) -> None:
        self.items, self.field, self.spec, self.mode = items, field, spec, mode

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        document = _json(response)
        if document is MISSING:
            return
        items = lookup_path(document, self.items.path)
        if not isinstance(items, list):
            raise BadGateway(reason="owner_list.not_a_list")
        kept, removed = filter_owned(ctx.principal, items, self.field, self.spec)
        if not removed:
            ctx.decision = Decision.allow("owner_list.all_owned")
            return
        if self.mode == "deny":
            deny_object(
                ctx, Decision.deny("owner_list.foreign_items", f"{removed} item(s) not owned"), 403
            )
        ctx.decision = Decision.allow("owner_list.filtered", f"{removed} item(s) removed")
        ctx.audit["owner_list_removed"] = removed
        if self.items.path:
            parent = lookup_path(document, self.items.path[:-1])
            parent[self.items.path[-1]] = kept
        else:
            document = kept
        response.body = dumps(document)
