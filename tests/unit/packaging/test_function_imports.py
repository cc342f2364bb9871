"""The cloud function imports without the mapper: a fresh interpreter says what it loaded.

``connectors.cloud`` is what Lambda (or any other function host) imports at a cold start;
its package leaves out the mapper and its libraries (deploy/README.md). A stray import of
the mapper (once: ``connectors.errors`` -> ``mappers.errors`` -> ``mappers/__init__``)
would cost start-up time there and fail outright in the slim function package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import connectors.errors
import gateway.errors
import hl7gw.errors
import mappers
import mappers.errors

ROOT = Path(__file__).resolve().parents[3]
NOT_IN_THE_FUNCTION = ("mappers", "gateway", "hl7apy", "fhir", "botocore")
# OpenTelemetry's SDK and exporter: only when tracing is turned on (HL7GW_TRACING=on).
# (Its API is FastAPI's own dependency, loaded by FastAPI.)
ONLY_WHEN_TRACING = ("opentelemetry.sdk", "opentelemetry.exporter")


def _loaded_by(statement: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HL7GW_")}
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_function_loads_no_mapper_gateway_or_aws_sdk() -> None:
    loaded = _loaded_by("import connectors.cloud")
    assert "connectors.cloud" in loaded and "hl7gw.errors" in loaded
    stray = [m for m in loaded if m.split(".")[0] in NOT_IN_THE_FUNCTION
             or m.startswith(ONLY_WHEN_TRACING)]
    assert stray == []


def test_the_error_tree_is_one_set_of_classes_whichever_module_names_it() -> None:
    for name in hl7gw.errors.__dict__:
        cls = getattr(hl7gw.errors, name)
        if isinstance(cls, type) and issubclass(cls, Exception) and name != "Exception":
            assert getattr(mappers.errors, name) is cls, name
    assert mappers.MessageError is hl7gw.errors.MessageError
    assert issubclass(connectors.errors.ConnectorError, hl7gw.errors.Hl7gwError)
    assert issubclass(gateway.errors.SpoolAtCapacity, hl7gw.errors.MessageError)
