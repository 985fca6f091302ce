"""Response side: project, scan, validate (strict or monitor), re-serialise only if changed.

A response costs one parse, one projection walk, one validator run and one dump: of the
projected document when something was removed, else to prove that the upstream's text says
nothing else than what was checked (no repeated key; :mod:`bastion.contract.rewrite`).
The sensitive-data scan (a second walk) runs only when the raw text or the keys the
projection passed could hold something to report (:func:`_findings`).

Decisions (docs/contract.md): a non-JSON response passes untouched; an empty body passes;
a JSON response larger than ``max_response_bytes`` is a 502 unless ``pass_large_responses``
(then it passes unfiltered, reported in ``schema_errors``); a JSON body for a status or
media type the operation does not declare, unparseable JSON, or a projected body that fails
its schema is a 502 (:class:`ResponseContractViolation`) in ``strict`` mode and passes
(projected when possible) with ``schema_errors`` in ``monitor`` mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import jsonschema_rs
import orjson

from bastion.contract.media import is_json, match_media, parse_media_type
from bastion.contract.messages import ALL_ERRORS_UP_TO, errors_of
from bastion.contract.projection import Plan, Projection
from bastion.contract.rewrite import response_text
from bastion.contract.sensitive import (
    Scanner,
    SensitiveFinding,
    values_may_hold_secrets,
)
from bastion.contract.surrogates import has_lone_surrogate, may_contain_surrogates
from bastion.errors import BadGateway
from bastion.jsonutil import JSONError, loads_strict

if TYPE_CHECKING:
    from bastion.contract.compiled import ContractLimits

__all__ = ["FilteredResponse", "ResponseContractViolation", "ResponseRule", "filter_json"]


class ResponseContractViolation(BadGateway):
    """A 502: the upstream answered outside the contract. ``schema_errors`` is audit-only."""

    def __init__(self, reason: str, schema_errors: tuple[str, ...]) -> None:
        super().__init__(reason=reason)
        self.schema_errors = schema_errors


class FilteredResponse(NamedTuple):
    """What :func:`filter_json` made of one response."""

    body: bytes
    changed: bool
    #: JSON pointers of the removed fields (the first MAX_POINTERS, in document order).
    removed: tuple[str, ...]
    schema_errors: tuple[str, ...]
    sensitive: tuple[SensitiveFinding, ...]
    #: How many fields were removed in all.
    removed_total: int = 0


@dataclass(frozen=True)
class ResponseRule:
    plan: Plan
    validator: jsonschema_rs.Validator | None
    #: Whether the validator's errors can be listed (see messages.errors_of).
    detailed: bool = True


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses integers beyond 64 bits, lone surrogates and very deep documents:
        # retry strictly, and still refuse what the validators could not even read.
        value = loads_strict(body, max_depth=256, exact_numbers=False)
        if may_contain_surrogates(body) and has_lone_surrogate(value):
            raise JSONError("unpaired UTF-16 surrogate escape") from None
        return value


def filter_json(
    limits: ContractLimits,
    status: int,
    content_type: str | None,
    body: bytes,
    content: Mapping[str, ResponseRule] | None,
    undeclared_status: bool,
) -> FilteredResponse:
    parsed_type = parse_media_type(content_type)
    if parsed_type is None or not is_json(parsed_type[0]) or not body:
        return FilteredResponse(body, False, (), (), ())
    monitor = limits.response_mode == "monitor"
    if len(body) > limits.max_response_bytes:
        if limits.pass_large_responses:
            return FilteredResponse(body, False, (), ("response too large to inspect",), ())
        raise ResponseContractViolation("contract.response_too_large", ())
    key = match_media(parsed_type[0], content) if content else None
    rule = content[key] if content and key is not None else None
    problem = None
    if undeclared_status:
        problem = f"status {status} is not declared"
    elif rule is None:
        problem = f"{parsed_type[0]} body is not declared for status {status}"
    try:
        document = _parse(body)
    except JSONError:
        if monitor:
            return FilteredResponse(body, False, (), ("response is not valid JSON",), ())
        raise ResponseContractViolation("contract.response_invalid", ("invalid JSON",)) from None
    if rule is None:
        try:
            findings = _findings(body, document, None)
        except RecursionError:
            findings = ()
        assert problem is not None
        if not monitor:
            raise ResponseContractViolation("contract.response_undeclared", (problem,))
        return FilteredResponse(body, False, (), (problem,), findings)
    try:
        projection = Projection()
        rule.plan.project(document, "", projection)
        findings = _findings(body, document, projection)
    except RecursionError:
        # Only a pathologically nested document gets here (orjson allows 1024 levels).
        return _too_deep(body, monitor)
    total = len(projection.doomed)
    projection.commit()
    removed = tuple(projection.removed)
    errors: tuple[str, ...] = ()
    if rule.validator is not None and not rule.validator.is_valid(document):
        large = len(body) > ALL_ERRORS_UP_TO
        errors = tuple(
            f"{e['pointer'] or '/'}: {e['detail']}"
            for e in errors_of(rule.validator, document, "", large=large, detailed=rule.detailed)
        )
        if not monitor:
            raise ResponseContractViolation("contract.response_invalid", errors)
        if not findings:
            # The projection walk does not enter what a valid document cannot hold (an
            # object where the schema says string), so its names were not seen: an invalid
            # body that is passed on is scanned in full.
            fresh = _parse(body)
            again = Projection()
            rule.plan.project(fresh, "", again)
            findings = _scan(fresh, again)
    try:
        out = response_text(body, document, removed=bool(total))
    except RecursionError:
        return _too_deep(body, monitor)
    return FilteredResponse(out, out is not body, removed, errors, findings, total)


def _too_deep(body: bytes, monitor: bool) -> FilteredResponse:
    if monitor:
        return FilteredResponse(body, False, (), ("response nested too deeply",), ())
    raise ResponseContractViolation("contract.response_invalid", ("nested too deeply",)) from None


def _findings(
    body: bytes, document: Any, projection: Projection | None
) -> tuple[SensitiveFinding, ...]:
    """What the sensitive-data scan reports, before the projection's removals are applied.

    Most answers have nothing to report, and that is settled without the scan: no string in
    the raw text can be a reportable value (:func:`values_may_hold_secrets`) and no key the
    projection passed is a sensitive name.
    """
    if not values_may_hold_secrets(body):
        if projection is None:  # nothing projected: check every key
            projection = Projection()
            projection.collect(document)
        if not projection.flagged:
            return ()
    return _scan(document, projection)


def _scan(document: Any, projection: Projection | None) -> tuple[SensitiveFinding, ...]:
    doomed = {(id(owner), key) for owner, key in projection.doomed} if projection else None
    walk = Scanner(doomed=doomed)
    walk.scan(document)
    return tuple(walk.findings)
