"""The Azure Functions entry point: the function's FastAPI app behind an HTTP trigger.

Every path of ``connectors.cloud:app`` (``POST /events``, ``GET /healthz``) is served at
the site root (host.json sets an empty route prefix), and every request needs a function
key (``x-functions-key``), which the bridge sends with ``auth: {type: azure_function_key}``.
The processor comes from the app settings (``HL7GW_PROCESSOR``, ``FHIR_BASE_URL``, ...).
"""

import azure.functions as func  # provided by the Functions Python worker

from connectors.cloud import app as events_app

app = func.AsgiFunctionApp(app=events_app, http_auth_level=func.AuthLevel.FUNCTION)
