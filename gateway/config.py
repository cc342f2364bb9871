"""Gateway settings: one YAML file, validated at start-up, errors naming file/line/field.

Settings are built here once and passed down; no module below reads the environment or
the file itself. ``KAFKA_BOOTSTRAP_SERVERS`` overrides ``kafka.bootstrap_servers`` so the
same file works against a local broker and a managed one; values written as
``${env:NAME}`` / ``${file:PATH}`` (secrets) are read here too (``gateway.config_refs``).
The YAML is read with its line numbers by ``hl7gw.yamlfile``, shared with the mapping
specs and the sender profiles, so every mistake is one ``file:line: field:`` line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.settings import (
    BridgeSettings,
    FunctionSettings,
    KafkaSettings,
    TracingSettings,
)
from gateway.alerts.settings import AlertSettings
from gateway.config_refs import resolve_references
from gateway.errors import ConfigError
from gateway.keys.settings import EncryptionSettings
from gateway.mllp.settings import CidrList, TlsSettings
from gateway.oidc_settings import OidcSettings
from gateway.outbound.settings import OutboundSettings
from hl7gw.fieldtypes import Charset, TimeZone
from hl7gw.yamlfile import YamlDocument, load_file

HL7_VERSIONS = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SenderSettings(_Strict):
    """One sending system's quirks, matched on MSH-3 and MSH-4 (first components; * = any)."""

    application: str = "*"
    facility: str = "*"
    charset: Charset | None = None  # wins over MSH-18 and the listener's charset
    default_timezone: TimeZone | None = None  # for timestamps without an offset

    def matches(self, application: str, facility: str) -> bool:
        """True when this entry is for that sender."""
        return self.application in ("*", application) and self.facility in ("*", facility)


class ListenerSettings(_Strict):
    """One MLLP port and what it accepts."""

    name: str = "default"
    host: str = "127.0.0.1"
    port: int = Field(default=2575, ge=0, le=65535)
    charset: Charset = "utf-8"
    message_types: list[str] | None = None  # None: every type the mappers support
    versions: list[str] = Field(default_factory=lambda: list(HL7_VERSIONS))
    processing_ids: list[str] = Field(default_factory=lambda: ["P", "T", "D"])
    # At most kafka.max_request_size (checked below): a larger message would be ACKed and
    # could never be published. Past it, the frame is reset without an ACK.
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    strict_frame_end: bool = True
    senders: list[SenderSettings] = Field(default_factory=list)  # first match wins
    batch_ack: Literal["batch", "messages"] = "batch"
    # Connections (gateway/mllp/server.py): TLS, who may connect, how many, how long.
    tls: TlsSettings | None = None
    allow: CidrList = Field(default_factory=list)  # CIDRs; empty: everyone
    max_connections: int = Field(default=1000, ge=1)
    max_connections_per_ip: int | None = Field(default=None, ge=1)  # None: no per-IP cap
    idle_timeout_s: float = Field(default=300.0, gt=0)  # no bytes between frames
    frame_timeout_s: float = Field(default=30.0, gt=0)  # VT seen, FS must follow within
    keepalive: bool = True  # TCP keepalive on accepted sockets


class HttpSettings(_Strict):
    """The admin/health HTTP endpoint."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tls: TlsSettings | None = None  # HTTPS on this port (certificate and key files)


class SpoolSettings(_Strict):
    """Where the durable spool lives."""

    path: Path = Path("var/spool.db")
    # The intake journal (docs/journal.md): the durable ACK's commit point, in front of
    # SQLite. Its folder defaults to the spool file's name + ".journal", next to it.
    journal: bool = True
    journal_dir: Path | None = None
    journal_segment_mb: int = Field(default=16, ge=1, le=1024)
    max_batch: int = Field(default=512, ge=1)
    max_pending: int = Field(default=1_000_000, ge=1)  # past it, intake answers AE/CE
    retain_published_hours: float = Field(default=168, ge=0)  # then pruned
    retain_rejected_hours: float = Field(default=720, ge=0)
    prune_interval_s: float = Field(default=600, gt=0)

    @property
    def journal_path(self) -> Path | None:
        """The journal's folder, or None when ``journal`` is off."""
        if not self.journal:
            return None
        return self.journal_dir or self.path.with_name(self.path.name + ".journal")


class ProfilesSettings(_Strict):
    """Per-sender mapping profiles (``mappers.profiles``): a folder of YAML files.

    Checked at start-up (a bad file stops the start with file:line: field). While running,
    a change is picked up on SIGHUP or when the folder's files change (polled every
    ``watch_interval_s``; 0 turns polling off); a bad edit keeps the last good set live.
    """

    dir: Path | None = None
    watch_interval_s: float = Field(default=2.0, ge=0)


class ConsoleUser(_Strict):
    """Someone allowed into the admin API and web console, by bearer token.

    Only the token's SHA-256 is kept in the file (``hl7gw console token NAME`` prints a new
    token and its line). ``viewer`` sees message metadata; ``operator`` also sees message
    bodies and may replay.
    """

    name: str = Field(min_length=1)
    role: Literal["viewer", "operator"]
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ConsoleSettings(_Strict):
    """The web console and admin API served on the HTTP port."""

    enabled: bool = True
    users: list[ConsoleUser] = Field(default_factory=list)  # none: console refuses everyone
    audit_path: Path = Path("var/audit.jsonl")  # every body view and replay: who, what, when
    session_hours: float = Field(default=8.0, gt=0)  # a console login lasts this long
    sample_interval_s: float = Field(default=5.0, ge=0.1)  # dashboard series, one hour kept
    oidc: OidcSettings | None = None  # sign-in with the hospital's OpenID Connect provider
    # browser sessions (hashed ids), kept across restarts; None: next to audit_path
    sessions_path: Path | None = None

    @property
    def session_file(self) -> Path:
        """Where browser sessions are kept: ``sessions_path``, else beside the audit log."""
        return self.sessions_path or self.audit_path.with_name("console-sessions.db")


class ScaleOutSettings(_Strict):
    """Mapping on other machines: the gateway publishes raw messages, ``hl7gw mapper`` maps.

    With this section the gateway does not map: right after a message's durable commit and
    ACK it publishes the raw HL7 v2 bytes as a CloudEvent, keyed by the patient's id, to
    ``raw_topic``, and any number of ``hl7gw mapper`` processes (one Kafka consumer group,
    ``group_id``) map them and publish the FHIR events to the usual topics with the same
    ids, keys and headers as the in-process mapping (docs/scale-out.md). A message that
    cannot be mapped goes to ``dlq_topic`` (default ``<raw_topic>.dlq``) with the reason.
    """

    raw_topic: str = Field(default="hl7.raw", min_length=1)
    group_id: str = Field(default="hl7gw-mapper", min_length=1)
    dlq_topic: str | None = None  # None: "<raw_topic>.dlq"
    max_batch: int = Field(default=200, ge=1)  # records mapped and published per round
    mapping_workers: int = Field(default=1, ge=0)  # per mapper: processes mapping
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8091))  # mapper

    @property
    def dead_letter_topic(self) -> str:
        """Where unmappable messages go."""
        return self.dlq_topic or f"{self.raw_topic}.dlq"


class GatewaySettings(_Strict):
    """Everything ``hl7gw serve``, ``bridge`` and ``dev up`` need."""

    source: str = "urn:hl7gw:gateway"
    default_timezone: TimeZone = "UTC"
    mapping_workers: int = Field(default=1, ge=0)  # processes mapping off the event loop
    listeners: list[ListenerSettings] = Field(default_factory=lambda: [ListenerSettings()])
    http: HttpSettings = Field(default_factory=HttpSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    profiles: ProfilesSettings = Field(default_factory=ProfilesSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    kafka: KafkaSettings
    bridge: BridgeSettings | None = None
    function: FunctionSettings = Field(default_factory=lambda: FunctionSettings(port=8090))
    # OpenTelemetry, off by default; serve and bridge read it (docs/observability.md)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    # SIGTERM: how long stopping may take in all (in-flight frames, a last publish, the
    # mapping worker); what is not published by then stays in the spool for the restart.
    # With 2 s for the process to exit (hl7gw.shutdown), a stop takes 10 s at most.
    drain_timeout_s: float = Field(default=8.0, gt=0)
    scale_out: ScaleOutSettings | None = None  # map in `hl7gw mapper` processes instead
    outbound: OutboundSettings | None = None  # results back to the EHR (docs/outbound.md)
    # the spool and journal sealed at rest; absent: stored clear (docs/encryption.md)
    encryption: EncryptionSettings | None = None
    alerts: AlertSettings | None = None  # rules, dashboard and webhook (docs/alerts.md)

    @model_validator(mode="after")
    def _scale_out_topics(self) -> GatewaySettings:
        so = self.scale_out
        if so is None:
            return self
        if self.kafka.raw_topic is not None:
            raise ValueError("kafka.raw_topic and scale_out both publish the raw messages: "
                             "with scale_out, read them from scale_out.raw_topic and drop "
                             "kafka.raw_topic")
        fhir_topics = {self.kafka.topic, *(r.topic for r in self.kafka.routes)}
        if so.raw_topic in fhir_topics or so.dead_letter_topic in fhir_topics:
            raise ValueError("scale_out.raw_topic and its dlq_topic must differ from the FHIR "
                             "topics (kafka.topic, kafka.routes)")
        return self

    @model_validator(mode="after")
    def _frames_fit_kafka(self) -> GatewaySettings:
        limit = self.kafka.max_request_size
        for n, ls in enumerate(self.listeners):
            if ls.max_frame_bytes > limit:
                raise ValueError(
                    f"listeners[{n}].max_frame_bytes ({ls.max_frame_bytes}) exceeds "
                    f"kafka.max_request_size ({limit}): such a message would be ACKed and "
                    "could never be published; lower max_frame_bytes, or raise "
                    "kafka.max_request_size with the broker's message.max.bytes and the "
                    "topics' max.message.bytes (docs/configuration.md)")
        return self


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> GatewaySettings:
    """Read and validate a config file; raise ConfigError naming file, line and field.

    Values written as ``${env:NAME}`` or ``${file:PATH}`` are read from the environment
    or from a file (secrets: see ``gateway.config_refs``) before validation.
    """
    env = os.environ if env is None else env
    doc = load_file(path, ConfigError, what="config file")
    if not isinstance(doc.data, dict):
        if doc.data is not None:
            raise ConfigError(f"{path}:1: the config file must be a mapping of settings")
        doc = YamlDocument(doc.where, {}, doc.root, doc.lines)
    data = resolve_references(doc, env)
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka = dict(data.get("kafka") or {})
        kafka["bootstrap_servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
        data["kafka"] = kafka
    try:
        return GatewaySettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(doc.describe(exc.errors(include_url=False), data=data)) from None
