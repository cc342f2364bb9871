"""Kafka's broker jars (and other Java tools') from Maven Central, fetched once into a cache.

Split from ``gateway.dev.kafka`` (which runs the broker): this half only fetches. A
throw-away POM names the broker's artifacts and Maven's dependency plugin copies them into
``cache_dir/kafka-<version>/libs``; a marker written after a complete fetch makes later
starts offline. ``ensure_maven_jars`` does the same for any POM (the tests' FHIR validator).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from string import Template

from gateway.errors import BrokerUnavailable, GatewayError, MissingTool

LOG4J_VERSION = "2.24.3"  # what Kafka 4.0-4.1 shipped; the binding Kafka's POM leaves out
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MAVEN_HINT = "Maven (apt-get install maven)"
FETCH_TIMEOUT = 900.0  # seconds for the one-off Maven fetch; a cold ~/.m2 is ~100 MB
_MARKER = "fetched.ok"
KAFKA_INSTEAD = "set KAFKA_BOOTSTRAP_SERVERS to use an existing Kafka broker"


def _quiet(message: str) -> None:
    """Default progress sink: say nothing."""


def render_pom(kafka_version: str, log4j_version: str = LOG4J_VERSION) -> str:
    """The throw-away POM whose dependencies are the broker's jars."""
    template = files("gateway.dev").joinpath("kafka_files", "pom.xml.template").read_text()
    return Template(template).substitute(kafka_version=kafka_version, log4j_version=log4j_version)


def require_tool(name: str, hint: str, instead: str = KAFKA_INSTEAD) -> str:
    """The full path of program ``name``, or :class:`MissingTool` saying what to install.

    ``instead`` names the way around the install, for the caller's use of the tool.
    """
    path = shutil.which(name)
    if path is None:
        suffix = f", or {instead}" if instead else ""
        raise MissingTool(f"{name!r} not found on PATH: install {hint}{suffix}")
    return path


def ensure_jars(
    cache_dir: Path, kafka_version: str, *, mvn: str = "mvn", log: Callable[[str], None] = _quiet
) -> Path:
    """The ``libs`` directory of Kafka ``kafka_version``, fetched with Maven on first use.

    The marker file is written only after a complete fetch, so a killed fetch is redone;
    with the marker present Maven is not run at all (fast, offline).
    """
    return ensure_maven_jars(
        cache_dir / f"kafka-{kafka_version}", render_pom(kafka_version),
        f"kafka_2.13-{kafka_version}.jar", what=f"Kafka {kafka_version}", mvn=mvn, log=log,
    )


def ensure_maven_jars(
    home: Path, pom: str, expected_jar: str, *, what: str, mvn: str = "mvn",
    log: Callable[[str], None] = _quiet, error: type[GatewayError] = BrokerUnavailable,
    instead: str = KAFKA_INSTEAD,
) -> Path:
    """``home/libs``: the runtime jars of the dependencies ``pom`` lists, fetched once.

    Any Java tool the project runs from Maven Central jars (the Kafka broker, the FHIR
    validator of the tests) shares this: one Maven run copies the jars, ``expected_jar``
    proves it complete, and a marker written last makes every later call offline. Failures
    raise ``error`` with Maven's last lines; a missing ``mvn`` raises :class:`MissingTool`.
    """
    libs, marker = home / "libs", home / _MARKER
    if marker.is_file() and libs.is_dir():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(home / ".lock"):
        if marker.is_file() and libs.is_dir():  # another process fetched while we waited
            return libs
        maven = require_tool(mvn, MAVEN_HINT, instead)
        log(f"fetching {what} jars with Maven into {libs} (first run only)")
        work = Path(tempfile.mkdtemp(prefix="fetch-", dir=home))
        try:
            fetched = _maven_copy_dependencies(maven, pom, expected_jar, what, work, error)
            shutil.rmtree(libs, ignore_errors=True)
            fetched.rename(libs)
            marker.write_text("\n".join(sorted(p.name for p in libs.glob("*.jar"))) + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return libs


def _maven_copy_dependencies(maven: str, pom: str, expected_jar: str, what: str, work: Path,
                             error: type[GatewayError]) -> Path:
    """Run the dependency plugin in ``work``; return the directory holding the jars."""
    (work / "pom.xml").write_text(pom)
    out = work / "libs"
    command = [maven, "-q", "-B", "-f", str(work / "pom.xml"),
               f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime",
               f"-DoutputDirectory={out}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=FETCH_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise error(f"Maven did not fetch {what} within {FETCH_TIMEOUT:.0f}s") from exc
    if done.returncode != 0 or not (out / expected_jar).is_file():
        output = last_lines(done.stdout + done.stderr)
        raise error(
            f"Maven could not fetch {what} (exit {done.returncode}): "
            f"{' '.join(command)}\n{output}"
        )
    return out


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (one fetch at a time per cache)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def last_lines(text: str, count: int = 30) -> str:
    """The last ``count`` lines of ``text``."""
    return "\n".join(text.splitlines()[-count:])
