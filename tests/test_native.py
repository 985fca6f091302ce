"""The compiled contract modules (bastion.native): a stale build never runs."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bastion import native

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
MODULE = "bastion.contract.projection"


def _tree(root: Path, source: str = "X = 1\n") -> tuple[Path, Path]:
    """A source tree with MODULE's source and a (fake) compiled module beside it."""
    py = root / "bastion" / "contract" / "projection.py"
    py.parent.mkdir(parents=True)
    py.write_text(source)
    compiled = py.with_name(f"projection{SUFFIX}")
    compiled.write_bytes(b"\x7fELF")
    return py, compiled


def _record(root: Path, digests: dict[str, str]) -> None:
    (root / "bastion" / native.MANIFEST).write_text(json.dumps({"modules": digests}))


def test_a_tree_without_compiled_modules_is_fine(tmp_path: Path) -> None:
    (tmp_path / "bastion" / "contract").mkdir(parents=True)
    native.check(tmp_path)
    assert native.compiled_modules(tmp_path) == []


def test_a_compiled_module_built_from_its_source_is_accepted(tmp_path: Path) -> None:
    py, _ = _tree(tmp_path)
    _record(tmp_path, {MODULE: native._digest(py)})
    native.check(tmp_path)
    assert native.compiled_modules(tmp_path) == [MODULE]


@pytest.mark.parametrize("manifest", ["changed", "missing", "unreadable"])
def test_a_compiled_module_not_built_from_its_source_stops_the_import(
    tmp_path: Path, manifest: str
) -> None:
    """After an edit, a pull or a checkout the extension would run the old code."""
    py, compiled = _tree(tmp_path)
    if manifest == "changed":
        _record(tmp_path, {MODULE: native._digest(py)})
        py.write_text("X = 2  # the fix\n")
    elif manifest == "unreadable":
        (tmp_path / "bastion" / native.MANIFEST).write_text("{not json")
    with pytest.raises(ImportError) as caught:
        native.check(tmp_path)
    message = str(caught.value)
    assert MODULE in message
    assert compiled.name in message
    assert "make native" in message
    assert "clean" in message


def test_clean_removes_every_build_and_the_manifest(tmp_path: Path) -> None:
    py, compiled = _tree(tmp_path)
    other = py.with_name("projection.cpython-399-x86_64-linux-gnu.so")
    other.write_bytes(b"")
    group = tmp_path / f"{native.GROUP}__mypyc{SUFFIX}"
    group.write_bytes(b"")
    _record(tmp_path, {MODULE: native._digest(py)})
    removed = set(native.clean(tmp_path))
    assert removed == {compiled, other, group, tmp_path / "bastion" / native.MANIFEST}
    assert py.exists()
    assert native.compiled_modules(tmp_path) == []


def test_this_tree_is_all_compiled_and_current_or_all_python() -> None:
    """No mix: the build puts every module in place or none."""
    compiled = native.compiled_modules()
    assert compiled in ([], list(native.MODULES))
    for name in native.MODULES:
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(SUFFIX if compiled else ".py"), name
    if compiled:
        assert native.current()


def test_the_tool_runs_without_importing_the_package() -> None:
    """``python -P src/bastion/native.py`` must work when a stale build stops ``import
    bastion``: it is how the build is repaired."""
    script = Path(native.__file__)
    status = subprocess.run(
        [sys.executable, "-P", str(script), "status"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(name in status.stdout for name in native.MODULES)
    probe = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            f"import runpy, sys; runpy.run_path({str(script)!r}); print('bastion' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"


def test_without_a_c_compiler_the_build_says_so_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before mypyc's analysis (about 20 s), on every make, on a machine without gcc."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(RuntimeError, match="no C compiler"):
        native.build(tmp_path)


def test_a_rebuild_does_not_rewrite_a_loaded_extension_in_place(tmp_path: Path) -> None:
    """A running gateway has the old extension mapped: the new one is renamed over it, so
    the old file's contents stay whole for that process (truncating it could crash it)."""
    target = tmp_path / f"projection{SUFFIX}"
    target.write_bytes(b"old build" * 100)
    with target.open("rb") as loaded:
        native._put(b"new build", target)
        assert loaded.read() == b"old build" * 100
    assert target.read_bytes() == b"new build"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no scratch file left


def test_no_compiled_function_reuses_an_except_name_for_another_type() -> None:
    """mypyc types ``except A as exc`` and a later ``except B as exc`` in one function by
    the first: raising B there is a TypeError, a 500 where Python answered 400 (a form body
    with a repeated field did this)."""
    import ast

    reused = []
    for module in native.MODULES:
        tree = ast.parse(native._source(native.SOURCE_ROOT, module).read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            types: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                    types.setdefault(node.name, set()).add(ast.unparse(node.type))
            reused += [
                f"{module}.{function.name}: {name} {sorted(kinds)}"
                for name, kinds in types.items()
                if len(kinds) > 1
            ]
    assert reused == []
