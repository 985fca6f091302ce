"""Which role and scope values may enter a :class:`bastion.types.Principal`.

The upstream learns them as ``X-Bastion-Roles: a,b`` and ``X-Bastion-Scopes: a b``, so a
value that holds the list separator would read upstream as several entries (a token with
the role ``"x,admin"`` would be seen as holding ``admin``). One rule for every source
(JWT claims, API keys, mTLS identities):

* a role is a non-empty string of printable characters without ``,`` or whitespace (no
  control characters);
* a scope is an RFC 6749 §3.3 ``scope-token``: ``1*( %x21 / %x23-5B / %x5D-7E )``, that is
  printable ASCII except space, ``"`` and ``\\``. A ``scope`` string is split on the space
  character only (``scope = scope-token *( SP scope-token )``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["invalid_label", "is_valid_role", "is_valid_scope", "split_scope"]

_ROLE_SEPARATORS = re.compile(r"[\s,]")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def is_valid_role(value: str) -> bool:
    """A non-empty role without ``,``, whitespace or control / non-printable characters."""
    return bool(value) and value.isprintable() and _ROLE_SEPARATORS.search(value) is None


def is_valid_scope(value: str) -> bool:
    """An RFC 6749 §3.3 ``scope-token``."""
    return _SCOPE_TOKEN.fullmatch(value) is not None


def split_scope(value: str) -> list[str]:
    """The tokens of a space-delimited ``scope`` string (RFC 6749 §3.3): split on the space
    character only; empty pieces (repeated, leading or trailing spaces) are dropped."""
    return [token for token in value.split(" ") if token]


def invalid_label(roles: Iterable[object], scopes: Iterable[object]) -> str | None:
    """``"roles"`` or ``"scopes"`` when one of the values breaks the rule above, else None."""
    if not all(isinstance(r, str) and is_valid_role(r) for r in roles):
        return "roles"
    if not all(isinstance(s, str) and is_valid_scope(s) for s in scopes):
        return "scopes"
    return None
