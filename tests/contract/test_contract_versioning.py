"""RFC 9745 Deprecation, RFC 8594 Sunset and their Link relations."""

from __future__ import annotations

import datetime as dt

import pytest

from bastion.contract.versioning import (
    deprecation_headers,
    deprecation_value,
    parse_deprecation,
    parse_sunset,
    sunset_value,
)
from bastion.errors import ConfigError


@pytest.mark.rfc("RFC 9745 §2.1")
@pytest.mark.parametrize(
    "when",
    [
        "2023-06-30T23:59:59Z",
        "Fri, 30 Jun 2023 23:59:59 GMT",
        "2023-06-30T23:59:59",
        dt.datetime(2023, 6, 30, 23, 59, 59, tzinfo=dt.UTC),
        "@1688169599",
        1688169599,
    ],
)
def test_deprecation_is_a_structured_field_date(when: object) -> None:
    assert deprecation_value(when) == "@1688169599"  # type: ignore[arg-type]


@pytest.mark.rfc("RFC 8594 §3")
def test_sunset_is_an_imf_fixdate() -> None:
    assert sunset_value("2033-12-31T23:59:59Z") == "Sat, 31 Dec 2033 23:59:59 GMT"
    assert sunset_value(dt.date(2033, 12, 31)) == "Sat, 31 Dec 2033 00:00:00 GMT"
    assert sunset_value("2033-12-31T23:59:59+02:00") == "Sat, 31 Dec 2033 21:59:59 GMT"


def test_headers_with_all_links() -> None:
    headers = deprecation_headers(
        "2025-01-01",
        "2025-07-01",
        "https://docs.example.com/deprecations/v1",
        sunset_link="https://docs.example.com/sunset",
        successor="https://api.example.com/v2",
    )
    assert headers == [
        ("Deprecation", "@1735689600"),
        ("Sunset", "Tue, 01 Jul 2025 00:00:00 GMT"),
        (
            "Link",
            '<https://docs.example.com/deprecations/v1>; rel="deprecation", '
            '<https://docs.example.com/sunset>; rel="sunset", '
            '<https://api.example.com/v2>; rel="successor-version"',
        ),
    ]


def test_parsers_read_back_what_we_write() -> None:
    assert parse_deprecation("@1735689600") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert parse_sunset("Tue, 01 Jul 2025 00:00:00 GMT") == dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="structured-field"):
        parse_deprecation("Tue, 01 Jul 2025 00:00:00 GMT")
    with pytest.raises(ValueError, match="HTTP-date"):
        parse_sunset("tomorrow")


def test_config_mistakes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="before"):
        deprecation_headers("2025-07-01", "2025-01-01")
    with pytest.raises(ConfigError, match="not a date"):
        deprecation_headers("soon")
    with pytest.raises(ConfigError, match="not allowed"):
        deprecation_headers(None, None, 'https://x.example/a>; rel="evil"')
    assert deprecation_headers(None) == []
