"""The deployment checkers the tests run: helm, checkov and an HCL parser, built once per machine.

- **helm** is built from the Go module proxy (``go install helm.sh/helm/v4/cmd/helm@HELM``)
  into ``<cache>/deploy-tools/bin``: about 6 minutes the first time on 2 busy cores, then
  reused.
- **checkov** goes into its own virtualenv, ``<cache>/deploy-tools/venv`` (one to two
  minutes the first time), never into the project's ``.venv``: checkov pins many libraries
  the project also uses. **python-hcl2** has another, ``hcl-venv``: checkov's
  bc-python-hcl2 installs a module of the same name (``hcl2``).

``<cache>`` is ``$HL7GW_CACHE_DIR``, else ``.cache/hl7gw`` in the repository (where the Kafka
jars go too). A build or install that fails raises :class:`ToolUnavailable` saying what to do;
the tests fail on it under CI (``CI`` set) and skip elsewhere, so a CI run never passes
without the checks. Concurrent test processes build under one file lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import REPO

HELM_MODULE = "helm.sh/helm/v4/cmd/helm"
HELM_VERSION = "v4.3.2"
CHECKOV = "checkov==3.3.30"
HCL2 = "python-hcl2==8.1.4"
GO_FALLBACK = Path("/usr/local/go/bin/go")
BUILD_TIMEOUT_S = 1800.0  # helm's first build: ~6 min on 2 cores at load 6; room for slower


class ToolUnavailable(RuntimeError):
    """A checker could not be built or installed; the message says what to do."""


def cache_dir() -> Path:
    configured = os.environ.get("HL7GW_CACHE_DIR")
    base = Path(configured) if configured else REPO / ".cache" / "hl7gw"
    return base / "deploy-tools"


@contextmanager
def _locked(name: str) -> Iterator[None]:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(command: list[str], what: str, hint: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                              timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolUnavailable(f"{what} failed ({exc}); {hint}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ToolUnavailable(f"{what} failed (exit {done.returncode}); {hint}\n{tail}")


def find_go() -> str | None:
    """``go`` on PATH, else where the Go tarball installs it."""
    return shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.is_file() else None)


def helm() -> Path:
    """The helm binary, built from the Go module proxy when missing."""
    binary = cache_dir() / "bin" / "helm"
    stamp = binary.with_name("helm.version")
    with _locked("helm"):
        if binary.is_file() and stamp.is_file() and stamp.read_text() == HELM_VERSION:
            return binary
        go = find_go()
        if go is None:
            raise ToolUnavailable("helm is built with Go, and no `go` is on PATH or at "
                                  f"{GO_FALLBACK}: install Go 1.24+ (https://go.dev/dl or "
                                  "apt-get install golang-go)")
        env = {**os.environ, "GOBIN": str(binary.parent), "GOFLAGS": "-buildvcs=false"}
        _run([go, "install", f"{HELM_MODULE}@{HELM_VERSION}"], f"go install {HELM_MODULE}",
             "check that the Go module proxy is reachable (GOPROXY) and retry, or put a helm "
             f"{HELM_VERSION} binary at {binary}", env)
        stamp.write_text(HELM_VERSION)
        return binary


def _venv(name: str, requirements: tuple[str, ...]) -> Path:
    """The Python of the virtualenv ``<cache>/deploy-tools/NAME`` with ``requirements``."""
    venv = cache_dir() / name
    python = venv / "bin" / "python"
    stamp = venv / "hl7gw-tools.txt"
    wanted = "".join(f"{r}\n" for r in requirements)
    with _locked(name):
        if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        hint = f"check that PyPI is reachable and retry (the virtualenv is {venv})"
        _run([sys.executable, "-m", "venv", str(venv)], f"making the virtualenv {venv}", hint)
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *requirements], f"pip install {' '.join(requirements)}", hint)
        stamp.write_text(wanted)
        return python


def checkov_python() -> Path:
    """The Python of checkov's own virtualenv."""
    return _venv("venv", (CHECKOV,))


def hcl_python() -> Path:
    """The Python of python-hcl2's virtualenv: apart from checkov's, whose bc-python-hcl2
    installs a module of the same name, ``hcl2``."""
    return _venv("hcl-venv", (HCL2,))


def checkov_command() -> list[str]:
    """checkov from its virtualenv, offline (no download of policies or guidelines)."""
    return [str(checkov_python()), "-c", "import sys; from checkov.main import Checkov; "
            "sys.exit(Checkov().run())", "--skip-download"]
