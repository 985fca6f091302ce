"""Response projection: keep only what the response schema declares.

A projection plan is built once per (operation, status, media type) from the OpenAPI schema
and applied per response in one walk over the parsed JSON, which also feeds the
sensitive-data :class:`~bastion.contract.sensitive.Scanner`:

* objects keep declared ``properties`` (and keys matching ``patternProperties``); other keys
  are removed unless ``additionalProperties`` is ``true`` or a schema (then projected with
  it). An object schema with neither ``properties`` nor ``additionalProperties`` is a
  free-form map and kept whole. ``writeOnly`` properties are always removed.
* arrays project each item (``items``; ``prefixItems`` by position).
* ``allOf``: the branches merge (union of their properties; a free-form branch does not open
  an object that another branch describes).
* ``oneOf`` / ``anyOf``: the properties kept are the union of the branches the value
  *validates against* (jsonschema-rs validators compiled at load); when none validates,
  the union of all branches (the response then fails validation anyway).
* ``$ref`` cycles become plan cycles; primitive schemas keep the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema_rs

from bastion.contract.schema import SchemaCompiler, compile_validator, resolve_local
from bastion.contract.sensitive import Scanner, name_is_sensitive, value_kind

__all__ = ["LEAF", "Plan", "PlanBuilder"]


class Plan:
    """Projects a value in place (objects lose keys) while the scanner records findings."""

    __slots__ = ()

    def apply(self, value: Any, walk: Scanner) -> None:
        walk.scan(value, False)


LEAF = Plan()


class RefPlan(Plan):
    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target: Plan = LEAF

    def apply(self, value: Any, walk: Scanner) -> None:
        self.target.apply(value, walk)


class ObjectPlan(Plan):
    __slots__ = ("_entries", "drop", "extra", "freeform", "patterns", "props")

    def __init__(
        self,
        props: dict[str, Plan],
        extra: Plan | None,
        patterns: tuple[tuple[jsonschema_rs.Validator, Plan], ...] = (),
        drop: frozenset[str] = frozenset(),
        freeform: bool = False,
    ) -> None:
        self.props = props
        self.extra = extra
        self.patterns = patterns
        self.drop = drop
        self.freeform = freeform
        # Hot path: declared, kept names with their plan and name sensitivity precomputed.
        self._entries = {
            name: (plan, name_is_sensitive(name))
            for name, plan in props.items()
            if name not in drop
        }

    def _undeclared(self, key: str) -> Plan | None:
        if key in self.drop:
            return None
        for validator, pattern_plan in self.patterns:
            if validator.is_valid(key):
                return pattern_plan
        return self.extra

    def apply(self, value: Any, walk: Scanner) -> None:
        if type(value) is not dict:
            walk.scan(value, False)
            return
        entries = self._entries
        path = walk.path
        doomed: list[str] | None = None
        for key, item in value.items():
            entry = entries.get(key)
            if entry is None:
                plan = self._undeclared(key)
                if plan is None:
                    if doomed is None:
                        doomed = []
                    doomed.append(key)
                    path.append(key)
                    walk.removed.append(walk.pointer())
                    walk.check_name(key, True)
                    walk.scan(item, True)
                    path.pop()
                    continue
                sensitive = name_is_sensitive(key)
            else:
                plan, sensitive = entry
            kind = type(item)
            if kind is str:
                if sensitive or (len(item) >= 13 and value_kind(item)):
                    path.append(key)
                    walk.check_leaf(item, sensitive)
                    path.pop()
            elif kind is dict or kind is list:
                path.append(key)
                if sensitive:
                    walk.add("field_name", False)
                plan.apply(item, walk)
                path.pop()
            elif sensitive:
                path.append(key)
                walk.add("field_name", False)
                path.pop()
        if doomed:
            for key in doomed:
                del value[key]


class ArrayPlan(Plan):
    __slots__ = ("items", "prefix")

    def __init__(self, items: Plan, prefix: tuple[Plan, ...] = ()) -> None:
        self.items = items
        self.prefix = prefix

    def apply(self, value: Any, walk: Scanner) -> None:
        if type(value) is not list:
            walk.scan(value, False)
            return
        path = walk.path
        prefix = self.prefix
        items = self.items
        for index, item in enumerate(value):
            kind = type(item)
            if kind is dict or kind is list:
                path.append(index)
                (prefix[index] if index < len(prefix) else items).apply(item, walk)
                path.pop()
            elif kind is str and len(item) >= 13 and value_kind(item):
                path.append(index)
                walk.check_leaf(item, False)
                path.pop()


class DispatchPlan(Plan):
    """A schema admitting both objects and arrays."""

    __slots__ = ("array", "object")

    def __init__(self, obj: Plan, array: Plan) -> None:
        self.object = obj
        self.array = array

    def apply(self, value: Any, walk: Scanner) -> None:
        (self.array if isinstance(value, list) else self.object).apply(value, walk)


class UnionPlan(Plan):
    """oneOf/anyOf: merge the plans of the branches the value validates against."""

    __slots__ = ("base", "branches", "cache")

    def __init__(self, base: Plan, branches: tuple[tuple[jsonschema_rs.Validator, Plan], ...]):
        self.base = base
        self.branches = branches
        self.cache: dict[tuple[int, ...], Plan] = {}

    def apply(self, value: Any, walk: Scanner) -> None:
        if not isinstance(value, dict | list):
            walk.scan(value, False)
            return
        chosen = tuple(i for i, (v, _) in enumerate(self.branches) if v.is_valid(value))
        if not chosen:
            chosen = tuple(range(len(self.branches)))
        plan = self.cache.get(chosen)
        if plan is None:
            plans = [self.base, *(self.branches[i][1] for i in chosen)]
            plan = self.cache[chosen] = merge(plans, intersect=False)
        plan.apply(value, walk)


def _deref(plan: Plan) -> Plan:
    seen = 0
    while isinstance(plan, RefPlan) and seen < 64:
        plan, seen = plan.target, seen + 1
    return plan


def merge(plans: list[Plan], *, intersect: bool) -> Plan:
    """Combine plans: ``intersect`` for allOf, otherwise the union of oneOf/anyOf branches."""
    concrete = [p for p in (_deref(p) for p in plans) if p is not LEAF]
    unions = [p for p in concrete if isinstance(p, UnionPlan)]
    if unions:
        rest = [p for p in concrete if p is not unions[0]]
        for extra in unions[1:]:
            rest.remove(extra)
            rest.append(merge([extra.base, *(b for _, b in extra.branches)], intersect=False))
        return UnionPlan(merge([unions[0].base, *rest], intersect=intersect), unions[0].branches)
    if not concrete:
        return LEAF
    if len(concrete) == 1:
        return concrete[0]
    objects = [p for p in concrete if isinstance(p, ObjectPlan)]
    arrays = [p for p in concrete if isinstance(p, ArrayPlan)]
    dispatch = [p for p in concrete if isinstance(p, DispatchPlan)]
    objects += [p.object for p in dispatch if isinstance(p.object, ObjectPlan)]
    arrays += [p.array for p in dispatch if isinstance(p.array, ArrayPlan)]
    merged_object = _merge_objects(objects, intersect) if objects else None
    merged_array = (
        ArrayPlan(merge([a.items for a in arrays], intersect=intersect), arrays[0].prefix)
        if arrays
        else None
    )
    if merged_object and merged_array:
        return DispatchPlan(merged_object, merged_array)
    return merged_object or merged_array or concrete[0]


def _merge_objects(objects: list[ObjectPlan], intersect: bool) -> Plan:
    if intersect and any(not o.freeform for o in objects):
        objects = [o for o in objects if not o.freeform]
    if len(objects) == 1:
        return objects[0]
    names: dict[str, list[Plan]] = {}
    for obj in objects:
        for name, plan in obj.props.items():
            names.setdefault(name, []).append(plan)
    extras = [o.extra for o in objects if o.extra is not None]
    return ObjectPlan(
        props={name: merge(plans, intersect=intersect) for name, plans in names.items()},
        extra=merge(extras, intersect=intersect) if extras else None,
        patterns=tuple(p for o in objects for p in o.patterns),
        drop=frozenset().union(*(o.drop for o in objects)),
        freeform=all(o.freeform for o in objects),
    )


class PlanBuilder:
    """Builds plans for one operation's responses (shares ``$ref`` plans between them)."""

    def __init__(self, document: Mapping[str, Any], compiler: SchemaCompiler) -> None:
        self.document = document
        self.compiler = compiler
        self._refs: dict[str, RefPlan] = {}

    def build(self, schema: Any) -> Plan:
        if not isinstance(schema, Mapping):
            return LEAF
        ref = schema.get("$ref")
        if isinstance(ref, str):
            plan = self._ref(ref)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if siblings and any(k in siblings for k in _STRUCTURAL):
                return merge([plan, self.build(siblings)], intersect=True)
            return plan
        for key in ("allOf",):
            if isinstance(schema.get(key), list):
                own = {k: v for k, v in schema.items() if k != key}
                return merge(
                    [self.build(own), *(self.build(b) for b in schema[key])], intersect=True
                )
        branches = [*(schema.get("oneOf") or ()), *(schema.get("anyOf") or ())]
        if branches:
            own = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
            compiled = tuple((self.compiler.validator_for(b), self.build(b)) for b in branches)
            return UnionPlan(self.build(own), compiled)
        declared = schema.get("type")
        types = {declared} if isinstance(declared, str) else set(declared or ())
        is_object = "object" in types or any(
            k in schema for k in ("properties", "additionalProperties", "patternProperties")
        )
        is_array = "array" in types or "items" in schema or "prefixItems" in schema
        obj = self._object(schema) if is_object else None
        arr = self._array(schema) if is_array else None
        if obj and arr:
            return DispatchPlan(obj, arr)
        return obj or arr or LEAF

    def _ref(self, ref: str) -> Plan:
        target, pointer = resolve_local(self.document, {"$ref": ref})
        assert pointer is not None
        if pointer not in self._refs:
            holder = self._refs[pointer] = RefPlan()
            holder.target = self.build(target)
        return self._refs[pointer]

    def _object(self, schema: Mapping[str, Any]) -> ObjectPlan:
        properties = schema.get("properties") or {}
        drop = set()
        props: dict[str, Plan] = {}
        for name, sub in properties.items():
            resolved, _ = resolve_local(self.document, sub)
            if (isinstance(sub, Mapping) and sub.get("writeOnly") is True) or (
                isinstance(resolved, Mapping) and resolved.get("writeOnly") is True
            ):
                drop.add(name)
            props[name] = self.build(sub)
        patterns = tuple(
            (compile_validator({"type": "string", "pattern": p}), self.build(s))
            for p, s in (schema.get("patternProperties") or {}).items()
        )
        extra_schema = schema.get("additionalProperties")
        declared = bool(properties) or bool(patterns)
        extra: Plan | None
        if extra_schema is True or (extra_schema is None and not declared):
            extra = LEAF
        elif isinstance(extra_schema, Mapping):
            extra = self.build(extra_schema)
        else:
            extra = None
        freeform = extra_schema is None and not declared
        return ObjectPlan(props, extra, patterns, frozenset(drop), freeform)

    def _array(self, schema: Mapping[str, Any]) -> ArrayPlan:
        items = schema.get("items")
        prefix = tuple(self.build(s) for s in schema.get("prefixItems") or ())
        return ArrayPlan(self.build(items) if isinstance(items, Mapping) else LEAF, prefix)


_STRUCTURAL = (
    "properties",
    "additionalProperties",
    "patternProperties",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
)
