"""``format: email``, compiled to a schema jsonschema-rs checks natively.

Email is an RFC 5321 §4.1.2 ``Mailbox`` with the §4.5.3.1 size limits: a dot-atom or quoted
local part of at most 64 characters, ``@``, then a host name (LDH labels of 1–63
characters, 253 in all) or an address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``),
at most 254 characters, ASCII only.

jsonschema-rs' own ``email`` (without display text, :data:`EMAIL_OPTIONS`) checks that,
except that it lets addresses grow beyond 254 characters and refuses labels with ``--`` in
the third and fourth places that are not valid IDNA as written: ``user@d.xN--6fRZ82G``,
found by the property-based tests, is valid and must pass (a contract must not reject valid
input). So ``format: email`` becomes :data:`EMAIL_CHECK`: the 254 characters, and then the
native check in ``if`` and in ``else`` two patterns that accept the host-name form of the
grammar (address literals are the native check's alone). What the native check accepts
within 254 characters is valid, so together they accept exactly the valid addresses;
``tests/contract/test_contract_formats.py`` holds a reference implementation and compares
the two on generated addresses.

Why not a Python format function: jsonschema-rs validates more slowly with any Python
callback registered, called or not (the bench's 2 KB request: 7.0 against 5.0 µs with a
callback that is never called; 8.2 with the email function called once). The patterns run
on the ``regex`` crate (finite automata, linear time:
:data:`bastion.contract.schema.compile_validator`).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

__all__ = ["EMAIL_CHECK", "EMAIL_OPTIONS", "EMAIL_PATTERNS"]

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_QTEXT = r"[ !#-\[\]-~]"  # printable ASCII but '"' and '\'
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: 254 characters in all; the grammar (dot-atom or quoted-string, then a host name); the
#: local part's 64 and the host name's 253 characters (the last ``@`` splits them).
EMAIL_PATTERNS = (
    r"^.{0,254}$",
    rf'^(?:{_ATEXT}+(?:\.{_ATEXT}+)*|"(?:{_QTEXT}|\\[ -~])*")@{_LABEL}(?:\.{_LABEL})*$',
    r"^.{1,64}@[^@]{1,253}$",
)
#: The native check: no ``Name <address>`` display text.
EMAIL_OPTIONS = jsonschema_rs.EmailOptions(allow_display_text=False)
#: What ``format: email`` is compiled to (see the module docstring).
EMAIL_CHECK: dict[str, Any] = {
    "allOf": [
        {"pattern": EMAIL_PATTERNS[0]},
        {
            "if": {"format": "email"},
            "else": {"allOf": [{"pattern": pattern} for pattern in EMAIL_PATTERNS[1:]]},
        },
    ]
}
