"""Config errors name file, line and key; `bastion check` reports each insecure setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bastion.config import load_config
from bastion.config.lint import lint
from bastion.errors import ConfigError

BASTION = str(Path(sys.executable).with_name("bastion"))

GOOD = """\
version: 1
mode: production
listen:
  host: 127.0.0.1
  port: 8443
  tls: {cert: tls.crt, key: tls.key}
upstreams:
  orders:
    url: http://127.0.0.1:9000
    timeout: {connect: 2, read: 10, total: 30}
apis:
  - name: orders
    upstream: orders
    base_path: /v1
    routes:
      - {path: /health, methods: [GET], public: true}
"""


def write(tmp_path: Path, text: str, name: str = "bastion.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "tls.crt").write_text("cert")
    (tmp_path / "tls.key").write_text("key")
    return path


def test_good_config_has_no_findings(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, GOOD))
    assert lint(loaded) == []
    assert loaded.config.apis[0].routes[0].public is True


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    base_path: /v1", "    base_path: /v1\n    bsae: 1"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:15: apis[0].bsae: unknown key" in str(err.value)


def test_type_error_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("port: 8443", "port: eighty"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:5: listen.port:" in str(err.value)


def test_missing_key_points_at_parent(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    upstream: orders\n", ""))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:12: apis[0].upstream: required key is missing" in str(err.value)


@pytest.mark.parametrize(
    ("allow", "message"),
    [
        ("{roles: ['']}", "role '' can never match"),
        ("{roles: ['customer,admin']}", "role 'customer,admin' can never match"),
        ("{scopes: ['read write']}", "scope 'read write' can never match"),
    ],
)
def test_an_allow_rule_that_can_never_match_names_file_line_and_key(
    tmp_path: Path, allow: str, message: str
) -> None:
    route = "      - {path: /health, methods: [GET], public: true}"
    path = write(
        tmp_path, GOOD.replace(route, f"      - {{path: /x, methods: [GET], allow: {allow}}}")
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:16: apis[0].routes[0].allow" in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("value", "key", "message"),
    [
        ("allow: {roles: ['a b']}", "allow.roles", "role 'a b' can never match"),
        ("allow: {}", "allow", "list roles and/or scopes, or write allow: authenticated"),
        ("allow: everyone", "allow", "a mapping of roles and/or scopes, or authenticated"),
        ("allow: 5", "allow", "a mapping of roles and/or scopes, or authenticated"),
        ("rate_limit: [{key: 5, limit: 1/second}]", "rate_limit[0].key", "or a list of keys"),
        ("rate_limit: [{key: [ip, 5], limit: 1/second}]", "rate_limit[0].key[1]", "string"),
    ],
)
def test_a_value_of_several_forms_gets_one_error_under_its_own_key(
    tmp_path: Path, value: str, key: str, message: str
) -> None:
    """A key that takes several forms (allow: a mapping or "authenticated") is reported
    once, under the key as written: not once per form, and not under pydantic's names for
    the forms ("allow.function-after[_some(), AllowConfig].roles")."""
    route = "      - {path: /health, methods: [GET], public: true}"
    path = write(tmp_path, GOOD.replace(route, f"      - {{path: /x, methods: [GET], {value}}}"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert lines[0] == "1 problem(s) in the configuration:", lines
    assert lines[1].startswith(f"  {path}:16: apis[0].routes[0].{key}: "), lines
    assert message in lines[1]


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("mode: production", "mode: production\nmode: development"))
    with pytest.raises(ConfigError, match=r":3: mode: duplicate key"):
        load_config(path)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  - [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML"):
        load_config(path)


def test_env_references_are_substituted_and_tracked(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    timeout:", "    headers: {X-Upstream-Key: '${UPSTREAM_KEY}'}\n    timeout:"
    )
    path = write(tmp_path, text)
    strong = "k" + "8f3a9c0d1e2b4f6a7c9e0d1b2a3f4e5d6c7b8a9"
    loaded = load_config(path, environ={"UPSTREAM_KEY": strong})
    assert loaded.config.upstreams["orders"].headers["X-Upstream-Key"] == strong
    assert lint(loaded) == []
    with pytest.raises(ConfigError, match="UPSTREAM_KEY is not set"):
        load_config(path, environ={})


def test_unknown_upstream_reference(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    upstream: orders", "    upstream: payments"))
    with pytest.raises(ConfigError, match="unknown upstream 'payments'"):
        load_config(path)


def test_cors_wildcard_with_credentials_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace(
            "    base_path: /v1",
            "    base_path: /v1\n    cors: {allow_origins: ['*'], allow_credentials: true}",
        ),
    )
    with pytest.raises(ConfigError, match="cannot be combined with allow_credentials"):
        load_config(path)


FINDINGS = {
    "plain-http": GOOD.replace("  tls: {cert: tls.crt, key: tls.key}\n", ""),
    "upstream-timeouts-missing": GOOD.replace(
        "    timeout: {connect: 2, read: 10, total: 30}\n", ""
    ),
    "inline-secret": GOOD.replace(
        "    timeout:",
        "    headers: {Authorization: 'Bearer "
        "q8Zr1vX4mN7pL2sK9dF6hJ3gT0wY5bC8eA1uI4oP7'}\n    timeout:",
    ),
    "weak-secret": GOOD.replace("    timeout:", "    headers: {X-Api-Key: '${KEY}'}\n    timeout:"),
    "route-without-authentication": GOOD.replace(
        "public: true}", "public: true}\n      - {path: /orders, methods: [GET]}"
    ),
    "audit-disabled": GOOD + "audit: {sink: none}\n",
    "tls-file-missing": GOOD.replace("cert: tls.crt", "cert: missing.crt"),
    # Signing keys over plain HTTP: anyone on the path could swap them (the docs said so,
    # and nothing checked it).
    "jwks-plain-http": GOOD.replace(
        "upstreams:",
        "authentication:\n  jwt:\n    - {issuer: 'https://id.example', audiences: [api],"
        " algorithms: [ES256], jwks_uri: 'http://id.example/jwks.json'}\nupstreams:",
        1,
    ),
}


@pytest.mark.parametrize("code", sorted(FINDINGS))
def test_each_check_finding_fails_bastion_check(tmp_path: Path, code: str) -> None:
    path = write(tmp_path, FINDINGS[code])
    result = subprocess.run(
        [BASTION, "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env={"KEY": "changeme", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f": error: {code}:" in result.stdout
    assert str(path) in result.stdout


def test_check_passes_good_config_and_warns_in_development(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = subprocess.run(
        [BASTION, "check", "--config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    dev = write(
        tmp_path,
        FINDINGS["plain-http"].replace("mode: production", "mode: development"),
        "dev.yaml",
    )
    result = subprocess.run(
        [BASTION, "check", "--config", str(dev)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "warning: plain-http" in result.stdout


def test_check_loads_every_apis_openapi_document(tmp_path: Path) -> None:
    """`bastion check` passed a config whose spec the gateway then refused to start with."""
    spec = tmp_path / "orders.yaml"
    operation = "    get:\n      deprecated: true\n      responses: {'200': {description: ok}}\n"
    spec.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n" + operation)
    config = GOOD.replace(
        "    routes:\n      - {path: /health, methods: [GET], public: true}\n",
        "    openapi: orders.yaml\n    routes: [{path: /a, methods: [GET], public: true}]\n",
    )
    path = write(tmp_path, config)

    def check() -> subprocess.CompletedProcess[str]:
        argv = [BASTION, "check", "--config", str(path)]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{spec}#/paths/~1a/get: warning: deprecated-without-date:" in result.stdout
    assert "0 error(s), 1 warning(s) in production mode" in result.stderr
    spec.write_text(spec.read_text().replace("deprecated: true", "deprecated: yes"))
    result = check()
    assert result.returncode == 2
    assert f"{spec.resolve()}: /paths/~1a/get/deprecated (line 6)" in result.stderr
    assert "'yes' is not of type 'boolean'" in result.stderr


def test_gateway_refuses_to_start_on_insecure_production_config(tmp_path: Path) -> None:
    path = write(tmp_path, FINDINGS["plain-http"])
    result = subprocess.run(
        [BASTION, "gateway", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert "plain-http" in result.stderr


def test_config_error_exit_code_and_message(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("version: 1", "version: 2"))
    result = subprocess.run(
        [BASTION, "check", "--config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert f"{path}:1: version:" in result.stderr
