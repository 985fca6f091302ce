"""The contract's hot path, compiled to C with mypyc, and the guard against stale builds.

The modules in :data:`MODULES` walk every JSON body the contract checks (parsing proofs,
the projection walk, the sensitive-data scans, parameter decoding). They are plain typed
Python, checked by ``mypy --strict``; ``python -P src/bastion/native.py build`` (``make``)
compiles the same source with mypyc into extension modules placed beside it, which Python
imports instead of the ``.py`` files. Without a C compiler (or without mypy) the build says
why and everything runs as Python: same code, same behaviour, slower (docs/decisions.md,
"mypyc"; the numbers are in bench/README.md).

A compiled module that is not built from the source beside it would run other code than
the one read, reviewed and tested, silently: after ``git pull``, a checkout or an edit. So
the build records a SHA-256 of each source (``_native.json``), and importing :mod:`bastion`
checks it (:func:`check`): a compiled module whose source changed is an ImportError that
says how to rebuild or remove it. The check reads files and never imports the extensions.

    python -P src/bastion/native.py build    # compile (skipped when the build is current)
    python -P src/bastion/native.py status   # which modules run compiled
    python -P src/bastion/native.py clean    # remove the compiled modules

It runs as a script (``-P``: its own directory, which holds ``bastion/types.py``, stays off
``sys.path``) without importing :mod:`bastion`, whose import a stale build stops.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import sys
from pathlib import Path

__all__ = ["MODULES", "check", "compiled_modules"]

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
#: mypyc's runtime for the group, a top-level module beside the ``bastion`` package.
GROUP = "bastion_native"
MANIFEST = "_native.json"
PACKAGE = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE.parent


def _source(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def _extensions(root: Path, module: str) -> list[Path]:
    """The extension files this Python would import for ``module`` instead of its source."""
    stem = _source(root, module).with_suffix("")
    candidates = [Path(f"{stem}{suffix}") for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    return [path for path in candidates if path.exists()]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(root: Path) -> dict[str, str]:
    path = root / "bastion" / MANIFEST
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    modules = recorded.get("modules") if isinstance(recorded, dict) else None
    return {str(k): str(v) for k, v in modules.items()} if isinstance(modules, dict) else {}


def compiled_modules(root: Path = SOURCE_ROOT) -> list[str]:
    """The modules of :data:`MODULES` that have an extension beside their source."""
    return [module for module in MODULES if _extensions(root, module)]


def check(root: Path = SOURCE_ROOT) -> None:
    """Raise ImportError when a compiled module was not built from the source beside it."""
    present = compiled_modules(root)
    if not present:
        return
    recorded = _manifest(root)
    for module in present:
        source = _source(root, module)
        if not source.exists():
            continue  # installed without sources: nothing to compare with
        if recorded.get(module) != _digest(source):
            raise ImportError(
                f"bastion: the compiled {module} ({_extensions(root, module)[0].name}) was not"
                f" built from {source}; rebuild with `make native` (or `python -P {__file__}"
                f" build`), or go back to pure Python with `python -P {__file__} clean`"
            )


def clean(root: Path = SOURCE_ROOT) -> list[Path]:
    """Remove every compiled module, the group runtime and the manifest."""
    removed = []
    for module in MODULES:  # this Python's build and any other's (``….cpython-312-….so``)
        stem = _source(root, module).with_suffix("")
        removed += [*stem.parent.glob(f"{stem.name}.*.so"), *stem.parent.glob(f"{stem.name}.*.pyd")]
    removed += list(root.glob(f"{GROUP}__mypyc.*"))
    manifest = root / "bastion" / MANIFEST
    if manifest.exists():
        removed.append(manifest)
    for path in removed:
        path.unlink()
    return removed


def current(root: Path = SOURCE_ROOT) -> bool:
    """True when every module is compiled from its present source (for this Python)."""
    recorded = _manifest(root)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return all(
        Path(f"{_source(root, module).with_suffix('')}{suffix}").exists()
        and recorded.get(module) == _digest(_source(root, module))
        for module in MODULES
    )


def build(root: Path = SOURCE_ROOT) -> None:
    """Compile :data:`MODULES` in a scratch directory, then put them in place.

    Nothing is put in place unless every module compiled; the old build is removed first,
    so a failure leaves pure Python, never a mix.
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

    digests = {module: _digest(_source(root, module)) for module in MODULES}
    clean(root)
    with tempfile.TemporaryDirectory(prefix="bastion-native-") as scratch:
        work = Path(scratch)
        here = os.getcwd()
        os.chdir(root)  # mypyc names modules by their paths from here
        try:
            extensions = mypycify(
                [str(_source(Path(), module)) for module in MODULES],
                opt_level="3",
                target_dir=str(work / "c"),
                group_name=GROUP,
            )
            dist = Distribution({"name": GROUP, "ext_modules": extensions})
            command = dist.get_command_obj("build_ext")
            command.build_lib = str(work / "lib")
            command.build_temp = str(work / "temp")
            dist.run_command("build_ext")
        finally:
            os.chdir(here)
        built = sorted((work / "lib").rglob("*.so")) + sorted((work / "lib").rglob("*.pyd"))
        for path in built:
            _put(path.read_bytes(), root / path.relative_to(work / "lib"))
    # Last: until it is there, the import refuses the modules already in place.
    manifest = {"python": sys.implementation.cache_tag, "modules": digests}
    _put(json.dumps(manifest, indent=2).encode(), root / "bastion" / MANIFEST)


def _put(data: bytes, target: Path) -> None:
    """Write a new file and rename it over ``target``: a process that has the old
    extension loaded keeps its mapping (rewriting the file in place could crash it)."""
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    scratch.write_bytes(data)
    os.replace(scratch, target)


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "build":
        if current():
            print("bastion.native: compiled modules are current")
            return 0
        try:
            build()
        except Exception as exc:  # no compiler, no mypy, a mypyc error: say so, run as Python
            clean()
            print(
                f"bastion.native: not compiled ({type(exc).__name__}: {exc});"
                " the contract runs as pure Python (same behaviour, slower)",
                file=sys.stderr,
            )
            return 0 if "--allow-failure" in argv else 1
        print(f"bastion.native: compiled {len(MODULES)} modules")
        return 0
    if command == "clean":
        for path in clean():
            print(f"removed {path}")
        return 0
    if command == "status":
        compiled = set(compiled_modules())
        for module in MODULES:
            print(f"{module:36} {'compiled' if module in compiled else 'python'}")
        return 0
    print(f"usage: python -P {__file__} [build [--allow-failure] | status | clean]")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
