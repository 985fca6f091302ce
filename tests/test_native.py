"""The compiled contract modules (bastion.native): only a sound build ever runs."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bastion import native

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(root: Path) -> dict[str, Any]:
    """A source tree with every module of MODULES and a (fake) sound build of them."""
    sources = {}
    for module in native.MODULES:
        source = native._source(root, module)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"NAME = {module!r}\n")
        sources[module] = native._digest(source)
    files = {}
    built = [*(native._built(m) for m in native.MODULES), f"{native.GROUP}{SUFFIX}"]
    for relative in built:
        path = native._native_dir(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF " + relative.encode())
        files[relative] = native._digest(path)
    manifest = {"python": sys.implementation.cache_tag, "sources": sources, "files": files}
    _write_manifest(root, manifest)
    return manifest


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (native._native_dir(root) / native.MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def meta_path(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """sys.meta_path and native.ACTIVE, restored afterwards (activate() sets both)."""
    paths = list(sys.meta_path)
    monkeypatch.setattr(sys, "meta_path", paths)
    monkeypatch.setattr(native, "ACTIVE", [])
    return paths


def test_no_build_is_python_without_a_word(tmp_path: Path, meta_path: list[Any]) -> None:
    (tmp_path / "bastion").mkdir()
    assert native.verify(tmp_path) == {}
    before = list(meta_path)
    assert native.activate(tmp_path) == []
    assert meta_path == before


def test_a_sound_build_is_served_through_the_finder(tmp_path: Path, meta_path: list[Any]) -> None:
    _tree(tmp_path)
    served = native.verify(tmp_path)
    assert isinstance(served, dict)
    assert set(served) == {*native.MODULES, native.GROUP}
    assert native.activate(tmp_path) == sorted(native.MODULES)
    finder = meta_path[0]
    spec = finder.find_spec("bastion.contract.projection", None)
    assert spec.origin == str(tmp_path / "bastion/_native/bastion/contract" / f"projection{SUFFIX}")
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    assert finder.find_spec("bastion.config", None) is None  # not ours: the usual import


def _edit_source(root: Path, manifest: dict[str, Any]) -> None:
    native._source(root, "bastion.contract.projection").write_text("NAME = 'the fix'\n")


def _swap_runtime(root: Path, manifest: dict[str, Any]) -> None:
    (native._native_dir(root) / f"{native.GROUP}{SUFFIX}").write_bytes(b"another build")


def _drop_runtime(root: Path, manifest: dict[str, Any]) -> None:
    (native._native_dir(root) / f"{native.GROUP}{SUFFIX}").unlink()


def _other_python(root: Path, manifest: dict[str, Any]) -> None:
    _write_manifest(root, {**manifest, "python": "cpython-399"})


def _other_modules(root: Path, manifest: dict[str, Any]) -> None:
    sources = dict(manifest["sources"])
    del sources["bastion.contract.rewrite"]  # taken off MODULES since the build
    _write_manifest(root, {**manifest, "sources": sources})


def _no_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (native._native_dir(root) / native.MANIFEST).unlink()


def _torn_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (native._native_dir(root) / native.MANIFEST).write_text("{not json")


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (_edit_source, "bastion.contract.projection changed since it was compiled"),
        (_swap_runtime, f"the compiled {native.GROUP} is not the file the build made"),
        (_drop_runtime, f"the compiled {native.GROUP} is not the file the build made"),
        (_other_python, "built for 'cpython-399'"),
        (_other_modules, "built for another list of modules"),
        (_no_manifest, "the build has no manifest"),
        (_torn_manifest, "unreadable manifest"),
    ],
)
def test_a_build_that_is_not_of_these_sources_is_not_used(
    tmp_path: Path, meta_path: list[Any], breakage: Any, reason: str
) -> None:
    """After an edit, a pull, a copy of the tree or a half-finished build: the sources run,
    and the warning says why (an error under the test suite)."""
    breakage(tmp_path, _tree(tmp_path))
    assert isinstance(native.verify(tmp_path), str)
    before = list(meta_path)
    with pytest.warns(RuntimeWarning, match="compiled modules not used") as caught:
        assert native.activate(tmp_path) == []
    assert reason in str(caught[0].message)
    assert "make native" in str(caught[0].message)
    assert meta_path == before
    assert native.compiled_modules(tmp_path) == []


def test_an_extension_beside_a_source_is_never_imported(
    tmp_path: Path, meta_path: list[Any]
) -> None:
    """An older layout's file, or one copied there: Python alone would import it instead
    of the source; the finder serves the source."""
    (tmp_path / "bastion").mkdir()
    source = native._source(tmp_path, "bastion.jsonutil")
    source.write_text("X = 1\n")
    stray = source.with_name(f"jsonutil{SUFFIX}")
    stray.write_bytes(b"\x7fELF")
    with pytest.warns(RuntimeWarning, match="ignoring extension files beside the sources"):
        assert native.activate(tmp_path) == []
    spec = meta_path[0].find_spec("bastion.jsonutil", None)
    assert spec.origin == str(source)
    assert not native.current(tmp_path)


def test_clean_removes_the_build_and_strays(tmp_path: Path) -> None:
    _tree(tmp_path)
    stray = native._source(tmp_path, "bastion.contract.rewrite").with_name("rewrite.so")
    stray.write_bytes(b"")
    old_runtime = tmp_path / f"{native.GROUP}.cpython-312-x86_64-linux-gnu.so"
    old_runtime.write_bytes(b"")
    removed = set(native.clean(tmp_path))
    assert removed == {native._native_dir(tmp_path), stray, old_runtime}
    assert native.verify(tmp_path) == {}
    assert native._source(tmp_path, "bastion.contract.rewrite").exists()


def test_a_new_build_replaces_the_old_one_by_renames(tmp_path: Path) -> None:
    """A running gateway has the old extension mapped: its file stays whole (a rewrite in
    place crashed such a process), and no scratch directory is left."""
    old = tmp_path / "_native"
    (old / "bastion").mkdir(parents=True)
    (old / "bastion" / f"jsonutil{SUFFIX}").write_bytes(b"old build" * 100)
    fresh = tmp_path / "._native.1.new"
    (fresh / "bastion").mkdir(parents=True)
    (fresh / "bastion" / f"jsonutil{SUFFIX}").write_bytes(b"new build")
    with (old / "bastion" / f"jsonutil{SUFFIX}").open("rb") as loaded:
        native._install(fresh, old)
        assert loaded.read() == b"old build" * 100
    assert (old / "bastion" / f"jsonutil{SUFFIX}").read_bytes() == b"new build"
    assert [p.name for p in tmp_path.iterdir()] == ["_native"]


def test_this_tree_runs_every_module_compiled_or_none() -> None:
    """No mix; what a process imports is what verify() promised."""
    compiled = native.compiled_modules()
    assert compiled in ([], sorted(native.MODULES))
    assert compiled == native.ACTIVE
    for name in native.MODULES:
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(SUFFIX if compiled else ".py"), name
        if compiled:
            assert f"/{native.NATIVE}/" in str(module.__file__)


def test_the_tool_runs_without_importing_the_package() -> None:
    """``python -P src/bastion/native.py`` must work whatever state the build is in."""
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


def test_no_compiled_function_reuses_an_except_name_for_another_type() -> None:
    """mypyc types ``except A as exc`` and a later ``except B as exc`` in one function by
    the first: raising B there is a TypeError, a 500 where Python answered 400 (a form body
    with a repeated field did this)."""
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
