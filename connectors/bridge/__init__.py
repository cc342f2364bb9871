"""The bridge from a Kafka topic to an HTTP function target, with retries and a DLQ."""

from connectors.bridge.bridge import Bridge
from connectors.bridge.delivery import DeliveryResult, HttpTarget
from connectors.bridge.metrics import BridgeMetrics, metrics_for
from connectors.bridge.retry import Action, RetryPolicy, parse_retry_after, plan_retry
from connectors.bridge.runner import run_bridge

__all__ = [
    "Action",
    "Bridge",
    "BridgeMetrics",
    "DeliveryResult",
    "HttpTarget",
    "RetryPolicy",
    "metrics_for",
    "parse_retry_after",
    "plan_retry",
    "run_bridge",
]
