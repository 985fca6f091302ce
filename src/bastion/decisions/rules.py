"""Function-level (roles, scopes) and object-level (ownership) decisions.

OWASP API1:2023 (broken object level authorization) and API5:2023 (broken function level
authorization). Every function returns a :class:`Decision` carrying the machine reason that
the audit log records; enforcement (which status, which body) is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bastion.decisions.fields import MISSING, FieldRef, lookup_path
from bastion.types import Decision, Principal

__all__ = ["AllowRule", "OwnerSpec", "decide_allow", "decide_owner", "filter_owned"]


@dataclass(frozen=True, slots=True)
class AllowRule:
    """``authenticated`` when both sets are empty; else roles/scopes with any/all."""

    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    match: Literal["any", "all"] = "any"

    @property
    def authenticated_only(self) -> bool:
        return not self.roles and not self.scopes


def decide_allow(principal: Principal | None, rule: AllowRule) -> Decision:
    """May this principal call the route at all?"""
    if principal is None:
        return Decision.deny("auth.missing", "no authenticated principal")
    if rule.authenticated_only:
        return Decision.allow("allow.authenticated")
    if rule.match == "any":
        roles = rule.roles & principal.roles
        if roles:
            return Decision.allow("allow.role", f"role {sorted(roles)[0]!r}")
        scopes = rule.scopes & principal.scopes
        if scopes:
            return Decision.allow("allow.scope", f"scope {sorted(scopes)[0]!r}")
        return Decision.deny(
            "allow.missing_role_or_scope",
            f"needs one of roles {sorted(rule.roles)} or scopes {sorted(rule.scopes)}",
        )
    missing_roles = rule.roles - principal.roles
    missing_scopes = rule.scopes - principal.scopes
    if missing_roles or missing_scopes:
        return Decision.deny(
            "allow.missing_all",
            f"missing roles {sorted(missing_roles)} and scopes {sorted(missing_scopes)}",
        )
    return Decision.allow("allow.all")


@dataclass(frozen=True, slots=True)
class OwnerSpec:
    """The object's owner (a field) must equal, or be in, a principal claim."""

    claim: FieldRef
    mode: Literal["equals", "in"]
    unless_roles: frozenset[str] = frozenset()


def _claim(principal: Principal, ref: FieldRef) -> Any:
    if ref.path in (("sub",), ("subject",)):
        return principal.subject
    if ref.path == ("roles",):
        return sorted(principal.roles)
    if ref.path in (("scope",), ("scopes",)):
        return sorted(principal.scopes)
    return lookup_path(principal.claims, ref.path)


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or value is MISSING:
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def decide_owner(principal: Principal | None, owner_value: Any, spec: OwnerSpec) -> Decision:
    """Does the object whose owner field is ``owner_value`` belong to ``principal``?

    Fails closed: a missing owner field or a missing claim denies.
    """
    if principal is None:
        return Decision.deny("auth.missing", "no authenticated principal")
    exempt = spec.unless_roles & principal.roles
    if exempt:
        return Decision.allow("owner.exempt_role", f"role {sorted(exempt)[0]!r}")
    owner = _scalar(owner_value)
    if owner is None:
        return Decision.deny("owner.field_missing", "the object has no usable owner field")
    claim = _claim(principal, spec.claim)
    if spec.mode == "equals":
        expected = _scalar(claim)
        if expected is None:
            return Decision.deny("owner.claim_missing", f"principal has no {spec.claim}")
        if owner == expected:
            return Decision.allow("owner.match")
        return Decision.deny("owner.mismatch", f"owner {owner!r} is not {spec.claim}")
    members = _members(claim)
    if members is None:
        return Decision.deny("owner.claim_missing", f"principal has no list {spec.claim}")
    if owner in members:
        return Decision.allow("owner.member")
    return Decision.deny("owner.not_member", f"owner {owner!r} not in {spec.claim}")


def _members(claim: Any) -> frozenset[str] | None:
    if isinstance(claim, list | tuple | set | frozenset):
        return frozenset(v for v in (_scalar(c) for c in claim) if v is not None)
    single = _scalar(claim)
    return frozenset({single}) if single is not None else None


def filter_owned(
    principal: Principal | None,
    items: Sequence[Any],
    field: Sequence[str | int],
    spec: OwnerSpec,
) -> tuple[list[Any], int]:
    """Keep the items the principal owns; return (kept, number removed).

    The same answer as :func:`decide_owner` for each item, with the principal's side (the
    exemption, the claim, its member set) worked out once for the list, not per item: a
    long list and a large claim made that items x claim size.
    """
    if principal is None:
        return [], len(items)
    if spec.unless_roles & principal.roles:
        return list(items), 0
    claim = _claim(principal, spec.claim)
    accept: Callable[[str], bool]
    if spec.mode == "equals":
        expected = _scalar(claim)
        if expected is None:
            return [], len(items)
        accept = expected.__eq__
    else:
        members = _members(claim)
        if members is None:
            return [], len(items)
        accept = members.__contains__
    kept = [
        item
        for item in items
        if (owner := _scalar(lookup_path(item, field))) is not None and accept(owner)
    ]
    return kept, len(items) - len(kept)
