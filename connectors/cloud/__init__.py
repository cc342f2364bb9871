"""The serverless function: a FastAPI app and its AWS Lambda handler.

``app`` and ``handler`` are built at import, as Lambda expects
(``handler: connectors.cloud.handler``); both use the sample :class:`MemoryStore`.
Deployments with a real processor build their own with ``create_app(processor)`` and
``make_handler(app)``.
"""

from connectors.cloud.app import create_app
from connectors.cloud.intake import Intake, Status
from connectors.cloud.lambda_handler import decode_record, is_kafka_event, make_handler
from connectors.cloud.processor import EventReader, MemoryStore, Processor, resource_types
from connectors.cloud.serve import function_server, run_function, serve_function

app = create_app()
handler = make_handler(app)

__all__ = [
    "EventReader",
    "Intake",
    "MemoryStore",
    "Processor",
    "Status",
    "app",
    "create_app",
    "decode_record",
    "function_server",
    "handler",
    "is_kafka_event",
    "make_handler",
    "resource_types",
    "run_function",
    "serve_function",
]
