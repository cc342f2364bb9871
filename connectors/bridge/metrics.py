"""Prometheus metrics of the bridge, registered once per registry.

Labels carry outcomes only: never an event id, a key or anything from a payload.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("delivered", "dead_lettered")


@dataclass(frozen=True)
class BridgeMetrics:
    """The bridge's counters, its delivery latency histogram and per-partition lag."""

    deliveries: Counter
    attempts: Counter
    dlq: Counter
    latency: Histogram
    lag: Gauge
    pauses: Counter
    assigned: Gauge
    results: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> BridgeMetrics:
        """Create and register the metrics on ``registry``."""
        deliveries = Counter("hl7gw_bridge_deliveries_total",
                             "Events the bridge finished, by outcome", ["outcome"],
                             registry=registry)
        for outcome in OUTCOMES:
            deliveries.labels(outcome=outcome)
        return cls(
            deliveries=deliveries,
            attempts=Counter("hl7gw_bridge_attempts_total",
                             "HTTP delivery attempts made to the function target",
                             registry=registry),
            dlq=Counter("hl7gw_bridge_dlq_total", "Events written to the dead-letter topic",
                        registry=registry),
            latency=Histogram("hl7gw_bridge_delivery_seconds",
                              "Time from the first attempt to an event's final outcome",
                              buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                                       300),
                              registry=registry),
            lag=Gauge("hl7gw_bridge_lag", "Records not yet delivered and committed, per "
                      "partition (high watermark minus the next offset to commit)",
                      ["topic", "partition"], registry=registry),
            pauses=Counter("hl7gw_bridge_partition_pauses_total",
                           "Times a partition was paused because its queue was full",
                           registry=registry),
            assigned=Gauge("hl7gw_bridge_assigned_partitions",
                           "Partitions this bridge holds in its consumer group",
                           registry=registry),
            results=Counter("hl7gw_bridge_results_total",
                            "FHIR results answered by the function, by what became of them "
                            "(published to the outbound topic, invalid, not_published when "
                            "outbound_topic is null)", ["outcome"], registry=registry),
        )


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, BridgeMetrics] = WeakKeyDictionary()
_LOCK = threading.Lock()


def metrics_for(registry: CollectorRegistry | None = None) -> BridgeMetrics:
    """The metrics on ``registry`` (default: the global one), created on first use.

    Several bridges in one process share them instead of failing on duplicate names.
    """
    registry = REGISTRY if registry is None else registry
    with _LOCK:
        metrics = _BY_REGISTRY.get(registry)
        if metrics is None:
            metrics = _BY_REGISTRY[registry] = BridgeMetrics.build(registry)
        return metrics
