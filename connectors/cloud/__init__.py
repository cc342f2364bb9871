"""The serverless function: a FastAPI app and its AWS Lambda handler.

``app`` and ``handler`` are built at import, as Lambda expects
(``handler: connectors.cloud.handler``), with the processor ``HL7GW_PROCESSOR`` names
(``memory`` by default, ``fhir`` or ``alert``; see :mod:`connectors.cloud.select`), so its
clients live at module scope across warm invocations. ``HL7GW_TRACING=on`` turns tracing
on (OpenTelemetry is imported only then). Other deployments build their own
with ``create_app(processor)`` and ``make_handler(app)``.
"""

import importlib
import os
from typing import Any

from connectors.cloud.app import create_app
from connectors.cloud.intake import Intake, Status
from connectors.cloud.lambda_handler import decode_record, is_kafka_event, make_handler
from connectors.cloud.processor import EventReader, MemoryStore, Processor, resource_types
from connectors.cloud.select import processor_from_env, tracing_from_env
from connectors.tracing import configure as _configure_tracing
from connectors.tracing import enabled as _tracing_enabled

# Imported on first use (PEP 562): a cold start with the default processor needs none of
# them, and they bring httpx, tenacity, the YAML loader and uvicorn.
_LAZY = {
    **dict.fromkeys(("AlertSink", "HttpAlertSink", "MemoryAlertSink", "Threshold",
                     "VitalSignAlerts", "load_thresholds", "thresholds_from"), "alerts"),
    **dict.fromkeys(("FhirServerError", "FhirServerWriter"), "fhir_writer"),
    **dict.fromkeys(("function_server", "run_function", "serve_function"), "serve"),
    **dict.fromkeys(("News2Processor",), "news2_processor"),
    **dict.fromkeys(("DynamoDbVitalsStore", "MemoryVitalsStore", "VitalsStore",
                     "VitalsStoreError"), "news2_state"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'connectors.cloud' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"connectors.cloud.{module}"), name)
    globals()[name] = value
    return value


if not _tracing_enabled():  # a process that set tracing up itself keeps its set-up
    _configure_tracing(tracing_from_env(os.environ), service_name="hl7gw-function")
app = create_app(processor_from_env(os.environ))
handler = make_handler(app)

__all__ = [
    "AlertSink",
    "DynamoDbVitalsStore",
    "EventReader",
    "FhirServerError",
    "FhirServerWriter",
    "HttpAlertSink",
    "Intake",
    "MemoryAlertSink",
    "MemoryStore",
    "MemoryVitalsStore",
    "News2Processor",
    "Processor",
    "Status",
    "Threshold",
    "VitalSignAlerts",
    "VitalsStore",
    "VitalsStoreError",
    "app",
    "create_app",
    "decode_record",
    "function_server",
    "handler",
    "is_kafka_event",
    "load_thresholds",
    "make_handler",
    "processor_from_env",
    "resource_types",
    "run_function",
    "serve_function",
    "thresholds_from",
    "tracing_from_env",
]
