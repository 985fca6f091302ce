"""Authorization after the response (anti-BOLA reads): the object the upstream returned
must belong to the caller; in a list, foreign items are filtered out (or the whole
response is refused).

Only successful JSON responses are inspected; anything else passes untouched (an error
from the upstream reveals no object). A 2xx response whose owner field cannot be found is
refused: fail closed.
"""

from __future__ import annotations

from typing import Any, Literal

from bastion.decisions import MISSING, FieldRef, OwnerSpec, decide_owner, filter_owned, lookup_path
from bastion.errors import BadGateway
from bastion.jsonutil import JSONError, dumps, loads_strict
from bastion.policies.authorization import deny_object
from bastion.types import Decision, Policy, RequestContext, UpstreamResponse

__all__ = ["OwnerListPolicy", "ResponseOwnerPolicy"]


def _inspected(response: UpstreamResponse) -> bool:
    """Only successful JSON answers carry an object to check."""
    content_type = (response.header("content-type") or "").lower()
    return 200 <= response.status < 300 and "json" in content_type


def _json(response: UpstreamResponse) -> Any:
    if not _inspected(response) or not response.body:
        return MISSING
    try:
        return loads_strict(response.body)
    except JSONError:
        raise BadGateway(reason="owner.response_not_json") from None


class ResponseOwnerPolicy(Policy):
    name = "owner_response"
    needs_response_body = True

    def __init__(self, field: FieldRef, spec: OwnerSpec, status: Literal[403, 404]) -> None:
        self.field, self.spec, self.status = field, spec, status

    def wants_response_body(self, ctx: RequestContext, response: UpstreamResponse) -> bool:
        return _inspected(response)

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        document = _json(response)
        if document is MISSING:
            return
        decision = decide_owner(ctx.principal, lookup_path(document, self.field.path), self.spec)
        if not decision.allowed:
            deny_object(ctx, decision, self.status)
        ctx.decision = decision


class OwnerListPolicy(Policy):
    name = "owner_list"
    needs_response_body = True

    def __init__(
        self,
        items: FieldRef,
        field: tuple[str | int, ...],
        spec: OwnerSpec,
        mode: Literal["filter", "deny"],
    ) -> None:
        self.items, self.field, self.spec, self.mode = items, field, spec, mode

    def wants_response_body(self, ctx: RequestContext, response: UpstreamResponse) -> bool:
        return _inspected(response)

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
