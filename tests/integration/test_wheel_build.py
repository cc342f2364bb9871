"""The shipped artefacts, built as the image builds them and run from clean environments.

The wheel: deploy/container/build.sh (what the Containerfile's build stage runs) builds it
from a copy of exactly the files the Containerfile copies, installs it into a new
virtualenv and checks the mapper runs compiled; here the mapper must also load every hot
module as a mypyc extension module and map a sample to its golden Bundle, byte for byte.

The function package: deploy/aws/build.sh turns the same wheel into the Lambda package;
run by a bare interpreter (no site-packages), it must import and handle a Kafka batch
without the mapper, the gateway or their libraries, and stay small.

Needs a C compiler and the package index (the build hook's tools, the dependencies); takes
a minute or two.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mappers._accel import COMPILED, module_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
SAMPLE = "adt_a01"
FUNCTION_PACKAGE_LIMIT = 30 * 1024 * 1024  # bytes unzipped (the old package: 112 MB)


def _build_stage_copies() -> list[str]:
    """The repository paths the Containerfile's build stage copies into /src."""
    build_stage = re.split(r"^FROM ", CONTAINERFILE.read_text(encoding="utf-8"), flags=re.M)[1]
    assert build_stage.startswith("python:3.11-slim AS build")
    paths: list[str] = []
    for line in build_stage.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not parts[1].startswith("--"):
            *sources, dest = parts[1:]
            if dest.startswith("/") and not dest.startswith("/src"):
                continue  # the build script itself, run from the repository here
            paths += sources
    return paths


def _build_env() -> dict[str, str]:
    """This environment (proxies, pip's index settings) without what would leak .venv in."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("HL7GW_")}
    return {**env, "PYTHON": sys.executable}


def _run(cmd: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the wheel, the virtualenv it is installed in), made by deploy/container/build.sh."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    copies = _build_stage_copies()
    assert {"pyproject.toml", "hatch_build.py", "mappers", "connectors", "hl7gw"} <= set(copies)
    for name in copies:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
        else:
            shutil.copy2(origin, src / name)
    assert "RUN hl7gw-build /src /wheels /opt/hl7gw" in CONTAINERFILE.read_text()
    started = time.monotonic()
    done = _run(["sh", str(ROOT / "deploy" / "container" / "build.sh"), str(src),
                 str(work / "wheels"), str(work / "venv")], timeout=540, env=_build_env())
    print(f"wheel built and installed in {time.monotonic() - started:.0f} s")
    assert "mapper: compiled (mypyc)" in done.stdout
    [wheel] = (work / "wheels").glob("hl7gw-*.whl")
    yield wheel, work / "venv"


def test_the_wheel_is_platform_specific_and_carries_the_compiled_modules(
        built: tuple[Path, Path]) -> None:
    wheel, _venv = built
    assert re.fullmatch(r"hl7gw-[\w.]+-cp311-cp311-linux_x86_64\.whl", wheel.name)
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for source in COMPILED:
        stem = f"mappers/{source}".removesuffix(".py")
        assert any(n.startswith(stem + ".cpython-") and n.endswith(".so") for n in names), stem
    assert any(n.startswith("mappers_accel__mypyc.") for n in names)
    assert "hatch_build.py" not in names
    # the IG segment maps the specs' ig: keys and --explain read, with their licence
    assert {"mappers/specs/ig/segments/PID[Patient].csv", "mappers/specs/ig/LICENSE"} <= names


def _map_in(venv: Path, env: dict[str, str]) -> dict[str, Any]:
    """Map the sample with the venv's mapper: status, loaders and files of the hot modules."""
    probe = f"""
import json, sys
import mappers, mappers._accel as accel
text = open({str(ROOT / "samples" / f"{SAMPLE}.hl7")!r}, "rb").read().decode()
bundle = mappers.convert(text).bundle
names = {[module_name(s) for s in COMPILED]!r}
print(json.dumps({{
    "status": accel.status(), "mappers": mappers.__file__,
    "loaders": {{n: type(sys.modules[n].__loader__).__name__ for n in names}},
    "files": {{n: sys.modules[n].__file__ for n in names}},
    "bundle": json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"}}))
"""
    done = _run([str(venv / "bin" / "python"), "-c", probe], timeout=120, cwd="/", env=env)
    out: dict[str, Any] = json.loads(done.stdout)
    assert str(venv) in out["mappers"], "imported the checkout, not the installed wheel"
    return out


def test_a_clean_venv_maps_a_sample_with_the_compiled_mapper(built: tuple[Path, Path]) -> None:
    _wheel, venv = built
    golden = (ROOT / "samples" / "expected" / f"{SAMPLE}.json").read_text(encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = _map_in(venv, env)
    assert out["status"] == "compiled (mypyc)"
    assert set(out["loaders"].values()) == {"ExtensionFileLoader"}, out["loaders"]
    assert all(f.endswith(".so") for f in out["files"].values()), out["files"]
    assert out["bundle"] == golden
    # the sources ship too: the pure-Python fallback gives the same Bundle
    pure = _map_in(venv, {**env, "HL7GW_PURE_PYTHON": "1"})
    assert pure["status"].startswith("pure Python")
    assert set(pure["loaders"].values()) == {"SourceFileLoader"}, pure["loaders"]
    assert pure["bundle"] == golden


def test_the_console_script_maps_a_sample(built: tuple[Path, Path]) -> None:
    _wheel, venv = built
    done = _run([str(venv / "bin" / "hl7gw"), "map", str(ROOT / "samples" / f"{SAMPLE}.hl7")],
                timeout=120, cwd="/")
    assert json.loads(done.stdout)["resourceType"] == "Bundle"


def test_the_function_package_runs_without_the_mapper(
        built: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, _venv = built
    package = tmp_path / "function"
    _run(["sh", str(ROOT / "deploy" / "aws" / "build.sh"), str(wheel), str(package)],
         timeout=300, env=_build_env())
    size = sum(p.stat().st_size for p in package.rglob("*") if p.is_file())
    print(f"function package: {size / 1e6:.1f} MB unzipped")
    assert size < FUNCTION_PACKAGE_LIMIT
    assert not (package / "mappers").exists() and not (package / "gateway").exists()
    event = ROOT / "tests" / "unit" / "connectors" / "events" / "msk.json"
    probe = f"""
import json, sys, time
started = time.perf_counter()
import connectors.cloud
took = time.perf_counter() - started
class Context:
    function_name = "hl7gw-function"
    aws_request_id = "req-1"
    def get_remaining_time_in_millis(self): return 30000
answer = connectors.cloud.handler(json.load(open({str(event)!r})), Context())
print(json.dumps({{"answer": answer, "import_s": took, "modules": sorted(sys.modules)}}))
"""
    # a bare interpreter (-S: no site-packages; no PYTHON* variables) with only the package
    base = getattr(sys, "_base_executable", sys.executable)
    done = _run([base, "-S", "-c", f"import sys; sys.path.insert(0, {str(package)!r})\n" + probe],
                timeout=120, cwd="/", env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    out = json.loads(done.stdout.splitlines()[-1])
    print(f"function import: {out['import_s'] * 1000:.0f} ms")
    assert out["answer"] == {"batchItemFailures": []}
    stray = [m for m in out["modules"]
             if m.split(".")[0] in ("mappers", "gateway", "hl7apy", "fhir", "botocore")]
    assert stray == []


def test_the_image_venv_can_turn_tracing_on(built: tuple[Path, Path]) -> None:
    """build.sh installs the tracing extra: `tracing.enabled` works in the image."""
    _wheel, venv = built
    probe = ("from connectors import tracing; from connectors.settings import TracingSettings;"
             " on = tracing.configure(TracingSettings(enabled=True,"
             " endpoint='http://127.0.0.1:9/v1/traces'), service_name='image');"
             " tracing.shutdown(); print(on)")
    done = _run([str(venv / "bin" / "python"), "-c", probe], timeout=120, cwd="/",
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert done.stdout.strip() == "True"
