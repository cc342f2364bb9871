"""Choosing the function's processor from HL7GW_PROCESSOR."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connectors.cloud import FhirServerWriter, MemoryStore, VitalSignAlerts, processor_from_env
from connectors.cloud.processor import Processor
from connectors.errors import SettingsFileError

ROOT = Path(__file__).resolve().parents[3]


async def close(processor: Processor) -> None:
    aclose = getattr(processor, "aclose", None)
    if aclose is not None:
        await aclose()


async def test_memory_is_the_default() -> None:
    assert isinstance(processor_from_env({}), MemoryStore)
    assert isinstance(processor_from_env({"HL7GW_PROCESSOR": "memory"}), MemoryStore)


async def test_fhir_needs_a_base_url() -> None:
    with pytest.raises(ValueError, match="FHIR_BASE_URL"):
        processor_from_env({"HL7GW_PROCESSOR": "fhir"})
    processor = processor_from_env({"HL7GW_PROCESSOR": "fhir",
                                    "FHIR_BASE_URL": "https://fhir.example/r4"})
    assert isinstance(processor, FhirServerWriter)
    await close(processor)


async def test_alert_needs_a_sink_and_reads_thresholds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HL7GW_ALERT_SINK_URL"):
        processor_from_env({"HL7GW_PROCESSOR": "alert"})
    path = tmp_path / "t.yaml"
    path.write_text('"8867-4": {low: 100, high: 50}\n', encoding="utf-8")
    env = {"HL7GW_PROCESSOR": "alert", "HL7GW_ALERT_SINK_URL": "https://alerts.example/"}
    with pytest.raises(SettingsFileError, match=f"^{path}:1: .*low is above high"):
        processor_from_env({**env, "HL7GW_ALERT_THRESHOLDS": str(path)})
    processor = processor_from_env(env)
    assert isinstance(processor, VitalSignAlerts)
    await close(processor)


def test_unknown_processor_is_refused() -> None:
    with pytest.raises(ValueError, match="memory, fhir, alert"):
        processor_from_env({"HL7GW_PROCESSOR": "kafka"})


def test_module_level_app_uses_the_configured_processor() -> None:
    code = ("import connectors.cloud as c; "
            "print(type(c.app.state.intake.processor).__name__)")
    env = {"HL7GW_PROCESSOR": "fhir", "FHIR_BASE_URL": "http://127.0.0.1:9/fhir",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "FhirServerWriter"
