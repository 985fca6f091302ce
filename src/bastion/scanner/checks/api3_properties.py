"""API3:2023 Broken Object Property Level Authorization.

Excessive data exposure (CWE-213): fields a response carries but its schema does not
declare, fields whose names are secret by nature, and values that look like secrets. Mass
assignment (CWE-915): read-only or response-only fields sent in a write, then read back to
confirm they persisted.
"""

from __future__ import annotations

import re
from typing import Any

from bastion.scanner.context import ScanContext, object_id
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.pattern_sample import matching_string
from bastion.scanner.probe import Exchange
from bastion.scanner.sampling import schema_properties, unique_tag
from bastion.scanner.spec import Operation

SENSITIVE_FIELDS = re.compile(
    r"^(password|passwd|pwd|password_?hash|pass_?hash|hashed_?password|secret|client_?secret"
    r"|api_?key|apikey|private_?key|secret_?key|ssn|social_?security(_number)?|card_?number"
    r"|credit_?card|cvv|cvc|pin|otp_?secret|totp_?secret|mfa_?secret|salt)$",
    re.IGNORECASE,
)
SECRET_VALUES = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "password hash": re.compile(r"^\$(2[abyx]?|argon2(id|i|d)|pbkdf2[-\w]*|scrypt|6|5)\$"),
    "private key": re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"),
    "JWT": re.compile(r"^eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*$"),
}
ID_FIELDS = {"id", "uuid", "_id"}


def _undeclared(value: Any, schema: Any, path: str = "") -> list[str]:
    if not isinstance(schema, dict):
        return []
    if isinstance(value, dict):
        props = schema_properties(schema)
        extra = schema.get("additionalProperties")
        if not props or extra not in (None, False):
            return []
        out = []
        for key, sub in value.items():
            if key not in props:
                out.append(f"{path}/{key}")
            else:
                out += _undeclared(sub, props[key], f"{path}/{key}")
        return out
    if isinstance(value, list):
        out = []
        for item in value[:20]:
            out += [p for p in _undeclared(item, schema.get("items"), f"{path}/*") if p not in out]
        return out
    return []


def _walk(value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(pointer, key, value) for every leaf under a key."""
    out: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if isinstance(sub, dict | list):
                out += _walk(sub, f"{path}/{key}")
            else:
                out.append((f"{path}/{key}", str(key), sub))
    elif isinstance(value, list):
        for item in value[:20]:
            out += _walk(item, f"{path}/*")
    return out


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _exposure(ctx: ScanContext, op: Operation, ex: Exchange) -> None:
    body = ex.json()
    if body is None or ex.status is None:
        return
    undeclared = _undeclared(body, op.response_schema(ex.status))
    sensitive: list[str] = []
    for pointer, key, value in _walk(body):
        if value in (None, "", [], {}):
            continue
        if SENSITIVE_FIELDS.match(key):
            sensitive.append(f"{pointer} (sensitive name)")
            continue
        if isinstance(value, str):
            for label, pattern in SECRET_VALUES.items():
                if pattern.search(value) and (label != "JWT" or pointer in undeclared):
                    sensitive.append(f"{pointer} ({label})")
            digits = re.sub(r"[ -]", "", value)
            if digits.isdigit() and 13 <= len(digits) <= 19 and _luhn(digits):
                sensitive.append(f"{pointer} (payment card number)")
    who = (ex.identity or "?",)
    if sensitive:
        ctx.report(
            "API3",
            "API3.sensitive-data",
            "Sensitive data in a response",
            Severity.HIGH,
            Confidence.HIGH,
            f"{op.label} returns secret-looking data: {', '.join(sorted(set(sensitive)))}.",
            op=op,
            identities=who,
            exchanges=(ex,),
            details={"fields": sorted(set(sensitive))},
        )
    rest = [p for p in undeclared if not any(s.startswith(p + " ") for s in sensitive)]
    if rest:
        ctx.report(
            "API3",
            "API3.undeclared-fields",
            "Response fields not declared in the spec",
            Severity.MEDIUM,
            Confidence.HIGH,
            f"{op.label} returns fields its response schema does not declare: "
            f"{', '.join(rest)}. Responses should be filtered to the declared fields.",
            op=op,
            identities=who,
            exchanges=(ex,),
            details={"fields": rest},
        )


def _injected_value(schema: dict[str, Any], seen: Any) -> Any:
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return next((v for v in reversed(enum) if v != seen), None)
    kind = schema.get("type")
    if kind == "boolean":
        return not seen if isinstance(seen, bool) else True
    if kind == "integer":
        return 987654
    if kind == "number":
        return 987654.5
    if kind == "string" and not schema.get("format"):
        # valid under the field's pattern, so a validating API cannot refuse it for shape
        pattern = schema.get("pattern")
        value = "bastion-mass-assignment"
        if isinstance(pattern, str):
            value = matching_string(pattern, value) or value
        return value if value != seen else None
    return None


def _candidates(op: Operation, reference: Any) -> dict[str, Any]:
    request_props = schema_properties(op.body_schema)
    response_props: dict[str, dict[str, Any]] = {}
    for status, schema in op.responses.items():
        if status.startswith("2"):
            response_props |= schema_properties(schema)
    fields = {k: v for k, v in request_props.items() if v.get("readOnly")}
    fields |= {k: v for k, v in response_props.items() if k not in request_props}
    out = {}
    for name, schema in fields.items():
        if name in ID_FIELDS:
            continue
        seen = reference.get(name) if isinstance(reference, dict) else None
        value = _injected_value(schema, seen)
        if value is not None:
            out[name] = value
    return out


def _reader(ctx: ScanContext, op: Operation) -> Operation | None:
    item_path = op.path if op.path_params else None
    if item_path is None:
        item_path = next(
            (
                o.path
                for o in ctx.spec.operations
                if o.method == "GET"
                and o.path.startswith(op.path + "/{")
                and o.path.count("/") == op.path.count("/") + 1
            ),
            None,
        )
    return next((o for o in ctx.spec.operations if o.method == "GET" and o.path == item_path), None)


async def _mass_assignment(ctx: ScanContext, op: Operation) -> None:
    users = ctx.low_privilege() or ctx.users()
    if not users or op.body_schema is None:
        return
    who = users[0]
    reference = ctx.baselines.get((op.label, who.name))
    injected = _candidates(op, reference.json() if reference is not None and reference.ok else None)
    if not injected:
        return
    obj = None
    if op.path_params:
        mine = [o for o in ctx.objects_for(op, owner=who.name) if o.created]
        if not mine:
            return
        obj = mine[0]
    body = op.sample_body(unique_tag() if op.method == "POST" else "")
    if not isinstance(body, dict):
        return
    write = await ctx.try_call(op, who, obj=obj, body={**body, **injected})
    if write is None or not write.ok:
        return
    evidence = [write]
    result = write.json()
    confidence = Confidence.MEDIUM
    reader = _reader(ctx, op)
    if reader is not None:
        path = obj.path if obj is not None else None
        if path is None:
            oid = object_id(result)
            if oid is not None:
                path = ctx.concrete_path(reader, values={reader.path_params[-1].name: oid})
        if path is not None:
            back = await ctx.try_call(reader, who, path=path)
            if back is not None and back.ok and isinstance(back.json(), dict):
                evidence.append(back)
                result, confidence = back.json(), Confidence.HIGH
    if not isinstance(result, dict):
        return
    persisted = sorted(k for k, v in injected.items() if k in result and result[k] == v)
    if persisted:
        ctx.report(
            "API3",
            "API3.mass-assignment",
            "Mass assignment of read-only fields",
            Severity.HIGH,
            confidence,
            f"{op.label} accepted values for read-only or response-only fields "
            f"{', '.join(persisted)} from {who.name}, and "
            + (
                "reading the object back shows they persisted."
                if confidence == Confidence.HIGH
                else "echoed them in the response."
            ),
            op=op,
            identities=(who.name,),
            exchanges=evidence,
            cwe=915,
            details={"fields": persisted},
        )


async def run(ctx: ScanContext) -> None:
    seen: set[str] = set()
    for (label, _), ex in list(ctx.baselines.items()):
        op = ctx.spec.operation(label)
        if op is not None and ex.ok and label not in seen:
            seen.add(label)
            _exposure(ctx, op, ex)
    for op in ctx.spec.operations:
        if op.method in {"POST", "PUT", "PATCH"} and "login" not in op.path.lower():
            await _mass_assignment(ctx, op)
