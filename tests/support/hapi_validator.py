"""The official FHIR validator (HAPI FHIR, R4 4.0.1) on our Bundles, offline, in one JVM.

Why: the fhir.resources models check structure only; HAPI's ``FhirInstanceValidator`` also
checks codes against the R4 code systems and value sets, which is what a FHIR server does.

Usage, on any FHIR JSON files (a new golden Bundle, a converted message)::

    .venv/bin/python -m tests.support.hapi_validator samples/expected/*.json
    .venv/bin/python -m tests.support.hapi_validator --warnings out.json   # warnings too

It prints every failure as ``FILE: SEVERITY LOCATION: MESSAGE`` and exits 1 when any file
has one, 0 when none has, 2 when the validator cannot run (java/javac/mvn missing, fetch
failed). From Python: ``validate(paths)`` gives ``{Path: [Issue, ...]}``; ``Issue.fails``
says whether one counts.

What counts: HAPI's ERROR and FATAL, except those about external code systems this offline
validator cannot know (LOINC, SNOMED CT, RxNorm, CVX, NDC, ICD, CPT...: see
``EXTERNAL_SYSTEMS``), which are warnings like HAPI's own "CodeSystem is unknown".

How it runs: the first run fetches the HAPI jars from Maven Central with ``mvn`` into
``$HL7GW_CACHE_DIR`` (default ``.cache/hl7gw`` in the repository) through the same fetcher
as the Kafka broker (``gateway.dev.kafka_jars.ensure_maven_jars``), and compiles
``hapi/HapiValidate.java`` there with ``javac``; later runs are offline. One JVM validates
every file of a call (start-up and loading the R4 definitions is most of the time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.dev.kafka_jars import ensure_maven_jars, last_lines, require_tool
from gateway.errors import GatewayError
from tests.support import REPO

HAPI_VERSION = "8.8.1"  # newest hapi-fhir-validation served here; also in hapi/pom.xml
SOURCE_DIR = Path(__file__).resolve().parent / "hapi"
MAIN_CLASS = "HapiValidate"
JDK_HINT = "a Java 17+ JDK (apt-get install openjdk-17-jdk-headless)"
NO_VALIDATOR = "see tests/support/hapi_validator.py"
JVM_OPTIONS = ("-Xss8m", "-Xmx1g", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.awt.headless=true")
START_TIMEOUT_S = 180.0  # JVM start and loading the R4 definitions, on a loaded machine
PER_FILE_TIMEOUT_S = 20.0
FAILING = frozenset({"error", "fatal"})
# Code systems HAPI cannot load offline: a complaint about one of them is not our error.
EXTERNAL_SYSTEMS = (
    "http://loinc.org", "http://snomed.info/sct", "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://hl7.org/fhir/sid/cvx", "http://hl7.org/fhir/sid/ndc", "http://hl7.org/fhir/sid/icd-",
    "http://www.ama-assn.org/go/cpt", "http://unitsofmeasure.org/ucum-essence",
    "http://www.whocc.no/atc", "http://fdasis.nlm.nih.gov", "http://hl7.org/fhir/sid/mvx",
    "http://www.cms.gov/Medicare/Coding/ICD10", "urn:oid:2.16.840.1.113883.6.",
)
_UNKNOWN = re.compile(r"unknown|could not be found|not.present|unable to (validate|expand)|"
                      r"cannot be validated|can't be validated|no such code ?system", re.I)


class ValidatorUnavailable(GatewayError):
    """The HAPI validator could not be fetched, compiled or run; the message says why."""


@dataclass(frozen=True)
class Issue:
    """One message of the validator about one file."""

    severity: str  # fatal, error, warning, information (HAPI's words)
    location: str  # FHIRPath-like, e.g. Bundle.entry[3].resource/*Patient/...*/.gender
    message: str
    message_id: str = ""
    line: int | None = None
    column: int | None = None

    @property
    def external(self) -> bool:
        """About a code system the offline validator cannot know (LOINC, SNOMED CT...)."""
        return any(s in self.message for s in EXTERNAL_SYSTEMS) and bool(
            _UNKNOWN.search(self.message))

    @property
    def fails(self) -> bool:
        """An ERROR or FATAL that is ours to fix."""
        return self.severity in FAILING and not self.external

    def describe(self) -> str:
        where = f" {self.location}" if self.location else ""
        where += f" (line {self.line})" if self.line else ""
        return f"{self.severity.upper()}{where}: {self.message}"


def cache_dir() -> Path:
    """``$HL7GW_CACHE_DIR``, else ``.cache/hl7gw`` in the repository (shared with Kafka's jars)."""
    configured = os.environ.get("HL7GW_CACHE_DIR")
    return Path(configured) if configured else REPO / ".cache" / "hl7gw"


def ensure_classpath(cache: Path | None = None, *, mvn: str = "mvn", javac: str = "javac",
                     log: Callable[[str], None] = lambda _: None) -> str:
    """The JVM classpath of the validator: HAPI's jars plus the compiled ``HapiValidate``.

    Raises :class:`~gateway.errors.MissingTool` when a program is missing and
    :class:`ValidatorUnavailable` when the fetch or the compile fails.
    """
    home = (cache or cache_dir()) / f"hapi-fhir-{HAPI_VERSION}"
    libs = ensure_maven_jars(
        home, (SOURCE_DIR / "pom.xml").read_text(), f"hapi-fhir-validation-{HAPI_VERSION}.jar",
        what=f"HAPI FHIR {HAPI_VERSION}", mvn=mvn, log=log, error=ValidatorUnavailable,
        instead=NO_VALIDATOR)
    return f"{_compiled(home, libs, javac)}{os.pathsep}{libs}{os.sep}*"


def _compiled(home: Path, libs: Path, javac: str) -> Path:
    """The classes directory of the current Java source, compiled once per source version."""
    source = SOURCE_DIR / f"{MAIN_CLASS}.java"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    classes = home / f"classes-{digest}"
    if (classes / f"{MAIN_CLASS}.class").is_file():
        return classes
    compiler = require_tool(javac, JDK_HINT, NO_VALIDATOR)
    work = Path(tempfile.mkdtemp(prefix="javac-", dir=home))
    try:
        done = subprocess.run(
            [compiler, "-nowarn", "-encoding", "UTF-8", "-cp", f"{libs}{os.sep}*",
             "-d", str(work), str(source)],
            capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise ValidatorUnavailable(
                f"javac failed on {source}:\n{last_lines(done.stdout + done.stderr)}")
        try:
            work.rename(classes)
        except OSError:  # another process compiled the same source meanwhile
            if not (classes / f"{MAIN_CLASS}.class").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return classes


def need_validator(why: str) -> None:
    """Fail under CI (the validator must run there), skip elsewhere, when it cannot run."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def validate(paths: Iterable[str | Path], *, cache: Path | None = None,
             java: str = "java") -> dict[Path, list[Issue]]:
    """Validate every file in one JVM: ``{path: [issues]}`` in the order given.

    A file that cannot be read or parsed gets one ``fatal`` issue; the others still run.
    """
    files = [Path(p) for p in paths]
    if not files:
        return {}
    classpath = ensure_classpath(cache)
    runtime = require_tool(java, JDK_HINT, NO_VALIDATOR)
    stdin = "".join(f"{p.resolve()}\n" for p in files)
    timeout = START_TIMEOUT_S + PER_FILE_TIMEOUT_S * len(files)
    try:
        done = subprocess.run([runtime, *JVM_OPTIONS, "-cp", classpath, MAIN_CLASS],
                              input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValidatorUnavailable(
            f"the validator did not finish {len(files)} files within {timeout:.0f}s") from exc
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or len(answers) != len(files):
        raise ValidatorUnavailable(
            f"the validator exited with code {done.returncode} after {len(answers)} of "
            f"{len(files)} files:\n{last_lines(done.stderr)}")
    return {path: [_issue(i) for i in answer["issues"]]
            for path, answer in zip(files, answers, strict=True)}


def _issue(raw: dict[str, object]) -> Issue:
    line, column = raw.get("line"), raw.get("column")
    return Issue(severity=str(raw.get("severity") or "fatal"),
                 location=str(raw.get("location") or ""), message=str(raw.get("message") or ""),
                 message_id=str(raw.get("messageId") or ""),
                 line=line if isinstance(line, int) else None,
                 column=column if isinstance(column, int) else None)


def failures(results: dict[Path, list[Issue]]) -> list[str]:
    """``FILE: SEVERITY LOCATION: MESSAGE`` for every failing issue, file by file."""
    return [f"{path}: {issue.describe()}"
            for path, issues in results.items() for issue in issues if issue.fails]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.hapi_validator",
        description=f"Validate FHIR R4 JSON files with HAPI FHIR {HAPI_VERSION}, offline.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--warnings", action="store_true",
                        help="also print warnings (not information), which never fail")
    args = parser.parse_args(argv)
    try:
        results = validate(args.files, cache=None)
    except GatewayError as exc:
        print(f"hapi_validator: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path, issues in results.items():
        shown = [i for i in issues if i.fails or (args.warnings and i.severity != "information")]
        count = sum(i.fails for i in issues)
        failed += count > 0
        print(f"{path}: {count} error(s)" if count else f"{path}: ok")
        for issue in shown:
            print(f"  {'' if issue.fails else '(not counted) '}{issue.describe()}")
    print(f"{len(results)} file(s), {failed} with errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
