"""Redaction of secrets in evidence, and reproducible curl lines that never contain them.

Known secrets (tokens obtained at login, static credential headers, login passwords) are
replaced by a shell variable reference such as ``${BASTION_ALICE_TOKEN}``, so the curl line
still reproduces the request once the variable is set; a secret is also found the way it
went over the wire (URL-encoded in a form or query, escaped in JSON), where a password with
a ``&``, a space or a quote no longer reads as itself. Values of sensitive JSON fields, form
fields and headers that are not known secrets become ``[REDACTED]``, in the evidence and in
the curl line alike.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from bastion.jsonutil import dumps, loads_strict

__all__ = ["CREDENTIAL_HEADER", "SENSITIVE_NAME", "Redactor", "is_credential_header"]

SENSITIVE_NAME = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|authorization|cookie|session|private[-_]?key"
    r"|credential|ssn|cvv|card[-_]?number|password[-_]?hash)",
    re.IGNORECASE,
)
# Request headers whose values are credentials: Authorization, Cookie, X-API-Key, and any
# name mentioning a token, secret, key, password, session, credential or auth.
CREDENTIAL_HEADER = re.compile(
    r"(authori[sz]ation|auth|cookie|token|secret|key|pass(word|wd)|session|credential)",
    re.IGNORECASE,
)
_MAX_BODY = 4096


def is_credential_header(name: str) -> bool:
    """Whether a header's value is a secret (only those are redacted from evidence)."""
    return bool(CREDENTIAL_HEADER.search(name))


class Redactor:
    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._public: set[str] = set()
        self.curl_flags: list[str] = []

    def allow(self, value: str) -> None:
        """Mark a value as shown verbatim even under a sensitive name (forged test tokens)."""
        self._public.add(value)

    def add_secret(self, value: str, variable: str) -> None:
        """Register ``value`` (at least 4 characters) to be shown as ``${variable}``, in
        every form it takes on the wire: as it is, URL-encoded, JSON-escaped."""
        if len(value) < 4:
            return
        reference = "${" + re.sub(r"[^A-Z0-9_]", "_", variable.upper()) + "}"
        encoded = (quote_plus(value), quote(value, safe=""), dumps(value).decode()[1:-1])
        for form in (value, *encoded):
            self._secrets[form] = reference

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(secret, self._secrets[secret])
        return value

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        out = {}
        for name, value in headers.items():
            shown = self.text(value)
            public = any(p in value for p in self._public)
            if shown == value and SENSITIVE_NAME.search(name) and value and not public:
                shown = "[REDACTED]"
            out[name] = shown
        return out

    def url(self, url: str) -> str:
        """Query values are redacted; the path never is (it names the operation's object)."""
        parts = urlsplit(url)
        if not parts.query:
            return url
        pairs = []
        for key, raw in parse_qsl(parts.query, keep_blank_values=True):
            value = self.text(raw)
            if SENSITIVE_NAME.search(key) and "${" not in value:
                value = "[REDACTED]"
            pairs.append((key, value))
        return urlunsplit(parts._replace(query=urlencode(pairs, safe="${}[]")))

    def _json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: "[REDACTED]"
                if _sensitive_key(str(k)) and isinstance(v, str) and v and "${" not in v
                else self._json(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._json(v) for v in value]
        return value

    def _fields(self, text: str) -> str:
        """Known secrets, then sensitive fields of a JSON or form body redacted by name."""
        text = self.text(text)
        with contextlib.suppress(ValueError):
            return dumps(self._json(loads_strict(text))).decode()
        if "=" in text and not text.lstrip().startswith(("{", "[")):
            with contextlib.suppress(ValueError):
                pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
                if any(_sensitive_key(key) for key, _ in pairs):
                    return urlencode(
                        [
                            (k, "[REDACTED]" if _sensitive_key(k) and "${" not in v else v)
                            for k, v in pairs
                        ],
                        safe="${}[]",
                    )
        return text

    def body(self, body: bytes | None) -> str | None:
        if body is None:
            return None
        text = self._fields(body[: _MAX_BODY * 4].decode("utf-8", "replace"))
        if len(text) > _MAX_BODY:
            text = text[:_MAX_BODY] + f"... [{len(text) - _MAX_BODY} more characters]"
        return text

    def curl(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> str:
        flags = [shlex.quote(f) for f in self.curl_flags]
        parts = ["curl", "-sS", "-i", *flags, "-X", method, _quote(self.url(url))]
        for name, value in self.headers(headers).items():
            parts += ["-H", _quote(f"{name}: {value}")]
        if body is not None:
            shown = self._fields(body.decode("utf-8", "replace"))
            if len(shown) > 65536:
                shown = shown[:65536]
            parts += ["--data-binary", _quote(shown)]
        return " ".join(parts)


def _sensitive_key(key: str) -> bool:
    return bool(SENSITIVE_NAME.search(key)) and not key.lower().endswith("type")


def _quote(value: str) -> str:
    """Single-quote for the shell, except ``${BASTION_...}`` references, which must expand."""
    if "${" not in value:
        return shlex.quote(value)
    pieces = re.split(r"(\$\{[A-Z0-9_]+\})", value)
    return "".join(p if p.startswith("${") else shlex.quote(p) if p else "" for p in pieces)
