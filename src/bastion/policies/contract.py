"""The API's OpenAPI contract, enforced both ways (OWASP API3, API8).

Request: parameters, content type and body are validated against the operation (400 with
the JSON pointers of failing fields, 415, 413) before anything is forwarded; undeclared
and read-only properties are refused (mass assignment). Response: JSON bodies are
projected onto the declared schema for the status (undeclared and write-only fields
removed), and suspected sensitive data is reported as ``data_exposure_suspected`` in the
audit event even when the projection removed it.
"""

from __future__ import annotations

from bastion.contract.compiled import OperationContract
from bastion.contract.responses import ResponseContractViolation
from bastion.types import Later, Policy, RequestContext, Response, UpstreamResponse

__all__ = ["MAX_AUDITED_REMOVALS", "ContractPolicy"]

#: Removed fields named in one audit event (the first ones, in document order); beyond it
#: the event also carries ``fields_removed_total``.
MAX_AUDITED_REMOVALS = 100


class ContractPolicy(Policy):
    name = "contract"
    needs_response_body = True

    def __init__(self, contract: OperationContract) -> None:
        self.contract = contract
        self.needs_request_body = contract.needs_body

    def on_request_now(self, ctx: RequestContext) -> Response | Later | None:
        # Validation never waits: the request is decided here, without a coroutine.
        self._validate(ctx)
        return None

    async def on_request(self, ctx: RequestContext) -> Response | None:
        self._validate(ctx)
        return None

    def _validate(self, ctx: RequestContext) -> None:
        # The parsed body is not kept: every policy that reads request fields runs before
        # this one (gateway/assembly.py), and a document of every request in flight kept
        # until its answer cost about 5 µs a request in cache misses and late frees.
        self.contract.validate_request(
            path_params=ctx.path_params,
            query_string=ctx.query_string,
            headers=ctx.headers,
            body=ctx.body,
        )

    def wants_response_body(self, ctx: RequestContext, response: UpstreamResponse) -> bool:
        return "json" in (response.header("content-type") or "").lower()

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        if response.body is None:
            return
        try:
            filtered = self.contract.filter_response(
                response.status, response.header("content-type"), response.body
            )
        except ResponseContractViolation as violation:
            ctx.audit["response_schema_errors"] = list(violation.schema_errors)
            raise
        response.body = filtered.body
        if filtered.removed:
            # Bounded like the findings: a long array of leaky objects must not make one
            # audit line megabytes long.
            ctx.audit["fields_removed"] = list(filtered.removed[:MAX_AUDITED_REMOVALS])
            if filtered.removed_total > MAX_AUDITED_REMOVALS:
                ctx.audit["fields_removed_total"] = filtered.removed_total
        if filtered.schema_errors:
            ctx.audit["response_schema_errors"] = list(filtered.schema_errors)
        if filtered.sensitive:
            ctx.audit["data_exposure_suspected"] = [
                {"pointer": f.pointer, "kind": f.kind, "filtered": f.filtered}
                for f in filtered.sensitive
            ]
