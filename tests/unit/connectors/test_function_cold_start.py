"""The function's cold start imports only what the default processor uses.

A Lambda cold start pays for every module imported at ``connectors.cloud``'s import; the
fhir and alert processors (httpx, tenacity, the YAML loader) and the local server (uvicorn)
are imported when chosen or first used, never for the default ``memory`` processor.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("httpx", "tenacity", "uvicorn", "hl7gw.yamlfile", "connectors.cloud.alerts",
         "connectors.cloud.fhir_writer", "connectors.cloud.serve", "mappers")


def _loaded_after_import(env: dict[str, str]) -> set[str]:
    code = ("import sys, connectors.cloud; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HL7GW_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120, check=True)
    return set(done.stdout.split())


def test_the_default_processor_imports_no_http_client_yaml_or_server() -> None:
    assert _loaded_after_import({}) == set()


def test_the_fhir_processor_imports_its_writer_when_chosen() -> None:
    loaded = _loaded_after_import({"HL7GW_PROCESSOR": "fhir",
                                   "FHIR_BASE_URL": "http://127.0.0.1:9/fhir"})
    assert {"httpx", "tenacity", "connectors.cloud.fhir_writer"} <= loaded
    assert "uvicorn" not in loaded and "connectors.cloud.alerts" not in loaded


def test_the_lazy_names_resolve_and_unknown_ones_fail() -> None:
    import connectors.cloud as cloud
    from connectors.cloud.alerts import VitalSignAlerts
    from connectors.cloud.serve import serve_function

    assert cloud.VitalSignAlerts is VitalSignAlerts
    assert cloud.serve_function is serve_function
    assert all(getattr(cloud, name) is not None for name in cloud.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cloud.nope  # noqa: B018
