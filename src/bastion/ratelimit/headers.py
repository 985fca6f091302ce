"""``RateLimit-Policy`` and ``RateLimit`` response fields.

Implements draft-ietf-httpapi-ratelimit-headers-11 (May 2026):

* §3 ``RateLimit-Policy``: a Structured Fields List (RFC 9651) of quota policy Items; the
  Item is a String (the policy name) with parameters ``q`` (quota, §3.1.1) and ``w``
  (window in integer seconds, §3.1.3), e.g. ``"default";q=100;w=60``.
* §4 ``RateLimit``: a List of service limit Items with ``r`` (available quota, §4.1.1) and
  ``t`` (effective window, integer seconds, §4.1.2), e.g. ``"default";r=50;t=30``.
* §6: when a response carries ``Retry-After`` as well, ``Retry-After`` must not point
  earlier than the end of the effective window. A refused request therefore reports only
  the refusing policy in ``RateLimit``, with ``r=0`` and ``t`` equal to ``Retry-After``.

The partition key parameter ``pk`` is never sent: keys contain client identities (IPs,
usernames) that must not be echoed. Monthly quotas omit ``w`` (months are not a fixed
number of seconds); their ``t`` still says when the quota resets.
"""

from __future__ import annotations

import functools
import math
import re

from bastion.ratelimit.checks import CheckOutcome, LimitCheck, LimitResult

__all__ = [
    "admitted_fields",
    "admitted_headers",
    "policy_name",
    "ratelimit_headers",
    "retry_after_seconds",
    "sf_string",
    "single_policy",
]

_NOT_SF_STRING = re.compile(r"[^\x20-\x7e]")


def sf_string(value: str) -> str:
    """Serialize ``value`` as an RFC 9651 §4.1.6 sf-string (non-printables replaced)."""
    clean = _NOT_SF_STRING.sub("?", value)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def retry_after_seconds(seconds: float) -> int:
    """Retry-After as delay-seconds: rounded up, at least 1 (RFC 9110 §10.2.3)."""
    return max(1, math.ceil(seconds - 1e-9))


def policy_name(outcome: CheckOutcome, index: int) -> str:
    """The advertised name: the check's ``name`` or ``p<index>``."""
    return outcome.check.name or f"p{index}"


def _policy_item(outcome: CheckOutcome, index: int) -> str:
    rate = outcome.check.rate
    return _policy_text(policy_name(outcome, index), rate.limit, rate.window, rate.calendar)


@functools.lru_cache(maxsize=4096)
def _policy_text(name: str, limit: int, window: int, calendar: str | None) -> str:
    """One RateLimit-Policy item; the same few policies recur on every request."""
    item = f"{sf_string(name)};q={limit}"
    if calendar != "month":
        item += f";w={window}"
    return item


@functools.lru_cache(maxsize=4096)
def _quoted(name: str) -> str:
    return sf_string(name)


def single_policy(check: LimitCheck) -> tuple[str, str]:
    """The RateLimit-Policy item and quoted name of a request's only check (callers that
    see the same check again keep this pair: see :func:`admitted_fields`)."""
    name = check.name or "p0"
    rate = check.rate
    return _policy_text(name, rate.limit, rate.window, rate.calendar), _quoted(name)


_single = functools.lru_cache(maxsize=4096)(single_policy)


def _seconds(value: float) -> int:
    return math.ceil(value - 1e-9)


def admitted_fields(
    policy: tuple[str, str], remaining: int, reset_after: float
) -> tuple[tuple[str, str], tuple[str, str]]:
    """The fields for a request admitted by its only check; ``policy`` from
    :func:`single_policy`, ``reset_after`` in seconds (negative counts as 0)."""
    reset = _seconds(reset_after) if reset_after > 0.0 else 0
    return (
        ("RateLimit-Policy", policy[0]),
        ("RateLimit", f"{policy[1]};r={remaining};t={reset}"),
    )


def admitted_headers(only: CheckOutcome) -> list[tuple[str, str]]:
    """The fields for a request admitted by its only check."""
    return list(admitted_fields(_single(only.check), only.remaining, only.reset_after))


def ratelimit_headers(result: LimitResult) -> list[tuple[str, str]]:
    """Header fields for ``result``: RateLimit-Policy, RateLimit, and Retry-After if refused."""
    if not result.checks:
        return []
    if result.allowed and len(result.checks) == 1:  # the common case, formatted directly
        return admitted_headers(result.checks[0])
    policies = ",".join(_policy_item(o, i) for i, o in enumerate(result.checks))
    headers = [("RateLimit-Policy", policies)]
    if result.allowed or result.denied_by is None:
        limits = ",".join(
            f"{_quoted(policy_name(o, i))};r={o.remaining};t={_seconds(o.reset_after)}"
            for i, o in enumerate(result.checks)
        )
        headers.append(("RateLimit", limits))
        return headers
    retry = retry_after_seconds(result.retry_after)
    denied = result.checks[result.denied_by]
    name = sf_string(policy_name(denied, result.denied_by))
    headers.append(("RateLimit", f"{name};r=0;t={retry}"))
    headers.append(("Retry-After", str(retry)))
    return headers
