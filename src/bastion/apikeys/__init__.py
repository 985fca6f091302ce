"""API keys: format, hashed storage (SQLite, PostgreSQL, Redis), cached authentication, CLI.

See docs/api-keys.md. The gateway's authentication policy builds one
:class:`ApiKeyAuthenticator` over :func:`open_store` and calls
:meth:`ApiKeyAuthenticator.authenticate` per request.
"""

from __future__ import annotations

from bastion.apikeys.authenticator import (
    CHANGE_EVENT_TYPE,
    SCHEME,
    ApiKeyAuthenticator,
    change_event,
    principal_for,
)
from bastion.apikeys.model import (
    KEY_LENGTH,
    ApiKeyRecord,
    generate_key,
    hash_key,
    key_checksum_ok,
    key_format_problem,
)
from bastion.apikeys.store import (
    ApiKeyError,
    ApiKeyNotRotatable,
    ApiKeyStore,
    UnknownApiKey,
    open_store,
)

__all__ = [
    "CHANGE_EVENT_TYPE",
    "KEY_LENGTH",
    "SCHEME",
    "ApiKeyAuthenticator",
    "ApiKeyError",
    "ApiKeyNotRotatable",
    "ApiKeyRecord",
    "ApiKeyStore",
    "UnknownApiKey",
    "change_event",
    "generate_key",
    "hash_key",
    "key_checksum_ok",
    "key_format_problem",
    "open_store",
    "principal_for",
]
