"""Reading a :class:`~bastion.decisions.FieldRef` out of a request context.

The body is read the way its ``Content-Type`` says, once per request, and cached on the
context for every policy that needs it: JSON strictly (:mod:`bastion.jsonutil`), a form
(``application/x-www-form-urlencoded``) strictly too.

A field the gateway decides on (owner rules, login lockout, rate-limit keys) must be the
one the upstream reads, so whatever the upstream could read differently is refused instead
of being treated as absent — an absent field lets a login attempt or a rate-limited call
through uncounted: a query parameter, header or form field given twice (also ``;`` between
query parameters, which some frameworks split on), a query parameter, JSON key or form
field next to (or instead of) another spelling of its name: another case (ASP.NET Core
and Spring bind names case-insensitively) or '.', ' ' or '[' for '_' (PHP), a body that
is not valid JSON or form data, or of another media type (400 or 415).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from bastion.contract.media import is_json, parse_media_type
from bastion.contract.parameters import StyleError, parse_query
from bastion.decisions import MISSING, FieldRef, lookup_path
from bastion.errors import BadRequest, UnsupportedMediaType
from bastion.jsonutil import JSONError, loads_strict
from bastion.types import RequestContext

__all__ = ["json_body", "request_value"]

_FORM = "application/x-www-form-urlencoded"


def json_body(ctx: RequestContext) -> Any:
    """The request body as a document (JSON, or a form as an object), MISSING when empty.

    Raises :class:`~bastion.errors.BadRequest` for a malformed body or a repeated form
    field, :class:`~bastion.errors.UnsupportedMediaType` for another media type.
    """
    if not ctx.json_parsed:
        ctx.json_body = _read_body(ctx)
        ctx.json_parsed = True
    return ctx.json_body


def _read_body(ctx: RequestContext) -> Any:
    if not ctx.body:
        return MISSING
    parsed = parse_media_type(ctx.headers.get("content-type"))
    media = parsed[0] if parsed is not None else ""
    if is_json(media):
        try:
            return loads_strict(ctx.body)
        except JSONError as exc:
            raise BadRequest(
                f"request body is not valid JSON: {exc}", reason="field.body"
            ) from None
    if media == _FORM:
        try:
            pairs = parse_query(ctx.body)
        except StyleError as exc:
            raise BadRequest(str(exc), reason="field.body") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            if name in form:
                raise BadRequest(f"form field {name!r} is repeated", reason="field.ambiguous")
            form[name] = value
        return form
    raise UnsupportedMediaType(reason="field.body_media_type")


def _body_value(document: Any, path: tuple[str | int, ...]) -> Any:
    """``lookup_path``, refusing a key that another key of its object spells in other case."""
    node = document
    for token in path:
        if isinstance(node, dict) and isinstance(token, str):
            folded = _folded(token)
            if any(key != token and _folded(key) == folded for key in node):
                raise BadRequest(
                    f"request body field {token!r} is given in more than one spelling",
                    reason="field.ambiguous",
                )
        node = lookup_path(node, (token,))
        if node is MISSING:
            return MISSING
    return node


def _folded(name: str) -> str:
    """A field name as the most lenient binders read it: case-insensitively (ASP.NET Core,
    Spring's relaxed binding) and with '.', ' ' and '[' as '_' (PHP's request variables)."""
    return name.casefold().replace(".", "_").replace(" ", "_").replace("[", "_")


def _query_value(query_string: bytes, name: str) -> Any:
    if not query_string.isascii():
        # Raw bytes decode one way here and another upstream (é sent raw and as %C3%A9
        # were two rate-limit counters).
        raise BadRequest("the query string must be percent-encoded ASCII", reason="field.ambiguous")
    text = query_string.decode("latin-1")
    split_on_both_all = parse_qs(text.replace(";", "&"), keep_blank_values=True)
    folded = _folded(name)
    for other in split_on_both_all:
        if other != name and _folded(other) == folded:
            # ?Account=u-alice&account=u-bob: ASP.NET Core binds the first, PHP reads
            # account.id as account_id.
            raise BadRequest(
                f"query parameter {other!r} is another spelling of {name!r}",
                reason="field.ambiguous",
            )
    split_on_amp = parse_qs(text, keep_blank_values=True).get(name)
    split_on_both = split_on_both_all.get(name)
    if split_on_amp is None and split_on_both is None:
        return MISSING
    if split_on_amp != split_on_both or split_on_amp is None or len(split_on_amp) != 1:
        raise BadRequest(f"query parameter {name!r} is ambiguous", reason="field.ambiguous")
    return split_on_amp[0]


def request_value(ctx: RequestContext, ref: FieldRef) -> Any:
    """The referenced value, or :data:`MISSING` when the request does not carry it."""
    if ref.source == "path":
        return ctx.path_params.get(str(ref.path[0]), MISSING)
    if ref.source == "query":
        return _query_value(ctx.query_string, str(ref.path[0]))
    if ref.source == "header":
        found_all = ctx.headers.get_all(str(ref.path[0]))
        if len(found_all) > 1:
            raise BadRequest(f"header {ref.path[0]!r} is repeated", reason="field.ambiguous")
        return found_all[0] if found_all else MISSING
    if ref.source == "body":
        body = json_body(ctx)
        return MISSING if body is MISSING else _body_value(body, ref.path)
    if ctx.principal is None:
        return MISSING
    if ref.path in (("sub",), ("subject",)):
        return ctx.principal.subject
    return lookup_path(ctx.principal.claims, ref.path)
