"""Response projection: keep only what the response schema declares.

A projection plan is built once per (operation, status, media type) from the OpenAPI schema
and applied per response in one walk over the parsed JSON (:meth:`Plan.project`):

* objects keep declared ``properties`` (and keys matching ``patternProperties``); other keys
  are removed unless ``additionalProperties`` is ``true`` or a schema (then projected with
  it). An object schema with neither ``properties`` nor ``additionalProperties`` is a
  free-form map and kept whole. ``writeOnly`` properties are always removed.
* arrays project each item (``items``; ``prefixItems`` by position).
* ``allOf``: the branches merge (union of their properties; a free-form branch does not open
  an object that another branch describes).
* ``if`` / ``then`` / ``else``: what ``then`` declares is kept where ``if`` validates, what
  ``else`` declares where it does not (two branches chosen like those of a union).
* ``oneOf`` / ``anyOf``: the properties kept are the union of the branches the value
  *validates against* (jsonschema-rs validators compiled at load); when none validates,
  the union of all branches (the response then fails validation anyway).
* ``$ref`` cycles become plan cycles; primitive schemas keep the value.

The walk only decides: it records the keys to remove (:class:`Projection`, applied by
:meth:`Projection.commit`, so the document can still be scanned as it came) and checks the
object keys it passes against the sensitive names (string values are checked on the raw
bytes; see :mod:`bastion.contract.responses`). Responses repeat their objects' shapes, so an
object plan remembers, per key order it has seen, what such an object needs: which keys go,
which values to enter and with which plan, and whether a key is a sensitive name. An object
whose declared values are all primitives then costs one lookup; a property whose schema
admits only primitives (:data:`PRIMITIVE`) is never entered, and a subtree whose plan
removes nothing only has its keys checked. Removals are reported in document order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema_rs

from bastion.contract.schema import (
    SchemaCompiler,
    compile_validator,
    resolve_local,
    schema_flag,
)
from bastion.contract.sensitive import (
    MAX_POINTER_CHARS,
    cut_pointer,
    keys_are_harmless,
    pointer_token,
)

__all__ = [
    "LEAF",
    "MAX_POINTERS",
    "PRIMITIVE",
    "Plan",
    "PlanBuilder",
    "Projection",
]


class Projection:
    """What one :meth:`Plan.project` walk found: removals (applied by :meth:`commit`) and
    whether it passed a sensitive key name."""

    __slots__ = ("doomed", "flagged", "removed", "unions_open")

    def __init__(self) -> None:
        #: Pointers of the keys to remove, in document order (the first MAX_POINTERS).
        self.removed: list[str] = []
        #: The keys to remove, as (object, key).
        self.doomed: list[tuple[dict[str, Any], str]] = []
        #: True once an object key the walk passed (kept or removed) is a sensitive name.
        self.flagged = False
        #: oneOf/anyOf choices open around the current position (see MAX_UNION_NESTING).
        self.unions_open = 0

    def commit(self) -> None:
        for owner, key in self.doomed:
            del owner[key]
        self.doomed.clear()

    def collect(self, value: Any) -> None:
        """Check the keys of a subtree the plan says nothing about (kept or removed whole)."""
        if self.flagged:
            return
        stack: list[Any] | None = None  # most such subtrees are one flat object
        node = value
        while True:
            if type(node) is dict:
                if not keys_are_harmless(tuple(node)):
                    self.flagged = True
                    return
                children: Any = node.values()
            else:
                children = node
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    if stack is None:
                        stack = [child]
                    else:
                        stack.append(child)
            if not stack:
                return
            node = stack.pop()


_CONTAINERS = (dict, list)
_TOKENS: dict[str, str] = {}


def _token(key: str) -> str:
    """``/`` and the pointer token of a key (cached: responses repeat their keys)."""
    token = _TOKENS.get(key)
    if token is None:
        token = "/" + pointer_token(key)
        if len(_TOKENS) < 4096 and len(key) <= CACHED_KEY_CHARS:
            _TOKENS[key] = token
    return token


#: Removals named (the first ones, in document order; each pointer cut by
#: :func:`~bastion.contract.sensitive.cut_pointer`): an answer of long keys nested deep must
#: not turn into gigabytes of pointers.
MAX_POINTERS = 1_000
#: oneOf/anyOf branches are chosen by validating the value, which reads its whole subtree;
#: inside this many open choices, nested ones keep what any branch declares instead.
MAX_UNION_NESTING = 8


class Plan:
    """Keeps a value whole; subclasses describe objects and arrays, whose keys may go."""

    __slots__ = ()

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        """Record what the schema does not declare (see the module docstring)."""
        if type(value) in _CONTAINERS:
            out.collect(value)

    def removes_nothing(self, seen: frozenset[int] = frozenset()) -> bool:
        """True when no value can lose a key to this plan (it keeps everything).

        ``seen`` holds the plans being asked on the way here: a cycle answers False
        (conservative). Object and array plans remember their answer, so shared subplans
        are asked once (a schema whose objects each refer twice to the next would
        otherwise cost 2^depth): a True never met a cycle and a False is always safe.
        """
        return True


class _PrimitivePlan(Plan):
    """A schema that admits only strings, numbers, booleans or null: nothing to project."""

    __slots__ = ()

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        return None


#: Any value kept whole (``{}``, ``true``, a schema without structure).
LEAF = Plan()
#: Only primitives are valid: a valid value holds no keys, so :meth:`Plan.project` skips it.
PRIMITIVE = _PrimitivePlan()
_KEEP_WHOLE = (LEAF, PRIMITIVE)
_PRIMITIVE_TYPES = frozenset({"string", "number", "integer", "boolean", "null"})


class RefPlan(Plan):
    __slots__ = ("built", "target")

    def __init__(self) -> None:
        self.target: Plan = LEAF
        #: False while the target is being built (a $ref cycle reaching back here).
        self.built = False

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        self.target.project(value, prefix, out)

    def removes_nothing(self, seen: frozenset[int] = frozenset()) -> bool:
        # A cycle is taken to remove something: conservative, and cycles are rare.
        return id(self) not in seen and self.target.removes_nothing(seen | {id(self)})


#: What an object of one key order needs: whether a key is a sensitive name, and the steps
#: (key, pointer token, plan to project its value with, or None to remove it), in key order.
_Shape = tuple[bool, tuple[tuple[str, str, "Plan | None"], ...]]
#: Key orders remembered per object plan (then forgotten all at once and learnt again), and
#: the longest one remembered: upstream answers may invent keys (maps keyed by ids).
SHAPES_PER_PLAN = 64
SHAPE_MAX_KEYS = 64
SHAPE_MAX_CHARS = 4_096
#: Longest key whose pointer token is remembered (the caches are bounded in bytes too).
CACHED_KEY_CHARS = 256


class ObjectPlan(Plan):
    __slots__ = ("_keeps_all", "_shapes", "drop", "extra", "freeform", "patterns", "props")

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
        self._keeps_all: bool | None = None  # removes_nothing(), once known
        # What each key order seen needs (see _Shape); learnt on first use, when every
        # $ref plan has its target.
        self._shapes: dict[tuple[str, ...], _Shape] = {}

    def removes_nothing(self, seen: frozenset[int] = frozenset()) -> bool:
        if self._keeps_all is not None:
            return self._keeps_all
        if id(self) in seen:
            return False
        if self.extra is None or self.drop:
            answer = False
        else:
            inner = seen | {id(self)}
            plans = [self.extra, *self.props.values(), *(plan for _, plan in self.patterns)]
            answer = all(plan.removes_nothing(inner) for plan in plans)
        self._keeps_all = answer
        return answer

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        if type(value) is not dict:
            if type(value) is list:
                out.collect(value)
            return
        obj: dict[str, Any] = value  # typed: compiled, the lookups below are dict lookups
        keys = tuple(obj)
        shape = self._shapes.get(keys)
        if shape is None:
            shape = self._learn(keys)
        flagged, steps = shape
        if flagged:
            out.flagged = True
        for key, token, plan in steps:
            item = obj[key]
            kind = type(item)
            if plan is None:
                out.doomed.append((obj, key))
                if len(out.removed) < MAX_POINTERS:
                    pointer = prefix + token
                    if len(pointer) > MAX_POINTER_CHARS:
                        pointer = cut_pointer(pointer)
                    out.removed.append(pointer)
                if kind is dict or kind is list:
                    out.collect(item)
            elif kind is dict or kind is list:
                if plan is LEAF:
                    out.collect(item)
                else:
                    pointer = prefix + token
                    if len(pointer) > MAX_POINTER_CHARS:
                        pointer = cut_pointer(pointer)
                    plan.project(item, pointer, out)

    def _learn(self, keys: tuple[str, ...]) -> _Shape:
        """The steps for objects with these keys in this order (remembered when short)."""
        steps: list[tuple[str, str, Plan | None]] = []
        for key in keys:
            plan = self.props.get(key) if key not in self.drop else None
            if plan is None:
                plan = self._undeclared(key)
            if plan is not None:
                plan = _settled(plan)
                if plan is PRIMITIVE:
                    continue  # a valid value holds no keys
                if plan.removes_nothing():
                    plan = LEAF  # only its keys are checked
            steps.append((key, _token(key), plan))
        shape = (not keys_are_harmless(keys), tuple(steps))
        if len(keys) <= SHAPE_MAX_KEYS and sum(map(len, keys)) <= SHAPE_MAX_CHARS:
            if len(self._shapes) >= SHAPES_PER_PLAN:
                self._shapes.clear()
            self._shapes[keys] = shape
        return shape

    def _undeclared(self, key: str) -> Plan | None:
        if key in self.drop:
            return None
        for validator, pattern_plan in self.patterns:
            if validator.is_valid(key):
                return pattern_plan
        return self.extra


class ArrayPlan(Plan):
    __slots__ = ("_items", "_keeps_all", "items", "prefix")

    def __init__(self, items: Plan, prefix: tuple[Plan, ...] = ()) -> None:
        self.items = items
        self.prefix = prefix
        self._keeps_all: bool | None = None
        self._items: Plan | None = None  # items without its $ref layers, on first use

    def removes_nothing(self, seen: frozenset[int] = frozenset()) -> bool:
        if self._keeps_all is not None:
            return self._keeps_all
        if id(self) in seen:
            return False
        inner = seen | {id(self)}
        answer = all(plan.removes_nothing(inner) for plan in (self.items, *self.prefix))
        self._keeps_all = answer
        return answer

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        if type(value) is not list:
            if type(value) is dict:
                out.collect(value)
            return
        positional = self.prefix
        items = self._items
        if items is None:
            items = self._items = _settled(self.items)
        if not positional:
            if items is PRIMITIVE:
                return
            cut = len(prefix) > MAX_POINTER_CHARS - 24  # room for "/" and any index
            array: list[Any] = value
            for index in range(len(array)):
                item = array[index]
                kind = type(item)
                if kind is dict or kind is list:
                    pointer = f"{prefix}/{index}"
                    items.project(item, cut_pointer(pointer) if cut else pointer, out)
            return
        for index, item in enumerate(value):
            if type(item) in _CONTAINERS:
                plan = positional[index] if index < len(positional) else items
                plan.project(item, cut_pointer(f"{prefix}/{index}"), out)


class DispatchPlan(Plan):
    """A schema admitting both objects and arrays."""

    __slots__ = ("array", "object")

    def __init__(self, obj: Plan, array: Plan) -> None:
        self.object = obj
        self.array = array

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        (self.array if isinstance(value, list) else self.object).project(value, prefix, out)

    def removes_nothing(self, seen: frozenset[int] = frozenset()) -> bool:
        return self.object.removes_nothing(seen) and self.array.removes_nothing(seen)


class UnionPlan(Plan):
    """oneOf/anyOf: merge the plans of the branches the value validates against."""

    __slots__ = ("base", "branches", "cache")

    def __init__(self, base: Plan, branches: tuple[tuple[jsonschema_rs.Validator, Plan], ...]):
        self.base = base
        self.branches = branches
        self.cache: dict[tuple[int, ...], Plan] = {}

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        if not isinstance(value, dict | list):
            return
        if out.unions_open >= MAX_UNION_NESTING:
            # Each open union validated the whole subtree already: choosing again at every
            # level of a recursive union cost size x depth (1 MB at depth 200: 5 s). Deeper
            # down, what any branch declares is kept (as when no branch validates); the
            # validation of the whole answer still applies the schema.
            self._merged(tuple(range(len(self.branches)))).project(value, prefix, out)
            return
        out.unions_open += 1
        try:
            self._plan_for(value).project(value, prefix, out)
        finally:
            out.unions_open -= 1

    def removes_nothing(self, seen: frozenset[int] = frozenset()) -> bool:
        return False

    def _plan_for(self, value: Any) -> Plan:
        chosen = tuple(i for i, (v, _) in enumerate(self.branches) if v.is_valid(value))
        return self._merged(chosen or tuple(range(len(self.branches))))

    def _merged(self, chosen: tuple[int, ...]) -> Plan:
        plan = self.cache.get(chosen)
        if plan is None:
            plans = [self.base, *(self.branches[i][1] for i in chosen)]
            plan = self.cache[chosen] = merge(plans, intersect=False)
        return plan


def _deref(plan: Plan) -> Plan:
    seen = 0
    while isinstance(plan, RefPlan) and seen < 64:
        plan, seen = plan.target, seen + 1
    return plan


class _LazyMerge(Plan):
    """A merge of plans one of which was still being built (a ``$ref`` cycle through
    ``allOf``: ``manager: {allOf: [{$ref: Employee}]}`` inside Employee), done on first use,
    when every plan is built. Merging the unbuilt placeholder kept the whole subtree."""

    __slots__ = ("_plan", "intersect", "plans")

    def __init__(self, plans: list[Plan], intersect: bool) -> None:
        self.plans = plans
        self.intersect = intersect
        self._plan: Plan | None = None

    def resolve(self) -> Plan:
        if self._plan is None:
            self._plan = LEAF  # a schema that is its own allOf branch: kept whole
            self._plan = merge(self.plans, intersect=self.intersect)
        return self._plan

    def project(self, value: Any, prefix: str, out: Projection) -> None:
        self.resolve().project(value, prefix, out)

    def removes_nothing(self, seen: frozenset[int] = frozenset()) -> bool:
        return self.resolve().removes_nothing(seen)


def _pending(plan: Plan, depth: int = 0) -> bool:
    """True while ``plan`` leads to a $ref plan still being built."""
    while isinstance(plan, RefPlan) and depth < 64:
        if not plan.built:
            return True
        plan, depth = plan.target, depth + 1
    if isinstance(plan, _LazyMerge) and plan._plan is None and depth < 64:
        return any(_pending(p, depth + 1) for p in plan.plans)
    return False


def _settled(plan: Plan) -> Plan:
    """``plan`` without its $ref layers and lazy merges (every plan built)."""
    for _ in range(64):
        plan = _deref(plan)
        if not isinstance(plan, _LazyMerge):
            return plan
        plan = plan.resolve()
    return plan


def merge(plans: list[Plan], *, intersect: bool) -> Plan:
    """Combine plans: ``intersect`` for allOf, otherwise the union of oneOf/anyOf branches."""
    if any(_pending(p) for p in plans):
        return _LazyMerge(plans, intersect)
    resolved = [_settled(p) for p in plans]
    concrete = [p for p in resolved if p not in _KEEP_WHOLE]
    # Each union once: the same one reached twice (branches referring to one schema) merges
    # like once.
    unions = list({id(p): p for p in concrete if isinstance(p, UnionPlan)}.values())
    if unions:
        rest = [p for p in concrete if not isinstance(p, UnionPlan)]
        for extra in unions[1:]:
            rest.append(merge([extra.base, *(b for _, b in extra.branches)], intersect=False))
        return UnionPlan(merge([unions[0].base, *rest], intersect=intersect), unions[0].branches)
    if not concrete:
        # allOf with a primitive-only branch, or anyOf/oneOf of primitive-only branches.
        primitive = (any if intersect else all)(p is PRIMITIVE for p in resolved)
        return PRIMITIVE if resolved and primitive else LEAF
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
        if "if" in schema and any(isinstance(schema.get(k), Mapping) for k in ("then", "else")):
            # What ``then`` or ``else`` declares is kept where it applies: a union of two
            # branches, chosen by validating ``if`` and its negation.
            condition = schema["if"]
            own = {k: v for k, v in schema.items() if k not in ("if", "then", "else")}
            conditional = (
                (self.compiler.validator_for(condition), self.build(schema.get("then", {}))),
                (
                    self.compiler.validator_for({"not": condition}),
                    self.build(schema.get("else", {})),
                ),
            )
            return UnionPlan(self.build(own), conditional)
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
        if obj is not None:
            return obj
        if arr is not None:
            return arr
        # ``type`` applies whatever else the schema says: a valid value is a primitive.
        return PRIMITIVE if types and types <= _PRIMITIVE_TYPES else LEAF

    def _ref(self, ref: str) -> Plan:
        target, pointer = resolve_local(self.document, {"$ref": ref})
        assert pointer is not None
        if pointer not in self._refs:
            holder = self._refs[pointer] = RefPlan()
            holder.target = self.build(target)
            holder.built = True
        return self._refs[pointer]

    def _object(self, schema: Mapping[str, Any]) -> ObjectPlan:
        properties = schema.get("properties") or {}
        drop = set()
        props: dict[str, Plan] = {}
        for name, sub in properties.items():
            if schema_flag(self.document, sub, "writeOnly"):
                drop.add(name)
            props[name] = self.build(sub)
        patterns = tuple(
            (compile_validator({"type": "string", "pattern": p}), self.build(s))
            for p, s in (schema.get("patternProperties") or {}).items()
        )
        extra_schema = schema.get("additionalProperties")
        # As on the request side: an empty "properties" still declares the object closed.
        declared = "properties" in schema or "patternProperties" in schema
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
