"""Loading specs: 3.0/3.1, YAML/JSON, multi-file $refs, validation errors, overlays."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.contract import ContractLimits, compile_operation, load_spec
from bastion.contract.documents import _json_lines, escape_pointer, unescape_pointer
from bastion.errors import ConfigError, ValidationFailed
from tests.contract.contract_helpers import JSON, PETS, SHOP, contract, minimal, write_spec

OK = {"200": {"description": "ok"}}
_JSON_DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


def _yaml_spec(tmp_path: Path, name: str, rest: str) -> Path:
    """A YAML spec file: the openapi and info lines, then ``rest``."""
    path = tmp_path / name
    path.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\n" + rest)
    return path


def _refusal(spec: Path, match: str, overlay: Path | None = None) -> str:
    """The location of the ConfigError ``load_spec`` raises (its message matching)."""
    with pytest.raises(ConfigError, match=match) as info:
        load_spec(spec, overlay=overlay)
    return info.value.location


def test_openapi_30_yaml_with_multi_file_refs_is_loaded() -> None:
    spec = load_spec(SHOP)
    assert spec.version == "3.0"
    assert spec.title == "Shop API"
    assert spec.servers == ("https://api.example.com/v1",)
    ops = {(op.method, op.path): op for op in spec.operations}
    assert set(ops) == {
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", "/users/{user_id}"),
        ("PATCH", "/users/{user_id}"),
        ("GET", "/orders/{order_id}"),
        ("GET", "/categories"),
    }
    create = ops[("POST", "/users")]
    assert create.operation_id == "createUser"
    assert create.security is None  # inherits the root requirement
    assert spec.security == ({"bearer": ()},)
    assert ops[("GET", "/orders/{order_id}")].security == ()  # explicitly public
    assert dict(create.extensions) == {
        "x-bastion-roles": ["admin"],
        "x-bastion-rate-limit": "10/minute",
    }
    assert ops[("PATCH", "/users/{user_id}")].deprecated is True
    assert spec.security_schemes["bearer"]["scheme"] == "bearer"


def test_schema_from_another_file_is_enforced() -> None:
    patch = contract(SHOP, "PATCH", "/users/{user_id}")
    with pytest.raises(ValidationFailed) as info:
        patch.validate_request(
            path_params={"user_id": "123e4567-e89b-12d3-a456-426614174000"},
            query_string=b"",
            headers=JSON,
            body=b'{"name": "A", "address": {"city": "Paris", "country": "FRA"}}',
        )
    assert info.value.extensions["errors"] == [
        {"pointer": "/body/address/country", "detail": "must be at most 2 characters long"}
    ]


def test_recursive_schema_in_another_file_is_projected_at_every_level() -> None:
    tree = contract(SHOP, "GET", "/categories")
    body = {"name": "a", "x": 1, "children": [{"name": "b", "children": [{"name": "c", "y": 2}]}]}
    out = tree.filter_response(200, "application/json", json.dumps(body).encode())
    assert json.loads(out.body) == {
        "name": "a",
        "children": [{"name": "b", "children": [{"name": "c"}]}],
    }
    assert out.removed == ("/x", "/children/0/children/0/y")


@pytest.mark.parametrize("layout", ["no components", "components first"])
def test_schemas_of_other_files_that_refer_back_are_hoisted_whatever_the_roots_layout(
    tmp_path: Path, layout: str
) -> None:
    """a.yaml and b.yaml refer to each other; the root's `components` may be absent or
    come before `paths` (JSON written with sorted keys): the cycle still loads and works."""
    (tmp_path / "a.yaml").write_text(
        "Node:\n  type: object\n  properties:\n    child: {$ref: 'b.yaml#/Leaf'}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "Leaf:\n  type: object\n  properties:\n    parent: {$ref: 'a.yaml#/Node'}\n"
    )
    root: dict[str, object] = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}}
    if layout == "components first":
        root["components"] = {"schemas": {"Other": {"type": "string"}}}
    root["paths"] = {
        "/a": {
            "get": {
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": {"$ref": "a.yaml#/Node"}}},
                    }
                }
            }
        }
    }
    (tmp_path / "root.json").write_text(json.dumps(root))
    spec = load_spec(tmp_path / "root.json")
    op = compile_operation(spec, spec.operations[0], ContractLimits())
    body = {"child": {"parent": {"child": {"x": 1}, "y": 2}, "z": 3}}
    out = op.filter_response(200, "application/json", json.dumps(body).encode())
    assert json.loads(out.body) == {"child": {"parent": {"child": {}}}}


def test_openapi_31_json_is_loaded_and_enforced() -> None:
    spec = load_spec(PETS)
    assert spec.version == "3.1"
    create = compile_operation(spec, spec.operation("POST", "/pets"), ContractLimits())
    ok = create.validate_request(
        path_params={},
        query_string=b"",
        headers=JSON,
        body=b'{"name": "Rex", "kind": "dog", "tag": null, "position": [1, 2.5]}',
    )
    assert ok.body["tag"] is None
    with pytest.raises(ValidationFailed) as info:
        create.validate_request(
            path_params={}, query_string=b"", headers=JSON, body=b'{"name": "Rex", "kind": "cow"}'
        )
    assert info.value.extensions["errors"] == [
        {"pointer": "/body/kind", "detail": "is not one of the allowed values"}
    ]


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        (
            "api.json",
            '{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},'
            ' "paths": {"/a\\ud800b": {"get": {"responses": {"200": {"description": "ok"}}}}}}',
            ": /paths/~1a?b (line 1)",  # the pointer stays printable
        ),
        (
            "api.yaml",
            'openapi: 3.0.3\ninfo: {title: t, version: "1"}\npaths:\n  /a:\n    get:\n'
            '      summary: "x\\udfffy"\n      responses: {"200": {description: ok}}\n',
            ": /paths/~1a/get/summary (line 6)",
        ),
    ],
)
def test_a_lone_surrogate_in_a_spec_is_a_config_error_naming_where(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    """An unpaired UTF-16 surrogate escape cannot be encoded: it crashed startup with a
    UnicodeEncodeError traceback instead of naming the file and the key."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert "unpaired UTF-16 surrogate" in str(info.value)
    assert info.value.location == f"{path}{where}"
    str(info.value).encode("utf-8")  # the message itself can be printed


def test_invalid_spec_names_file_and_pointer(tmp_path: Path) -> None:
    doc = minimal(
        {
            "/a": {
                "get": {
                    "responses": {"200": {"description": "ok"}},
                    "parameters": [{"name": "q", "in": "qurey", "schema": {"type": "string"}}],
                }
            }
        }
    )
    path = write_spec(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert info.value.location is not None
    assert info.value.location.startswith(str(path))
    assert "/paths/~1a/get/parameters/0" in info.value.location
    bad_line = path.read_text().splitlines().index("        in: qurey") + 1
    assert (
        info.value.location == f"{path.resolve()}: /paths/~1a/get/parameters/0/in (line {bad_line})"
    )


def test_error_inside_a_referenced_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "schemas.yaml").write_text(
        "components:\n  schemas:\n    Thing:\n      type: object\n      properties:\n"
        "        size: {type: integer, minimum: 'zero'}\n"
    )
    doc = minimal(
        {
            "/a": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "schemas.yaml#/components/schemas/Thing"}
                                }
                            },
                        }
                    }
                }
            }
        }
    )
    write_spec(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_spec(tmp_path / "api.yaml")
    location = info.value.location or ""
    assert location.startswith(str((tmp_path / "schemas.yaml").resolve()))
    assert "/components/schemas/Thing/properties/size" in location
    assert location.endswith("(line 6)")


def test_missing_ref_target_and_remote_ref_are_refused(tmp_path: Path) -> None:
    remote = minimal(
        {"/a": {"get": {"responses": {"200": {"$ref": "https://evil.example/r.yaml"}}}}}
    )
    with pytest.raises(ConfigError, match="remote"):
        load_spec(write_spec(tmp_path, remote))
    missing = minimal({"/a": {"get": {"responses": {"200": {"$ref": "nope.yaml#/x"}}}}})
    with pytest.raises(ConfigError, match="not found"):
        load_spec(write_spec(tmp_path, missing, "b.yaml"))


_OK_A = {
    "description": "ok",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}},
}


@pytest.mark.parametrize(
    ("components", "paths", "expected"),
    [
        # a misspelt local reference: a traceback printing the whole spec before
        (
            {},
            {"/a": {"get": {"responses": {"200": {"$ref": "#/components/responses/Nope"}}}}},
            "#/components/responses/Nope does not exist",
        ),
        # schemas that only refer to each other: RecursionError before
        (
            {
                "schemas": {
                    "A": {"$ref": "#/components/schemas/B"},
                    "B": {"$ref": "#/components/schemas/A"},
                }
            },
            {"/a": {"get": {"responses": {"200": _OK_A}}}},
            "$ref cycle",
        ),
        # path items that refer to each other
        ({}, {"/a": {"$ref": "#/paths/~1b"}, "/b": {"$ref": "#/paths/~1a"}}, "$ref cycle"),
    ],
)
def test_broken_local_refs_are_config_errors_naming_where(
    tmp_path: Path, components: dict[str, object], paths: dict[str, object], expected: str
) -> None:
    document = minimal(paths)
    if components:
        document["components"] = components
    with pytest.raises(ConfigError) as info:
        load_spec(write_spec(tmp_path, document))
    assert expected in str(info.value)
    assert "/$ref" in str(info.value.location)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """447 bytes, 10^7 nodes once expanded: 21 s and 2 GB before; now a config error."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        levels.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    bomb = _yaml_spec(
        tmp_path, "bomb.yaml", "paths: {}\nx-bomb:\n" + "".join(f"  {line}\n" for line in levels)
    )
    with pytest.raises(ConfigError, match="too large"):
        load_spec(bomb)
    # aliases as such are fine
    few = _yaml_spec(
        tmp_path,
        "few.yaml",
        "x-common: &ok {description: ok}\npaths:\n  /a:\n    get:\n      responses: {'200': *ok}\n",
    )
    assert len(load_spec(few).operations) == 1


def test_yaml_keys_are_duplicates_by_what_the_document_holds(tmp_path: Path) -> None:
    """`200:` and `'200':` are one key once read (the later one silently won: a strict
    schema lost); a merge key's local override is YAML's own rule, not a duplicate."""
    spec = _yaml_spec(
        tmp_path,
        "dup.yaml",
        "paths:\n  /a:\n    get:\n"
        "      responses:\n        200: {description: strict}\n"
        "        '200': {description: loose}\n",
    )
    with pytest.raises(ConfigError, match="duplicate key '200' at line 8"):
        load_spec(spec)
    merged = _yaml_spec(
        tmp_path,
        "merged.yaml",
        ""
        "x-base: &base {type: string, maxLength: 10}\n"
        "paths:\n  /a:\n    get:\n      parameters:\n"
        "        - {name: q, in: query, schema: {<<: *base, maxLength: 5}}\n"
        "      responses: {'200': {description: ok}}\n",
    )
    loaded = load_spec(merged)
    assert loaded.raw["paths"]["/a"]["get"]["parameters"][0]["schema"] == {
        "type": "string",
        "maxLength": 5,
    }


def test_yaml_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    spec = _yaml_spec(tmp_path, "deep.yaml", "paths: {}\nx-deep: " + "[" * 5000 + "]" * 5000 + "\n")
    assert _refusal(spec, "nested too deeply") == str(spec)


def test_operation_mistakes_name_the_operation_and_line(tmp_path: Path) -> None:
    """The validator reported these at '/ (line 1)'."""
    undeclared = _yaml_spec(
        tmp_path,
        "undeclared.yaml",
        "paths:\n  /a/{id}:\n    get:\n      responses: {'200': {description: ok}}\n",
    )
    with pytest.raises(ConfigError, match=r"path parameter 'id' of /a/\{id\} is not declared"):
        load_spec(undeclared)
    twice = _yaml_spec(
        tmp_path,
        "twice.yaml",
        "paths:\n  /b:\n"
        "    get: {operationId: x, responses: {'200': {description: ok}}}\n"
        "    post: {operationId: x, responses: {'200': {description: ok}}}\n",
    )
    where = f"{twice.resolve()}: /paths/~1b/post/operationId (line 6)"
    assert _refusal(twice, "operationId 'x' is also the one of GET /b") == where
    # a path item's parameters count
    declared_on_the_item = _yaml_spec(
        tmp_path,
        "item.yaml",
        "paths:\n  /a/{id}:\n"
        "    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n"
        "    get: {responses: {'200': {description: ok}}}\n",
    )
    assert len(load_spec(declared_on_the_item).operations) == 1


_BAD_DEFAULTS = """paths:
  /a:
    get:
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  n: {type: integer, default: seven}
  /b:
    get:
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Box'}
components:
  schemas:
    Box:
      type: object
      properties:
        box:
          type: object
          properties: {a: {type: integer}}
          default: {a: x}
"""


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_a_default_of_the_wrong_type_is_named_where_it_is(tmp_path: Path, version: str) -> None:
    """openapi-spec-validator reports it relative to the default: it was '/ (line 1)'."""
    inline = tmp_path / "inline.yaml"
    inline.write_text(f"openapi: {version}\ninfo: {{title: t, version: '1'}}\n" + _BAD_DEFAULTS)
    with pytest.raises(ConfigError, match="'seven' is not of type 'integer'") as info:
        load_spec(inline)
    where = "/paths/~1a/get/responses/200/content/application~1json/schema/properties/n/default"
    assert info.value.location == f"{inline.resolve()}: {where} (line 14)"
    # Through a $ref: the referenced schema's place, and a path inside the default value.
    referenced = tmp_path / "referenced.yaml"
    referenced.write_text(inline.read_text().replace("default: seven", "default: 7"))
    with pytest.raises(ConfigError, match="'x' is not of type 'integer'") as info:
        load_spec(referenced)
    where = "/components/schemas/Box/properties/box/default/a"
    assert info.value.location == f"{referenced.resolve()}: {where} (line 31)"


def test_a_default_of_the_wrong_type_in_another_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "types.yaml").write_text("Count:\n  type: integer\n  default: many\n")
    root = _yaml_spec(
        tmp_path,
        "root.yaml",
        "paths:\n  /a:\n    get:\n      responses:\n        '200':\n"
        "          description: ok\n          content:\n            application/json:\n"
        "              schema: {$ref: 'types.yaml#/Count'}\n",
    )
    where = f"{(tmp_path / 'types.yaml').resolve()}: /Count/default (line 3)"
    assert _refusal(root, "'many' is not of type 'integer'") == where


_SCHEMAS = "paths: {}\ncomponents:\n  schemas:\n"


@pytest.mark.parametrize(
    ("files", "where", "version"),
    [
        pytest.param(
            {
                "root.yaml": _SCHEMAS + "    Item: {$ref: 'common.yaml#/Item'}\n",
                "common.yaml": "Item:\n  properties:\n    price: {$ref: '#/Money'}\n"
                "Money:\n  properties:\n    amount: {type: integer, default: abc}\n",
            },
            "common.yaml: /Money/properties/amount/default (line 6)",
            "3.0.3",
            id="a file reached from a file reached from the root",
        ),
        pytest.param(
            {
                "root.yaml": _SCHEMAS + "    A:\n      $ref: 'b.yaml#/Foo'\n"
                "      properties:\n        x: {type: integer, default: abc}\n",
                "b.yaml": "Foo: {type: object}\n",
            },
            "root.yaml: /components/schemas/A/properties/x/default (line 9)",
            "3.1.0",
            id="keys written beside a $ref to another file",
        ),
        pytest.param(
            {
                "root.yaml": _SCHEMAS + "    A: {$ref: 'b.yaml#/Foo', default: abc}\n",
                "b.yaml": "Foo: {type: integer}\n",
            },
            "root.yaml: /components/schemas/A/default (line 6)",
            "3.1.0",
            id="a value written beside a $ref to another file",
        ),
        pytest.param(
            {
                "root.yaml": _SCHEMAS + "    A:\n      properties:\n"
                "        a: {$ref: 'b.yaml#/Foo', description: x}\n"
                "        n:\n          properties:\n            k: {type: integer, default: abc}\n",
                "b.yaml": "Foo: {type: object}\n",
            },
            "root.yaml: /components/schemas/A/properties/n/properties/k/default (line 11)",
            "3.0.3",
            id="a node after a merged $ref (its copy's id was reused)",
        ),
        pytest.param(
            {
                "root.yaml": _SCHEMAS + "    A: {$ref: '#/components/schemas/N', default: 5}\n"
                "    N: {type: integer, default: abc}\n"
            },
            "root.yaml: /components/schemas/N/default (line 7)",
            "3.1.0",
            id="a local $ref with a sibling of the same name",
        ),
        pytest.param(
            {
                "root.yaml": _SCHEMAS + "    A: {$ref: '#/components/schemas/B'}\n    B:\n"
                "      allOf: [{properties: {x: {type: string}}}]\n      required: [x, y]\n"
            },
            "root.yaml: /components/schemas/B/required (line 9)",
            "3.0.3",
            id="a path that ends at a local $ref",
        ),
    ],
)
def test_errors_in_referenced_schemas_name_the_file_and_line_they_are_on(
    tmp_path: Path, files: dict[str, str], where: str, version: str
) -> None:
    """The audit of 2026-11-28: each named another pointer, line or file."""
    for name, text in files.items():
        header = f"openapi: {version}\ninfo: {{title: t, version: '1'}}\n"
        (tmp_path / name).write_text(header + text if name == "root.yaml" else text)
    with pytest.raises(ConfigError) as info:
        load_spec(tmp_path / "root.yaml")
    assert info.value.location == f"{tmp_path.resolve()}/{where}"


def test_json_specs_name_lines_too(tmp_path: Path) -> None:
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {},
        "components": {"schemas": {"A": {"type": "integer", "default": "abc"}}},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    with pytest.raises(ConfigError, match="'abc' is not of type 'integer'") as info:
        load_spec(path)
    line = path.read_text().splitlines().index('        "default": "abc"') + 1
    assert info.value.location == f"{path.resolve()}: /components/schemas/A/default (line {line})"


@settings(max_examples=200, deadline=None)
@given(document=_JSON_DOCUMENTS, indent=st.sampled_from([None, 1, 2]))
def test_every_pointer_of_a_json_text_gets_its_line(document: Any, indent: int | None) -> None:
    text = json.dumps(document, indent=indent)
    lines = _json_lines(text)
    assert set(lines) == set(_pointers(document, ""))
    order = list(lines.values())
    assert order == sorted(order)  # document order
    if indent is not None:  # one key or item per line: the line is the one written on
        written = text.splitlines()
        for pointer, line in lines.items():
            if pointer and isinstance(_leaf(document, pointer), str | int | float | bool):
                assert json.dumps(_leaf(document, pointer)) in written[line - 1]


def _pointers(value: Any, prefix: str) -> Iterator[str]:
    """Every pointer that gets a line: all but scalar array items (they take the array's)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _pointers(item, f"{prefix}/{escape_pointer(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                yield from _pointers(item, f"{prefix}/{index}")


def _leaf(document: Any, pointer: str) -> Any:
    for token in pointer.split("/")[1:]:
        document = (
            document[int(token)]
            if isinstance(document, list)
            else document[unescape_pointer(token)]
        )
    return document


_Q = "{name: q, in: query, schema: {type: string}}"
_ID = "{name: id, in: path, required: true, schema: {type: string}}"


@pytest.mark.parametrize(
    ("paths", "message", "where"),
    [
        (
            f"  /a:\n    get:\n      parameters: [{_Q}, {_Q}]\n",
            "parameter 'q' in query is listed twice",
            "/paths/~1a/get/parameters/1 (line 6)",
        ),
        (
            f"  /a/{{id}}:\n    parameters: [{_ID}]\n    get:\n      parameters: [{_ID}]\n",
            None,  # an operation may repeat a path item's parameter (it overrides it)
            None,
        ),
        (
            f"  /a:\n    parameters:\n      - {_ID}\n    get: {{}}\n",
            "path parameter 'id' is not in the path template /a",
            "/paths/~1a/parameters/0/name (line 6)",
        ),
        (
            "  /a/{id}:\n    get:\n      parameters:\n"
            "        - {name: id, in: path, schema: {type: string}}\n",
            "path parameter 'id' must say required: true",
            "/paths/~1a~1{id}/get/parameters/0 (line 7)",
        ),
    ],
)
def test_parameter_mistakes_are_named_where_they_are_written(
    tmp_path: Path, paths: str, message: str | None, where: str | None
) -> None:
    """openapi-spec-validator named the list, the operation, or said "'path' is not one of
    ['query']" for a path parameter without required: true."""
    text = "paths:\n" + paths.replace("get: {}", "get: {responses: {'200': {description: ok}}}")
    if "responses" not in text:
        text = text.rstrip("\n") + "\n      responses: {'200': {description: ok}}\n"
    spec = _yaml_spec(tmp_path, "params.yaml", text)
    if message is None:
        assert len(load_spec(spec).operations) == 1
        return
    assert _refusal(spec, re.escape(message)) == f"{spec.resolve()}: {where}"


def test_extensions_of_the_paths_object_are_not_paths(tmp_path: Path) -> None:
    """`x-owner: team-a` under `paths` raised KeyError in openapi-spec-validator, and the
    path checks read `x-legacy` as a template."""
    spec = _yaml_spec(
        tmp_path,
        "x.yaml",
        "paths:\n  x-owner: team-a\n  x-legacy:\n    parameters:\n"
        f"      - {_ID}\n  x-note}}: {{}}\n"
        "  /a:\n    get:\n      responses: {'200': {description: ok}}\n",
    )
    assert [op.path for op in load_spec(spec).operations] == ["/a"]


def test_a_refs_siblings_in_another_file_apply_beside_its_target(tmp_path: Path) -> None:
    """`{$ref: 'lib.yaml#/S', required: [b]}` was merged into one mapping: the sibling's
    `required` replaced the target's, and `a` was no longer required."""
    (tmp_path / "lib.yaml").write_text(
        "S:\n  type: object\n  required: [a]\n"
        "  properties: {a: {type: string}, b: {type: string}}\n"
    )
    spec = tmp_path / "root.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n"
        "      requestBody:\n        content:\n          application/json:\n"
        "            schema: {$ref: 'lib.yaml#/S', required: [b]}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    op = contract(spec, "POST", "/a")

    def send(body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        op.validate_request(path_params={}, query_string=b"", headers=JSON, body=raw)

    send({"a": "x", "b": "y"})
    for missing in ({"a": "x"}, {"b": "y"}):
        with pytest.raises(ValidationFailed):
            send(missing)


@pytest.mark.parametrize(
    ("value", "read"),
    [("!!int -0x1F", -31), ("!!int 0b101", 5), ("'='", "="), ("=", "="), ("<<", "<<")],
)
def test_yaml_tags_and_yaml_11_tokens_read_as_written(
    tmp_path: Path, value: str, read: object
) -> None:
    """An explicit !!int tag keeps YAML 1.1's forms (ValueError before); `=` and a `<<`
    that is not a key are strings (PyYAML found no constructor for them)."""
    spec = _yaml_spec(tmp_path, "tags.yaml", f"paths: {{}}\nx-value: {value}\n")
    assert load_spec(spec).raw["x-value"] == read


def test_an_explicit_int_tag_on_text_is_a_config_error(tmp_path: Path) -> None:
    spec = _yaml_spec(tmp_path, "bad.yaml", "paths: {}\nx-value: !!int zz\n")
    assert _refusal(spec, "invalid YAML: .*'zz' is not an integer") == str(spec)


def test_yaml_specs_are_read_as_yaml_12(tmp_path: Path) -> None:
    """PyYAML reads YAML 1.1: NO was False (Norway left the country enum), a property named
    `on` became `true`, 1e3 was a string and 010 was 8."""
    spec = _yaml_spec(
        tmp_path,
        "yaml12.yaml",
        "paths:\n  /a:\n    post:\n      requestBody:\n        content:\n"
        "          application/json:\n            schema:\n              type: object\n"
        "              properties:\n"
        "                country: {type: string, enum: [GB, NO, SE, yes, off]}\n"
        "                on: {type: boolean}\n"
        "                count: {type: integer, maximum: 1e3, minimum: 010}\n"
        "      responses: {'200': {description: ok}}\n",
    )
    op = contract(spec, "POST", "/a")
    schema = op.operation.raw["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["country"]["enum"] == ["GB", "NO", "SE", "yes", "off"]
    assert schema["properties"]["count"] == {"type": "integer", "maximum": 1000.0, "minimum": 10}

    def send(body: dict[str, Any]) -> None:
        op.validate_request(
            path_params={}, query_string=b"", headers=JSON, body=json.dumps(body).encode()
        )

    send({"country": "NO", "on": True, "count": 1000})
    for bad in ({"country": False}, {"count": 1001}, {"count": 9}, {"true": True}):
        with pytest.raises(ValidationFailed):
            send(bad)
    # A YAML 1.1 boolean where OpenAPI wants one is named, and the error says why.
    spec.write_text(
        spec.read_text().replace("on: {type: boolean}", "on: {type: boolean, readOnly: yes}")
    )
    with pytest.raises(ConfigError, match=r"'yes' is not of type 'boolean' \(YAML 1.2") as info:
        load_spec(spec)
    assert info.value.location.endswith("/properties/on/readOnly (line 13)")


@pytest.mark.parametrize(
    "template", ["/items/{id", "/items/id}", "/a/{{id}}", "/a/{}", "/a/{a[b}", "/a/{id:int}"]
)
def test_a_path_template_with_unbalanced_braces_is_named(tmp_path: Path, template: str) -> None:
    """openapi-spec-validator raised ValueError ("expected '}' before end of string")."""
    spec = _yaml_spec(
        tmp_path,
        "braces.yaml",
        f"paths:\n  '{template}':\n    get: {{responses: {{'200': {{description: ok}}}}}}\n",
    )
    with pytest.raises(ConfigError, match="unbalanced or nested brace") as info:
        load_spec(spec)
    assert info.value.location.endswith(" (line 4)")


def test_a_schema_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    """The meta-schema pass raised RecursionError at about 160 levels."""
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(400):
        schema = {"type": "array", "items": schema}
    ok = {"description": "ok", "content": {"application/json": {"schema": schema}}}
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": ok}}}},
    }
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(spec))
    assert _refusal(path, "nested or referenced too deeply") == str(path.resolve())


def test_duplicate_yaml_keys_and_unknown_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\npaths: {}\n")
    with pytest.raises(ConfigError, match="duplicate key"):
        load_spec(path)
    with pytest.raises(ConfigError, match="unsupported"):
        load_spec(write_spec(tmp_path, minimal({}, version="2.0")))


@pytest.mark.parametrize("pattern", ["^(?=.*[0-9]).+$", "^(a)\\1$", "(?<!x)y"])
def test_patterns_needing_backtracking_are_refused_at_load(tmp_path: Path, pattern: str) -> None:
    doc = minimal(
        {
            "/a": {
                "get": {
                    "responses": OK,
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "schema": {"type": "string", "pattern": pattern},
                        }
                    ],
                }
            }
        }
    )
    with pytest.raises(ConfigError, match="linear-time") as info:
        load_spec(write_spec(tmp_path, doc))
    assert "/paths/~1a/get/parameters/0/schema/pattern" in (info.value.location or "")


def test_overlay_hardens_a_loose_spec(tmp_path: Path) -> None:
    loose = minimal(
        {
            "/users": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/U"}}
                        }
                    },
                    "responses": OK,
                }
            },
            "/debug": {"get": {"responses": OK}},
        },
        components={
            "schemas": {
                "U": {
                    "type": "object",
                    "additionalProperties": True,
                    "properties": {
                        "name": {"type": "string"},
                        "bio": {"type": "string"},
                        "email": {"type": "string"},
                    },
                }
            }
        },
    )
    spec_path = write_spec(tmp_path, loose)
    overlay = tmp_path / "harden.yaml"
    overlay.write_text(
        "overlay: 1.0.0\n"
        "info: {title: harden, version: '1'}\n"
        "actions:\n"
        "  - target: $.components.schemas.U\n"
        "    update: {additionalProperties: false, required: [email]}\n"
        "  - target: $.components.schemas.U.properties[?(@.type == 'string')]\n"
        "    update: {maxLength: 20}\n"
        "  - target: $.components.schemas.U.properties.email\n"
        "    update: {format: email}\n"
        "  - target: $.paths['/debug']\n"
        "    remove: true\n"
        "  - target: $.paths['/users'].post\n"
        "    update: {security: [{bearer: []}], x-bastion-roles: [admin]}\n"
    )
    before = contract(spec_path, "POST", "/users")
    before.validate_request(path_params={}, query_string=b"", headers=JSON, body=b'{"admin": true}')

    spec = load_spec(spec_path, overlay=overlay)
    assert [op.path for op in spec.operations] == ["/users"]
    assert spec.operations[0].security == ({"bearer": ()},)
    assert spec.operations[0].extensions["x-bastion-roles"] == ["admin"]
    after = compile_operation(spec, spec.operations[0], ContractLimits())
    with pytest.raises(ValidationFailed) as info:
        after.validate_request(
            path_params={},
            query_string=b"",
            headers=JSON,
            body=b'{"admin": true, "email": "nope", "bio": "' + b"x" * 21 + b'"}',
        )
    assert sorted(e["pointer"] for e in info.value.extensions["errors"]) == [
        "/body/admin",
        "/body/bio",
        "/body/email",
    ]


def _overlaid(tmp_path: Path, actions: str) -> tuple[Path, Path]:
    """A spec with ``GET /a`` and an overlay file holding ``actions`` (YAML lines)."""
    spec_path = write_spec(tmp_path, minimal({"/a": {"get": {"responses": OK}}}))
    overlay = tmp_path / "o.yaml"
    overlay.write_text("overlay: 1.0.0\ninfo: {title: o, version: '1'}\nactions:\n" + actions)
    return spec_path, overlay


def test_overlay_target_that_selects_nothing_is_an_error(tmp_path: Path) -> None:
    spec_path, overlay = _overlaid(
        tmp_path, "  - target: $.components.schemas.Nope\n    update: {maxLength: 1}\n"
    )
    assert _refusal(spec_path, "selects nothing", overlay) == f"{overlay}: /actions/0 (line 4)"


def test_a_misspelt_action_key_is_named_with_its_line(tmp_path: Path) -> None:
    """'updte' was reported as a missing 'update', with no line."""
    spec_path, overlay = _overlaid(
        tmp_path,
        "  - target: $.paths['/a'].get\n    x-note: fine\n    update: {summary: ok}\n"
        "  - target: $.paths['/a'].get\n    updte: {summary: x}\n",
    )
    assert (
        _refusal(spec_path, "unknown key 'updte' in an action", overlay)
        == f"{overlay}: /actions/1 (line 7)"
    )


@pytest.mark.parametrize("ref", ["http://127.0.0.1:9/x.json", "other.yaml#/X", "/etc/hostname"])
def test_an_overlay_cannot_add_a_reference_to_outside_the_document(
    tmp_path: Path, ref: str
) -> None:
    """It was fetched by the validator at startup (a request to any address)."""
    spec_path, overlay = _overlaid(
        tmp_path,
        f"  - target: $.paths['/a'].get.responses\n    update: {{'201': {{$ref: '{ref}'}}}}\n",
    )
    with pytest.raises(ConfigError, match="not inside the document") as info:
        load_spec(spec_path, overlay=overlay)
    assert "/paths/~1a/get/responses/201/$ref" in str(info.value.location)


def test_overlay_can_add_a_required_query_parameter(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, minimal({"/a": {"get": {"responses": OK, "parameters": []}}}))
    overlay = tmp_path / "o.json"
    overlay.write_text(
        json.dumps(
            {
                "overlay": "1.0.0",
                "info": {"title": "o", "version": "1"},
                "actions": [
                    {
                        "target": "$.paths['/a'].get.parameters",
                        "update": {
                            "name": "tenant",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    }
                ],
            }
        )
    )
    spec = load_spec(spec_path, overlay=overlay)
    op = compile_operation(spec, spec.operations[0], ContractLimits())
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(path_params={}, query_string=b"", headers=JSON, body=None)
    assert info.value.extensions["errors"][0]["pointer"] == "/query/tenant"


def test_a_key_read_as_a_number_is_found_on_its_line(tmp_path: Path) -> None:
    """The line map spelt keys as written (010) while the document holds them as read (10):
    an error below such a key was named with its parent's line."""
    spec = _yaml_spec(
        tmp_path,
        "keys.yaml",
        "paths: {}\ncomponents:\n  schemas:\n    A:\n      properties:\n"
        "        010:\n          type: integer\n          default: x\n",
    )
    where = f"{spec.resolve()}: /components/schemas/A/properties/10/default (line 10)"
    assert _refusal(spec, "'x' is not of type 'integer'") == where
