"""Pure authorization decisions: values in, :class:`~bastion.types.Decision` out.

No I/O, no ASGI, no clock reads. The gateway's policies, the ASGI middleware and the
scanner call the same functions, and the test suite checks them in bulk.
"""

from bastion.decisions.fields import MISSING, FieldRef, lookup_path, parse_field_ref
from bastion.decisions.rules import (
    AllowRule,
    OwnerSpec,
    decide_allow,
    decide_owner,
    filter_owned,
)

__all__ = [
    "MISSING",
    "AllowRule",
    "FieldRef",
    "OwnerSpec",
    "decide_allow",
    "decide_owner",
    "filter_owned",
    "lookup_path",
    "parse_field_ref",
]
