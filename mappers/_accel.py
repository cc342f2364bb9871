"""The mapper's hot modules compiled to C with mypyc, and the pure-Python fallback.

The same ``.py`` files are both the reference implementation and the source of the compiled
extension modules: mypyc turns the type-annotated code into C (3-4x fewer cycles per
message here), nothing is rewritten by hand. Python prefers an extension module
(``<module>.cpython-*.so``) over a ``.py`` of the same name. Two builds make them:

* the wheel (``pip wheel`` / ``python -m build``): the build hook in ``hatch_build.py``
  (hatch-mypyc) compiles ``COMPILED`` into it, so the wheel is the artefact that is tested
  and shipped (deploy/container/Containerfile installs it);
* a source checkout (the editable install of ``make setup``): ``main(["ensure"])`` compiles
  in place, next to each source file, and again whenever a source changed.

Two guards keep that safe:

* in a source checkout, a compiled module older than its source is never used: if any
  ``.py`` in ``COMPILED`` is newer than its ``.so`` (an edit, a ``git checkout``), every
  module loads from source and ``status()`` says why, so an edit is never silently ignored
  (an installed wheel's sources and binaries come together, so it is not checked there);
* ``HL7GW_PURE_PYTHON=1`` forces the sources, which is how the tests run the mapper in both
  forms and how a monkeypatching debugger session gets plain functions.

Modules listed here must stay mypyc-compatible: no monkeypatching of their functions from
outside (call sites inside compiled code are bound at build time), annotations that hold
at run time (mypyc checks them), and no class reassigned after definition.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent
GROUP = "mappers_accel"  # the shared library mypyc builds: mappers_accel__mypyc.*.so
# The modules on the conversion path (tokenizer, engine, datatypes, ids), as paths under
# mappers/. The YAML loader and pydantic models stay Python: they run once, at start-up.
# The wheel's build hook lists the same files (pyproject.toml, hooks.custom.include).
COMPILED = (
    "hl7v2/__init__.py",
    "hl7v2/encoding.py",
    "hl7v2/header.py",
    "hl7v2/message.py",
    "engine/build.py",
    "engine/context.py",
    "engine/paths.py",
    "engine/refs.py",
    "engine/steps.py",
    "conversion.py",
    "ids.py",
    "predicates.py",
    "timestamps.py",
    "result.py",
    "datatypes/simple.py",
    "datatypes/coded.py",
    "datatypes/clinical.py",
    "datatypes/contact.py",
    "datatypes/identity.py",
)
PURE_ENV = "HL7GW_PURE_PYTHON"
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # ".cpython-311-x86_64-linux-gnu.so"


def module_name(source: str) -> str:
    """``"hl7v2/__init__.py"`` -> ``"mappers.hl7v2"``."""
    parts = ["mappers", *source.removesuffix(".py").split("/")]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _binary(source: str) -> Path:
    path = ROOT / source
    return path.with_name(path.stem + _SUFFIX)


def in_checkout() -> bool:
    """True in a source checkout (sources may be edited), False in an installed wheel."""
    return (ROOT.parent / "pyproject.toml").is_file()


def _why_pure(ignore_env: bool = False) -> str | None:
    """None when the compiled modules are present and current; else the reason they are not."""
    if not ignore_env and os.environ.get(PURE_ENV, "") not in ("", "0"):
        return f"{PURE_ENV} is set"
    missing = stale = 0
    check_age = in_checkout()
    for source in COMPILED:
        binary = _binary(source)
        try:
            built = binary.stat().st_mtime
        except FileNotFoundError:
            missing += 1
            continue
        if check_age and (ROOT / source).stat().st_mtime > built:
            stale += 1
    if missing == len(COMPILED):
        return "not built (run: make setup)" if check_age else "not built (a pure wheel)"
    if missing or stale:
        return (f"{missing + stale} compiled module(s) missing or older than their source "
                "(rebuild: make setup)")
    return None


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads the ``COMPILED`` modules from their ``.py`` even where a ``.so`` sits beside."""

    def __init__(self) -> None:
        self.names = {module_name(s) for s in COMPILED}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        loader = (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
        for entry in path or sys.path:
            spec = importlib.machinery.FileFinder(entry, loader).find_spec(fullname)
            if spec is not None:
                return spec
        return None


_REASON: str | None = None


def guard() -> None:
    """Called first thing by ``mappers/__init__``: fall back to the sources when needed."""
    global _REASON
    _REASON = _why_pure()
    if _REASON is not None and not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())


def status() -> str:
    """``"compiled (mypyc)"`` or ``"pure Python (<why>)"``: what this process really runs."""
    import mappers.engine.build as probe

    if (probe.__file__ or "").endswith(".py"):
        return f"pure Python ({_REASON or 'loaded from source'})"
    return "compiled (mypyc)"


def build(jobs: int = 2) -> None:
    """Compile ``COMPILED`` in a source checkout (needs mypy's mypyc, setuptools and a C
    compiler). Installed copies get their compiled modules from the wheel instead: mypy run
    inside site-packages reads the modules there (``typing_extensions.py``...) as its own."""
    if not in_checkout():
        raise RuntimeError(f"{ROOT} is not a source checkout: install a wheel built with "
                           "`pip wheel` or `python -m build`, which compiles the mapper")
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    cwd = Path.cwd()
    os.chdir(ROOT.parent)  # mypyc names modules by their path from the project root
    try:
        for old in [*(_binary(s) for s in COMPILED), *ROOT.parent.glob(f"{GROUP}__mypyc.*")]:
            old.unlink(missing_ok=True)  # never rewrite a library a running process has mapped
        modules = mypycify([f"mappers/{s}" for s in COMPILED], opt_level="3",
                           group_name=GROUP)
        dist = Distribution({"name": "hl7gw-accel", "ext_modules": modules})
        cmd = dist.get_command_obj("build_ext")
        cmd.inplace = True
        cmd.parallel = jobs
        dist.run_command("build_ext")
        # build_ext copies unchanged per-module stubs with their old mtimes: mark the whole
        # set as built now, which is what the staleness check compares sources against
        for source in COMPILED:
            os.utime(_binary(source))
    finally:
        os.chdir(cwd)


def main(argv: Sequence[str] | None = None) -> int:
    """``build`` (always), ``ensure`` (build when missing or stale) or ``status``.

    Run as ``python -c "from mappers._accel import main; main(['ensure'])"`` (what
    ``make setup`` does). ``ensure`` never fails the caller: without a C compiler the mapper
    simply runs from source, and says so.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build"]:
        build()
        print("mapper modules compiled; now:", _fresh_status())
        return 0
    if args[:1] == ["ensure"]:
        if _why_pure(ignore_env=True) is None:
            print("mapper modules: compiled and current")
            return 0
        import subprocess

        print("compiling the mapper's hot modules with mypyc (a minute or two, once)...")
        done = subprocess.run([sys.executable, "-c", "from mappers._accel import build; build()"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
            print(f"{tail}\nmapper modules NOT compiled (see above); the mapper runs from "
                  "source, 3-4x slower", file=sys.stderr)
            return 0
        print("mapper modules:", _fresh_status())
        return 0
    if args[:1] == ["status"]:
        print(_fresh_status())
        return 0
    print("usage: main(['build' | 'ensure' | 'status'])", file=sys.stderr)
    return 2


def _fresh_status() -> str:
    """Status in a new interpreter (this one may have imported the sources already)."""
    import subprocess

    return subprocess.run([sys.executable, "-c", "import mappers._accel as a; "
                           "import mappers; print(a.status())"], check=True,
                          capture_output=True, text=True).stdout.strip()

