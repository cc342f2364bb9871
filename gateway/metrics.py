"""Prometheus metrics for the gateway, on a registry passed in (one per service).

ACKs and refusals carry a ``sender`` label, kept bounded: a sender configured under its
listener's ``senders:`` is named by that entry (``APP|FAC`` as written there, ``*`` for
any), every other sender is ``other``. Label values come from the configuration, never
from what a peer sends, so a sender that invents a new MSH-3 on every message cannot grow
the number of series.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from gateway.config import SenderSettings

ACK_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
OTHER_SENDER = "other"


def sender_label(entry: SenderSettings | None) -> str:
    """The ``sender`` label for a message matched to ``entry`` (None: not configured)."""
    if entry is None:
        return OTHER_SENDER
    return f"{entry.application}|{entry.facility}"


def sender_labels(senders: Sequence[SenderSettings]) -> list[str]:
    """Every ``sender`` label a listener with these ``senders:`` can produce, ``other`` last."""
    labels = list(dict.fromkeys(sender_label(s) for s in senders))
    return [*labels, OTHER_SENDER]


class GatewayMetrics:
    """Counters, gauges and histograms for intake, spool and publishing; no PHI in labels."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter("hl7gw_frames", "MLLP frames received", ["listener"], registry=r)
        self.bytes = Counter("hl7gw_received_bytes", "Bytes of frames received",
                             ["listener"], registry=r)
        self.discarded_bytes = Counter("hl7gw_discarded_bytes",
                                       "Bytes outside MLLP frames, discarded", ["listener"],
                                       registry=r)
        self.acks = Counter("hl7gw_acks", "ACKs sent, by code and sender (a configured "
                            "senders: entry, else other)", ["listener", "code", "sender"],
                            registry=r)
        self.ack_latency = Histogram("hl7gw_ack_latency_seconds",
                                     "Frame received to ACK written", ["listener"],
                                     buckets=ACK_LATENCY_BUCKETS, registry=r)
        self.duplicates = Counter("hl7gw_duplicates", "Frames seen before (same id and bytes)",
                                  ["listener"], registry=r)
        self.conflicts = Counter("hl7gw_conflicts",
                                 "Frames reusing an id with different content", ["listener"],
                                 registry=r)
        self.rejected = Counter("hl7gw_rejected", "Messages refused, by HL7 0357 code and "
                                "sender (a configured senders: entry, else other)",
                                ["listener", "err_code", "sender"], registry=r)
        self.connections = Gauge("hl7gw_connections", "Open MLLP connections", ["listener"],
                                 registry=r)
        self.connections_total = Counter("hl7gw_connections_accepted",
                                         "MLLP connections accepted", ["listener"], registry=r)
        self.connections_refused = Counter(
            "hl7gw_connections_refused", "MLLP connections closed at once, by reason "
            "(allowlist, cap, per_ip_cap, non_mllp, tls_handshake)", ["listener", "reason"],
            registry=r)
        self.non_mllp = Counter("hl7gw_non_mllp_connections",
                                "Connections that spoke TLS, HTTP or no MLLP on an MLLP port",
                                ["listener", "kind"], registry=r)
        self.connections_reset = Counter(
            "hl7gw_connections_closed_by_gateway", "Connections the listener ended, by reason "
            "(frame_timeout, idle_timeout, frame_too_large, write_timeout)",
            ["listener", "reason"], registry=r)
        self.oversize_frames = Counter(
            "hl7gw_oversize_frames", "Frames over max_frame_bytes, refused with an ACK and "
            "skipped (the connection goes on)", ["listener"], registry=r)
        self.partial_frames = Counter("hl7gw_partial_frames_dropped",
                                      "Partial frames dropped when a connection ended",
                                      ["listener"], registry=r)
        self.spool_depth = Gauge("hl7gw_spool_depth", "Spool rows waiting to be published",
                                 registry=r)
        self.mapper = Info("hl7gw_mapper", "How the mapper runs: compiled, or pure Python "
                           "(3-4x slower; see mappers/_accel.py)", registry=r)
        self.published = Counter("hl7gw_published", "Events acknowledged by Kafka",
                                 ["topic"], registry=r)
        self.mapping_failures = Counter("hl7gw_mapping_failures",
                                        "Accepted messages the mapper could not convert",
                                        registry=r)
        self.publish_errors = Counter("hl7gw_publish_errors", "Failed publish attempts",
                                      ["topic"], registry=r)
        # Kafka's state (gateway/kafka_watch.py) and rows Kafka refuses for good.
        self.kafka_up = Gauge("hl7gw_kafka_up", "1 while Kafka answers (acks or metadata "
                              "probe), else 0", registry=r)
        self.oldest_pending_age = Gauge("hl7gw_oldest_pending_age_seconds",
                                        "Age of the oldest spool row waiting to be "
                                        "published (0: none waits)", registry=r)
        self.publish_refused = Counter("hl7gw_publish_refused",
                                       "Rows marked failed because Kafka refused their "
                                       "record for good (e.g. too large), by error class",
                                       ["topic", "error_class"], registry=r)
        # Per-sender mapping profiles (gateway/profiles.py): what is live, and reloads.
        self.profiles_loaded = Gauge("hl7gw_profiles_loaded",
                                     "Sender profiles in the live set", registry=r)
        self.profiles_generation = Gauge("hl7gw_profiles_generation",
                                         "Successful profile loads since start (the live "
                                         "set's generation)", registry=r)
        self.profile_reloads = Counter("hl7gw_profile_reloads",
                                       "Profile reloads, by result (ok, or rejected: the "
                                       "last good set stays live)", ["result"], registry=r)
        for result in ("ok", "rejected"):  # both series exist from the start, at 0
            self.profile_reloads.labels(result)
        # The spool's keyring (docs/encryption.md): reloads on SIGHUP after a rotation.
        self.keyring_reloads = Counter("hl7gw_keyring_reloads",
                                       "Keyring reloads, by result (ok, or rejected: the keys "
                                       "in use stay)", ["result"], registry=r)
        for result in ("ok", "rejected"):
            self.keyring_reloads.labels(result)
        self.keyring = Info("hl7gw_keyring", "The keyring sealing new records: current key "
                            "id and number of keys (nothing while encryption is off)",
                            registry=r)
        # The return path (gateway/outbound/): results consumed, queued and sent to the EHR.
        self.outbound_consumed = Counter(
            "hl7gw_outbound_consumed", "Outbound records taken from Kafka, by outcome (queued, "
            "duplicate, unrouted: no destination takes the type, invalid: not a FHIR result, "
            "render_failed: queued as failed)", ["outcome"], registry=r)
        self.outbound_queued = Gauge("hl7gw_outbound_queued",
                                     "Messages queued for a destination, not yet ACKed",
                                     ["destination"], registry=r)
        self.outbound_oldest_age = Gauge(
            "hl7gw_outbound_oldest_queued_age_seconds",
            "Age of a destination's oldest queued message (0: none queued)", ["destination"],
            registry=r)
        self.outbound_sent = Counter("hl7gw_outbound_sent",
                                     "Messages a destination ACKed with AA/CA",
                                     ["destination"], registry=r)
        self.outbound_acks = Counter("hl7gw_outbound_acks",
                                     "ACKs received from a destination for the message "
                                     "in flight, by MSA-1 code", ["destination", "code"],
                                     registry=r)
        self.outbound_retries = Counter(
            "hl7gw_outbound_retries", "Sends repeated, by reason (AE, CE, timeout, "
            "connection)", ["destination", "reason"], registry=r)
        self.outbound_failed = Counter("hl7gw_outbound_failed",
                                       "Messages given up on (AR/CR or too many attempts)",
                                       ["destination"], registry=r)
        self.outbound_ignored_acks = Counter(
            "hl7gw_outbound_ignored_acks", "ACK frames whose MSA-2 was not the message in "
            "flight (late or foreign): logged and not credited", ["destination"], registry=r)
        self.outbound_connected = Gauge("hl7gw_outbound_connected",
                                        "1 while the connection to a destination is open",
                                        ["destination"], registry=r)
