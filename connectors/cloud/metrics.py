"""Prometheus metrics of the function, one registry per app (``GET /metrics``).

Labels carry outcomes only, never an event id or anything from a payload. On AWS Lambda
each execution environment counts for itself and nobody scrapes it; there, CloudWatch's
invocation metrics play this part. Served by ``hl7gw function serve``, Knative or Cloud
Run, they are the function's side of the bridge's ``hl7gw_bridge_*`` metrics.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Every answer the function gives an event (connectors/cloud/app.py), by its code.
RESULTS = ("accepted", "duplicate", "in_progress", "invalid_event", "unsupported_media_type",
           "payload_too_large", "rejected", "processing_failed")


class FunctionMetrics:
    """Events answered, by result, and how long the processor took."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.events = Counter("hl7gw_function_events", "Events the function answered, by "
                              "result (accepted, duplicate, in_progress, invalid_event, "
                              "unsupported_media_type, payload_too_large, rejected, "
                              "processing_failed)", ["result"], registry=self.registry)
        for result in RESULTS:  # every series exists from the start, at 0
            self.events.labels(result)
        self.seconds = Histogram("hl7gw_function_event_seconds",
                                 "Time from a request's arrival to the function's answer",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                          10, 30),
                                 registry=self.registry)

    def observe(self, result: str, seconds: float) -> None:
        """Count one answer and its time."""
        self.events.labels(result).inc()
        self.seconds.observe(seconds)
