"""The contract's hot path, compiled to C with mypyc, and what makes sure it is the code read.

The modules in :data:`MODULES` walk every JSON body the contract checks (parsing proofs,
the projection walk, the sensitive-data scans, parameter decoding). They are plain typed
Python, checked by ``mypy --strict``; ``python -P src/bastion/native.py build`` (``make``)
compiles the same source with mypyc into ``src/bastion/_native/``. Without a C compiler
(or without mypy) the build says why and everything runs as Python: same code, same
behaviour, slower (docs/decisions.md, "mypyc"; the numbers are in bench/README.md).

The compiled files live outside the import path: Python never finds them on its own. A
tree checked out from before this module, or a module taken off :data:`MODULES`, runs its
source. Importing :mod:`bastion` calls :func:`activate`, which serves them through an
import finder only when the build is sound: made for this Python, from the sources beside
it (their SHA-256 recorded by the build) and for the same list of modules, every file
whole. Otherwise it warns (``RuntimeWarning``: an error under the test suite) and every
module runs as Python. The finder also serves :data:`MODULES` from source when an
extension file lies beside it, so a stray one never runs either.

    python -P src/bastion/native.py build    # compile (skipped when the build is current)
    python -P src/bastion/native.py status   # compiled or Python, and why
    python -P src/bastion/native.py clean    # remove the compiled modules

It runs as a script (``-P``: its own directory, which holds ``bastion/types.py``, stays off
``sys.path``) without importing :mod:`bastion`.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = ["MODULES", "activate", "compiled_modules"]

#: Compiled with mypyc (one shared library for all, so calls between them stay native).
MODULES: tuple[str, ...] = (
    "bastion.jsonutil",
    "bastion.contract.compiled",
    "bastion.contract.media",
    "bastion.contract.messages",
    "bastion.contract.parameters",
    "bastion.contract.projection",
    "bastion.contract.request_body",
    "bastion.contract.responses",
    "bastion.contract.rewrite",
    "bastion.contract.sensitive",
    "bastion.contract.surrogates",
)
#: mypyc's runtime for the group (a top-level module name, served by the finder too).
GROUP = "bastion_native__mypyc"
NATIVE = "_native"
MANIFEST = "manifest.json"
PACKAGE = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE.parent
_EXTENSIONS = (".so", ".pyd")

#: What :func:`activate` serves compiled in this process (empty: all Python).
ACTIVE: list[str] = []


def _source(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def _native_dir(root: Path) -> Path:
    return root / "bastion" / NATIVE


def _built(module: str) -> str:
    """Where a module's extension lies under the native directory."""
    return "/".join(module.split(".")) + importlib.machinery.EXTENSION_SUFFIXES[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strays(root: Path) -> list[Path]:
    """Extension files beside the sources (an older layout, a copy): Python would import
    them instead of the ``.py`` files."""
    package = root / "bastion"
    found = [
        path
        for path in package.rglob("*")
        if path.suffix in _EXTENSIONS and NATIVE not in path.relative_to(package).parts
    ]
    return found + [p for p in root.glob(f"{GROUP}*") if p.suffix in _EXTENSIONS]


def verify(root: Path = SOURCE_ROOT) -> dict[str, Path] | str:
    """The compiled files to serve, by module name ({} when there is no build), or why
    none may be served."""
    native = _native_dir(root)
    try:
        manifest = json.loads((native / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {} if not native.exists() else "the build has no manifest"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    if not isinstance(manifest, dict):
        return "unreadable manifest"
    sources, files = manifest.get("sources"), manifest.get("files")
    if manifest.get("python") != sys.implementation.cache_tag:
        return f"built for {manifest.get('python')!r}, this is {sys.implementation.cache_tag!r}"
    if not isinstance(sources, dict) or not isinstance(files, dict):
        return "unreadable manifest"
    if sorted(sources) != sorted(MODULES):
        return "built for another list of modules"
    for module in MODULES:
        source = _source(root, module)
        if not source.is_file() or _digest(source) != sources[module]:
            return f"{module} changed since it was compiled"
    serve = {module: native / _built(module) for module in MODULES}
    serve[GROUP] = native / f"{GROUP}{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    for name, path in serve.items():
        recorded = files.get(path.relative_to(native).as_posix())
        if recorded is None or not path.is_file() or _digest(path) != recorded:
            return f"the compiled {name} is not the file the build made"
    return serve


class _Finder(importlib.abc.MetaPathFinder):
    """Serves :data:`MODULES` (and the group runtime) from the verified build, or each of
    :data:`MODULES` from its ``.py`` source when there is none."""

    def __init__(self, root: Path, compiled: dict[str, Path]) -> None:
        self.root, self.compiled = root, compiled

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        built = self.compiled.get(fullname)
        if built is not None:
            loader = importlib.machinery.ExtensionFileLoader(fullname, str(built))
            return importlib.util.spec_from_file_location(fullname, built, loader=loader)
        if fullname in MODULES:
            source = _source(self.root, fullname)
            return importlib.util.spec_from_file_location(fullname, source)
        return None


def activate(root: Path = SOURCE_ROOT) -> list[str]:
    """Serve the compiled modules when the build is sound (see the module docstring);
    return their names. Called once by ``bastion/__init__.py``, before any is imported."""
    result = verify(root)
    strays = _strays(root)
    if isinstance(result, str):
        warnings.warn(
            f"bastion: compiled modules not used: {result}; running as Python"
            " (`make native` rebuilds them)",
            RuntimeWarning,
            stacklevel=2,
        )
        result = {}
    if strays:
        warnings.warn(
            f"bastion: ignoring extension files beside the sources: {strays[0]}"
            f"{f' and {len(strays) - 1} more' if len(strays) > 1 else ''}"
            " (`python -P src/bastion/native.py clean` removes them)",
            RuntimeWarning,
            stacklevel=2,
        )
    if result or strays:
        sys.meta_path.insert(0, _Finder(root, result))
    ACTIVE[:] = sorted(name for name in result if name != GROUP)
    return list(ACTIVE)


def compiled_modules(root: Path = SOURCE_ROOT) -> list[str]:
    """The modules a process started from this tree runs compiled."""
    result = verify(root)
    return sorted(name for name in result if name != GROUP) if isinstance(result, dict) else []


def current(root: Path = SOURCE_ROOT) -> bool:
    """True when the build is sound and nothing stray lies beside the sources."""
    result = verify(root)
    return isinstance(result, dict) and bool(result) and not _strays(root)


def clean(root: Path = SOURCE_ROOT) -> list[Path]:
    """Remove the build, and any extension file beside the sources (older layouts)."""
    import shutil

    removed = []
    native = _native_dir(root)
    if native.exists():
        shutil.rmtree(native)
        removed.append(native)
    for path in _strays(root) + list((root / "bastion").glob("_native.json")):
        path.unlink()
        removed.append(path)
    return removed


def build(root: Path = SOURCE_ROOT) -> None:
    """Compile :data:`MODULES` in a scratch directory, then put the new build in place.

    The new build is assembled beside the old one and renamed over it: a running gateway
    keeps the files it mapped (rewriting one in place crashes it), and a failure leaves
    the old build or none, never a mix (the manifest covers every file).
    """
    import shutil
    import sysconfig
    import tempfile

    # Settled before mypyc's analysis (about 20 s) rather than after it.
    compiler = os.environ.get("CC") or str(sysconfig.get_config_var("CC") or "cc")
    if not compiler.split() or shutil.which(compiler.split()[0]) is None:
        raise RuntimeError(f"no C compiler: {compiler!r} is not on PATH (set CC)")
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        raise RuntimeError(
            f"no Python headers in {sysconfig.get_paths()['include']} (Debian: python3-dev)"
        )

    from mypyc.build import mypycify  # a build-time tool: mypy is a dev dependency
    from setuptools import Distribution

    sources = {module: _digest(_source(root, module)) for module in MODULES}
    native = _native_dir(root)
    with tempfile.TemporaryDirectory(prefix="bastion-native-") as scratch:
        work = Path(scratch)
        here = os.getcwd()
        os.chdir(root)  # mypyc names modules by their paths from here
        try:
            try:
                extensions = mypycify(
                    [
                        # Independent of any config file around the tree; type errors are
                        # `make typecheck`'s (mypy --strict), this only compiles.
                        "--cache-dir",
                        str(work / "mypy-cache"),
                        "--ignore-missing-imports",
                        "--follow-imports=silent",
                        *(str(_source(Path(), module)) for module in MODULES),
                    ],
                    opt_level="3",
                    target_dir=str(work / "c"),
                    group_name=GROUP.removesuffix("__mypyc"),
                )
            except SystemExit as exc:  # mypyc reports what it cannot compile so
                raise RuntimeError(f"mypyc refused the modules (exit {exc.code})") from None
            dist = Distribution({"name": GROUP, "ext_modules": extensions})
            command = dist.get_command_obj("build_ext")
            command.build_lib = str(work / "lib")
            command.build_temp = str(work / "temp")
            dist.run_command("build_ext")
        finally:
            os.chdir(here)
        fresh = native.with_name(f".{NATIVE}.{os.getpid()}.new")
        if fresh.exists():
            shutil.rmtree(fresh)
        files = {}
        for path in sorted((work / "lib").rglob("*")):
            if path.suffix in _EXTENSIONS:
                relative = path.relative_to(work / "lib").as_posix()
                target = fresh / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                files[relative] = _digest(target)
        manifest = {"python": sys.implementation.cache_tag, "sources": sources, "files": files}
        (fresh / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _install(fresh, native)
    for path in _strays(root):  # an older layout's files would be ignored, with a warning
        path.unlink()


def _install(fresh: Path, native: Path) -> None:
    """Put the build ``fresh`` where ``native`` was, by renames: a process that mapped the
    old files keeps them whole (rewriting one in place crashed such a process)."""
    import shutil

    old = native.with_name(f".{NATIVE}.{os.getpid()}.old")
    if native.exists():
        os.replace(native, old)
    os.replace(fresh, native)
    if old.exists():
        shutil.rmtree(old)


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        if current():
            print("bastion.native: compiled modules are current")
            return 0
        try:
            build()
        except Exception as exc:  # no compiler, no mypy, a mypyc error: say so, run as Python
            print(
                f"bastion.native: not compiled ({type(exc).__name__}: {exc});"
                " the contract runs as pure Python (same behaviour, slower)",
                file=sys.stderr,
            )
            clean()
            return 0 if "--allow-failure" in argv else 1
        print(f"bastion.native: compiled {len(MODULES)} modules")
        return 0
    if command == "clean":
        for path in clean():
            print(f"removed {path}")
        return 0
    if command == "status":
        result = verify()
        if isinstance(result, str):
            print(f"not used: {result}")
        for module in MODULES:
            compiled = isinstance(result, dict) and module in result
            print(f"{module:36} {'compiled' if compiled else 'python'}")
        return 0
    print(f"usage: python -P {__file__} [build [--allow-failure] | status | clean]")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
