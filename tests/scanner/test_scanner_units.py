"""Pure parts of the scanner: redaction, JWT forging, rules, identities, spec, sampling, HTML."""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from bastion.errors import ConfigError
from bastion.scanner import jwt_forge
from bastion.scanner.engine import ScanResult
from bastion.scanner.findings import Confidence, Evidence, Finding, Severity
from bastion.scanner.identities import ANONYMOUS, load_identities
from bastion.scanner.redact import Redactor
from bastion.scanner.reports import render_html, render_junit
from bastion.scanner.rules import Rule, apply_rules, load_rules
from bastion.scanner.sampling import sample
from bastion.scanner.spec import load_spec
from tests.scanner.servers import SPEC


def test_known_secrets_become_shell_variables_and_curl_still_parses() -> None:
    r = Redactor()
    r.add_secret("tok-123456", "BASTION_alice_TOKEN")
    curl = r.curl(
        "GET", "http://h/x?access_token=tok-123456", {"Authorization": "Bearer tok-123456"}, None
    )
    assert "tok-123456" not in curl
    assert "${BASTION_ALICE_TOKEN}" in curl
    words = shlex.split(curl.replace("${BASTION_ALICE_TOKEN}", "T"))
    assert "Authorization: Bearer T" in words


def test_unknown_secrets_are_redacted_by_name() -> None:
    r = Redactor()
    assert r.headers({"X-Api-Key": "k1", "Accept": "a"}) == {
        "X-Api-Key": "[REDACTED]",
        "Accept": "a",
    }
    assert r.url("http://h/p?token=abc&q=1") == "http://h/p?token=[REDACTED]&q=1"
    body = r.body(b'{"user": {"password_hash": "$2b$xx", "token_type": "Bearer"}, "n": 1}')
    assert body == '{"user":{"password_hash":"[REDACTED]","token_type":"Bearer"},"n":1}'


@pytest.mark.parametrize("password", ["Tr0ub4dor&3 horse!", 'pa"ss\\w0rd', "pässwörd€"])
def test_a_login_password_never_reaches_a_report_in_any_encoding(password: str) -> None:
    """Form bodies carry it URL-encoded, JSON bodies escaped: neither reads as itself."""
    from urllib.parse import urlencode

    import orjson

    r = Redactor()
    r.add_secret(password, "BASTION_alice_password")
    form = urlencode({"username": "alice", "password": password}).encode()
    json_body = orjson.dumps({"username": "alice", "password": password})
    for body in (form, json_body):
        for shown in (
            r.body(body) or "",
            r.curl("POST", "http://h/login", {"Content-Type": "x"}, body),
        ):
            assert password not in shown
            for encoded in (quote_plus(password), quote(password, safe="")):
                assert encoded not in shown
            assert orjson.dumps(password).decode()[1:-1] not in shown


def test_unknown_secrets_in_form_bodies_are_redacted_by_name() -> None:
    r = Redactor()
    shown = r.body(b"username=alice&password=hunter2%21&remember=1")
    assert shown == "username=alice&password=[REDACTED]&remember=1"
    curl = r.curl("POST", "http://h/login", {}, b"username=alice&password=hunter2%21")
    assert "hunter2" not in curl


def test_weak_hs256_secret_is_cracked_offline() -> None:
    token = jwt_forge.sign_hs256(b"changeme", {"typ": "JWT"}, {"sub": "u1"})
    assert jwt_forge.crack_hs256(token, jwt_forge.wordlist()) == b"changeme"
    strong = jwt_forge.sign_hs256(b"x" * 32 + b"7f3c", {"typ": "JWT"}, {"sub": "u1"})
    assert jwt_forge.crack_hs256(strong, jwt_forge.wordlist()) is None
    header, claims = jwt_forge.decode(jwt_forge.forge_none(token)) or ({}, {})
    assert header["alg"] == "none"
    assert claims == {"sub": "u1"}
    assert jwt_forge.strip_signature(token).endswith(".")
    expired = jwt_forge.expired_copy(b"changeme", token, now=10_000)
    assert expired is not None
    assert (jwt_forge.decode(expired) or ({}, {}))[1]["exp"] == 10_000 - 3600


def _finding(rule: str, operation: str | None, severity: Severity = Severity.HIGH) -> Finding:
    return Finding(rule.split(".")[0], rule, "t", severity, Confidence.HIGH, "d", operation)


def test_rules_ignore_and_downgrade_keep_the_reason() -> None:
    rules = [
        Rule(check="API8", action="ignore", reason="handled by the CDN"),
        Rule(
            check="API1.bola-read",
            operation="GET /public/*",
            action="downgrade",
            severity="low",
            reason="public catalogue",
        ),
    ]
    kept, suppressed = apply_rules(
        [
            _finding("API8.cors-null-origin", None),
            _finding("API1.bola-read", "GET /public/x"),
            _finding("API1.bola-read", "GET /orders/{id}"),
        ],
        rules,
    )
    assert [f.rule_reason for f in suppressed] == ["handled by the CDN"]
    assert [(f.operation, f.severity, f.original_severity) for f in kept] == [
        ("GET /public/x", Severity.LOW, Severity.HIGH),
        ("GET /orders/{id}", Severity.HIGH, None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nrules:\n  - {check: API1, action: ignore}\n", "reason"),
        ("version: 1\nrules:\n  - {check: API1, action: downgrade, reason: why}\n", "severity"),
        ("version: 1\nrules:\n  - {check: API1, action: drop, reason: why}\n", "action"),
        ("version: 1\nrules: [}\n", "invalid YAML"),
    ],
)
def test_invalid_rules_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_rules(path)


def test_identities_expand_environment_and_add_anonymous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCAN_KEY", "k-123")
    path = tmp_path / "ids.yaml"
    path.write_text(
        "version: 1\nidentities:\n  - name: svc\n    roles: [admin]\n"
        "    headers: {X-API-Key: '${SCAN_KEY}'}\n",
        encoding="utf-8",
    )
    ids = load_identities(path)
    assert [i.name for i in ids] == ["svc", ANONYMOUS]
    assert ids[0].static_headers == {"X-API-Key": "k-123"}
    assert ids[0].privileged
    assert not ids[1].privileged


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nidentities:\n  - name: a\n    headers: {K: '${NOPE_NOT_SET}'}\n",
            "NOPE_NOT_SET",
        ),
        ("version: 1\nidentities:\n  - {name: a}\n  - {name: a}\n", "unique"),
        ("version: 1\nidentities:\n  - {name: anonymous}\n", "anonymous"),
        ("version: 1\nidentities:\n  - {name: a, colour: red}\n", "colour"),
    ],
)
def test_invalid_identities_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_identities(path)


def test_spec_model_labels_operations_and_knows_their_lines() -> None:
    spec = load_spec(SPEC)
    approve = spec.operation("POST /api/v2/orders/{order_id}/approve")
    assert approve is not None
    assert approve.admin
    assert approve.secured
    products = spec.operation("GET /api/v2/products")
    assert products is not None
    assert not products.secured
    assert not products.admin
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    assert approve.line is not None
    assert lines[approve.line - 1].strip() == "post:"
    server_line = spec.line_of("/servers/0/url")
    assert server_line is not None
    assert "http://vulnapi.example.com" in lines[server_line - 1]


def test_a_file_that_is_not_openapi_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("hello: world\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_spec(path)


_UNRESOLVABLE = """openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /ok:
    get:
      responses: {"200": {description: ok}}
  /items/{id}:
    get:
      parameters: [{$ref: "#/components/parameters/Missing"}]
      responses: {"200": {description: ok}}
"""


def test_an_operation_schemathesis_cannot_use_is_named_with_pointer_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(_UNRESOLVABLE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = str(info.value)
    assert "/paths/~1items~1{id}/get (line 8)" in message
    assert "invalid operation GET /items/{id}: Unresolvable reference" in message
    assert "#/components/parameters/Missing" in message
    assert "\n" not in message
    assert "object has no attribute" not in message


def test_a_spec_spelling_a_lone_surrogate_is_named_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    ok = '"responses": {"200": {"description": "ok"}}'
    path.write_text(
        '{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},'
        f' "paths": {{"/a\\ud800b": {{"get": {{{ok}}}}}}}}}',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: /paths/~1a?b: unpaired UTF-16 surrogate escape (not encodable as UTF-8)"
    )


def test_samples_are_valid_and_leave_out_read_only_fields() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "status": {"type": "string", "enum": ["new", "done"]},
            "code": {"type": "string", "minLength": 12, "maxLength": 12},
            "email": {"type": "string", "format": "email"},
        },
    }
    assert sample(schema) == {
        "status": "new",
        "code": "bastionxxxxx",
        "email": "scanner@example.com",
    }


def _result(finding: Finding) -> ScanResult:
    """A finished scan of one operation that found ``finding``."""
    now = datetime.now(UTC)
    return ScanResult(
        "http://h",
        "spec.yaml",
        now,
        now,
        1.0,
        [finding],
        [],
        [],
        [],
        1,
        ["x"],
        1,
        60.0,
        False,
        False,
        [finding.check],
        {},
        0,
    )


def test_html_escapes_everything_from_the_target() -> None:
    evil = "<script>alert(1)</script>"
    evidence = Evidence(
        "GET", f"http://h/{evil}", {"X": evil}, None, 200, {}, evil, 1.0, "a", "curl"
    )
    finding = Finding(
        "API3",
        "API3.sensitive-data",
        evil,
        Severity.HIGH,
        Confidence.HIGH,
        evil,
        f"GET /{evil}",
        ("a",),
        (evidence,),
    )
    result = _result(finding)
    html = render_html(result)
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_junit_stays_well_formed_xml_whatever_the_spec_and_target_hold() -> None:
    """XML 1.0 cannot hold control characters: written raw, one odd path in a spec (or
    byte in an answer quoted as evidence) made the whole report unreadable to the CI
    that parses it."""
    odd = "/a\x1b[31m\x00b\x07c"
    evidence = Evidence("GET", f"http://h{odd}", {}, None, 200, {}, odd, 1.0, "a", "curl")
    finding = Finding(
        "API3",
        "API3.sensitive-data",
        f"title {odd}",
        Severity.HIGH,
        Confidence.HIGH,
        f"description {odd}",
        f"GET {odd}",
        ("a",),
        (evidence,),
    )
    text = render_junit(_result(finding))
    root = ET.fromstring(text)  # noqa: S314
    failure = root.find(".//testcase/failure")
    assert failure is not None
    assert failure.get("message") == "title /a\\x1b[31m\\x00b\\x07c"
    case = root.find(".//testcase[failure]")
    assert case is not None
    assert "GET /a\\x1b[31m" in (case.get("name") or "")


def test_public_api_is_curated() -> None:
    import types

    import bastion.scanner as scanner

    public = {
        name
        for name, value in vars(scanner).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(scanner.__all__) == sorted(public)


def test_spec_can_be_loaded_from_a_url() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.scanner.servers import serve

    async def spec(_: object) -> PlainTextResponse:
        return PlainTextResponse(SPEC.read_text(encoding="utf-8"), media_type="application/yaml")

    with serve(Starlette(routes=[Route("/openapi.yaml", spec)])) as url:
        loaded = load_spec(f"{url}/openapi.yaml")
        with pytest.raises(ConfigError, match="cannot read the spec"):
            load_spec(f"{url}/missing.yaml")
    assert loaded.source == f"{url}/openapi.yaml"
    assert len(loaded.operations) == 16
    approve = loaded.operation("POST /api/v2/orders/{order_id}/approve")
    assert approve is not None
    assert approve.line is not None
