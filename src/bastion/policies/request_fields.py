"""Reading a :class:`~bastion.decisions.FieldRef` out of a request context.

The JSON body is parsed once per request (strictly, see :mod:`bastion.jsonutil`) and cached
on the context for every policy that needs it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from bastion.decisions import MISSING, FieldRef, lookup_path
from bastion.jsonutil import JSONError, loads_strict
from bastion.types import RequestContext

__all__ = ["json_body", "request_value"]


def json_body(ctx: RequestContext) -> Any:
    """The request body as JSON, or MISSING when absent or not JSON."""
    if not ctx.json_parsed:
        ctx.json_parsed = True
        ctx.json_body = MISSING
        if ctx.body:
            try:
                ctx.json_body = loads_strict(ctx.body)
            except JSONError:
                ctx.json_body = MISSING
    return ctx.json_body


def request_value(ctx: RequestContext, ref: FieldRef) -> Any:
    """The referenced value, or :data:`MISSING`."""
    if ref.source == "path":
        return ctx.path_params.get(str(ref.path[0]), MISSING)
    if ref.source == "query":
        values = parse_qs(ctx.query_string.decode("latin-1"), keep_blank_values=True)
        found = values.get(str(ref.path[0]))
        return found[0] if found and len(found) == 1 else MISSING
    if ref.source == "header":
        found_all = ctx.headers.get_all(str(ref.path[0]))
        return found_all[0] if len(found_all) == 1 else MISSING
    if ref.source == "body":
        body = json_body(ctx)
        return MISSING if body is MISSING else lookup_path(body, ref.path)
    if ctx.principal is None:
        return MISSING
    if ref.path in (("sub",), ("subject",)):
        return ctx.principal.subject
    return lookup_path(ctx.principal.claims, ref.path)
