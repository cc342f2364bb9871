"""The compiled mapper and its pure-Python fallback: same output, and no stale build used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import mappers._accel as accel
from mappers import convert

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
MESSAGES = sorted([*SAMPLES.glob("*.hl7"), *(SAMPLES / "messages").glob("*.hl7")])

_DUMP = """
import json, sys
import orjson
import mappers._accel as accel
from mappers import convert
out = {"status": accel.status(), "results": {}}
for path in sys.argv[1:]:
    r = convert(open(path, "rb").read().decode(), default_tz="Europe/Berlin")
    out["results"][path] = orjson.dumps({"bundle": r.bundle, "issues": [
        [i.severity, i.code, i.location, i.text] for i in r.issues],
        "unmapped": r.unmapped}).decode()
print(json.dumps(out))
"""


def _run_pure(paths: list[Path]) -> dict[str, object]:
    env = {**os.environ, accel.PURE_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", _DUMP, *map(str, paths)], env=env,
                          capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_pure_fallback_gives_byte_identical_results() -> None:
    assert len(MESSAGES) >= 12
    pure = _run_pure(MESSAGES)
    assert str(pure["status"]).startswith("pure Python (HL7GW_PURE_PYTHON is set)")
    results = pure["results"]
    assert isinstance(results, dict)
    for path in MESSAGES:
        r = convert(path.read_bytes().decode(), default_tz="Europe/Berlin")
        here = orjson.dumps({"bundle": r.bundle, "issues": [
            [i.severity, i.code, i.location, i.text] for i in r.issues],
            "unmapped": r.unmapped}).decode()
        assert results[str(path)] == here, path.name


def _fake_tree(tmp_path: Path, suffix: str, checkout: bool = True) -> Path:
    """A ``mappers`` folder with every compiled module built after its source; its path."""
    root = tmp_path / "mappers"
    if checkout:
        (tmp_path / "pyproject.toml").write_text("")
    for source in accel.COMPILED:
        path = root / source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        os.utime(path, (1000, 1000))
        binary = path.with_name(path.stem + suffix)
        binary.write_bytes(b"")
        os.utime(binary, (2000, 2000))
    return root


def test_a_source_newer_than_its_build_means_the_sources_are_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "ROOT", _fake_tree(tmp_path, accel._SUFFIX))
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    assert accel.in_checkout()
    assert accel._why_pure() is None
    os.utime(accel.ROOT / "engine" / "build.py", (3000, 3000))  # an edit after the build
    reason = accel._why_pure()
    assert reason is not None and "1 compiled module(s) missing or older" in reason
    (accel.ROOT / "engine" / "build.py").with_name("build" + accel._SUFFIX).unlink()
    os.utime(accel.ROOT / "engine" / "build.py", (1000, 1000))
    assert "1 compiled module(s) missing" in (accel._why_pure() or "")


def test_an_installed_wheel_uses_its_binaries_whatever_the_file_times(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pip gives extracted files the time of extraction: a .py may land after its .so
    monkeypatch.setattr(accel, "ROOT", _fake_tree(tmp_path, accel._SUFFIX, checkout=False))
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    assert not accel.in_checkout()
    os.utime(accel.ROOT / "engine" / "build.py", (3000, 3000))
    assert accel._why_pure() is None
    (accel.ROOT / "engine" / "build.py").with_name("build" + accel._SUFFIX).unlink()
    assert "1 compiled module(s) missing" in (accel._why_pure() or "")
    with pytest.raises(RuntimeError, match="not a source checkout"):
        accel.build()  # never compiles inside site-packages


def test_nothing_built_and_the_env_switch_are_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "ROOT", tmp_path / "mappers")
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    assert "not built" in (accel._why_pure() or "")
    _fake_tree(tmp_path, accel._SUFFIX)
    monkeypatch.setenv(accel.PURE_ENV, "1")
    assert accel._why_pure() == f"{accel.PURE_ENV} is set"
    assert accel._why_pure(ignore_env=True) is None
    monkeypatch.setenv(accel.PURE_ENV, "0")
    assert accel._why_pure() is None


def test_module_names_follow_the_package_layout() -> None:
    assert accel.module_name("hl7v2/__init__.py") == "mappers.hl7v2"
    assert accel.module_name("engine/build.py") == "mappers.engine.build"
    assert accel.module_name("ids.py") == "mappers.ids"
    for source in accel.COMPILED:
        assert (accel.ROOT / source).is_file(), source

