"""The serverless function: a FastAPI app and its AWS Lambda handler.

``app`` and ``handler`` are built at import, as Lambda expects
(``handler: connectors.cloud.handler``), with the processor ``HL7GW_PROCESSOR`` names
(``memory`` by default, ``fhir`` or ``alert``; see :mod:`connectors.cloud.select`), so its
clients live at module scope across warm invocations. ``HL7GW_TRACING=on`` turns tracing
on (OpenTelemetry is imported only then). Other deployments build their own
with ``create_app(processor)`` and ``make_handler(app)``.
"""

import os

from connectors.cloud.alerts import (
    AlertSink,
    HttpAlertSink,
    MemoryAlertSink,
    Threshold,
    VitalSignAlerts,
    load_thresholds,
    thresholds_from,
)
from connectors.cloud.app import create_app
from connectors.cloud.fhir_writer import FhirServerError, FhirServerWriter
from connectors.cloud.intake import Intake, Status
from connectors.cloud.lambda_handler import decode_record, is_kafka_event, make_handler
from connectors.cloud.processor import EventReader, MemoryStore, Processor, resource_types
from connectors.cloud.select import processor_from_env, tracing_from_env
from connectors.cloud.serve import function_server, run_function, serve_function
from connectors.tracing import configure as _configure_tracing
from connectors.tracing import enabled as _tracing_enabled

if not _tracing_enabled():  # a process that set tracing up itself keeps its set-up
    _configure_tracing(tracing_from_env(os.environ), service_name="hl7gw-function")
app = create_app(processor_from_env(os.environ))
handler = make_handler(app)

__all__ = [
    "AlertSink",
    "EventReader",
    "FhirServerError",
    "FhirServerWriter",
    "HttpAlertSink",
    "Intake",
    "MemoryAlertSink",
    "MemoryStore",
    "Processor",
    "Status",
    "Threshold",
    "VitalSignAlerts",
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
