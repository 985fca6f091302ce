"""RateLimit-Policy / RateLimit per draft-ietf-httpapi-ratelimit-headers-11."""

from __future__ import annotations

from bastion.ratelimit import (
    LimitCheck,
    evaluate_checks,
    parse_quota,
    parse_rate,
    ratelimit_headers,
)
from bastion.ratelimit.headers import sf_string

NOW = 1_700_000_000.0


def test_allowed_response_advertises_policies_and_service_limits() -> None:
    checks = [
        LimitCheck("ip", parse_rate("100/minute"), name="per-ip"),
        LimitCheck("key", parse_quota("1000/day"), "quota", name="daily"),
    ]
    result, _ = evaluate_checks(checks, {}, NOW)
    headers = dict(ratelimit_headers(result))
    assert headers["RateLimit-Policy"] == '"per-ip";q=100;w=60,"daily";q=1000;w=86400'
    day_left = 86400 - int(NOW % 86400)
    assert headers["RateLimit"] == f'"per-ip";r=99;t=1,"daily";r=999;t={day_left}'
    assert "Retry-After" not in headers


def test_refused_response_has_retry_after_not_before_the_window_end() -> None:
    check = LimitCheck("ip", parse_rate("1/minute"), name="per-ip")
    _, writes = evaluate_checks([check], {}, NOW)
    states = {k: v[0] for k, v in writes.items()}
    result, _ = evaluate_checks([check], states, NOW + 10.2)
    headers = dict(ratelimit_headers(result))
    assert headers["Retry-After"] == "50"
    assert headers["RateLimit"] == '"per-ip";r=0;t=50'


def test_unnamed_policies_get_positional_names_and_monthly_quotas_omit_w() -> None:
    checks = [LimitCheck("k", parse_quota("10/month"), "quota")]
    result, _ = evaluate_checks(checks, {}, NOW)
    assert dict(ratelimit_headers(result))["RateLimit-Policy"] == '"p0";q=10'


def test_policy_names_are_valid_sf_strings() -> None:
    assert sf_string('a"b\\c') == '"a\\"b\\\\c"'
    assert sf_string("naïve\r\nX: y") == '"na?ve??X: y"'


def test_no_checks_no_headers() -> None:
    result, _ = evaluate_checks([], {}, NOW)
    assert ratelimit_headers(result) == []
