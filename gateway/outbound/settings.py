"""Settings of the return path: the outbound topic and the EHR destinations it feeds.

Nested in ``gateway.config.GatewaySettings.outbound``; a ``ValueError`` raised here comes
out of the config loader as ``file:line: field: message``.
"""

from __future__ import annotations

import ssl

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.mllp.settings import ExistingFile, client_context

OUTBOUND_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientTlsSettings(_Strict):
    """TLS towards a destination: its CA (else the system's), and a client certificate for
    mutual TLS. ``insecure`` skips checking the server (tests only)."""

    cafile: ExistingFile | None = None
    certfile: ExistingFile | None = None
    keyfile: ExistingFile | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _loadable(self) -> ClientTlsSettings:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("give certfile and keyfile together (the client certificate)")
        try:
            self.context()
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot load certificate, key or CA: {exc}") from None
        return self

    def context(self) -> ssl.SSLContext:
        """The client SSL context these settings describe."""
        return client_context(cafile=self.cafile, certfile=self.certfile, keyfile=self.keyfile,
                              insecure=self.insecure)


class DestinationSettings(_Strict):
    """One system results are sent to over MLLP: its own connection, queue and order."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    tls: ClientTlsSettings | None = None
    version: str = "2.5.1"  # MSH-12 of what is sent
    profile: ExistingFile | None = None  # destination profile (docs/outbound-mapping.md)
    message_types: list[str] | None = None  # e.g. [ORU^R01, "ADT^*"]; None: every type
    sending_application: str = "HL7GW"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    ack_timeout_s: float = Field(default=30.0, gt=0)  # no matching ACK by then: resend
    max_attempts: int = Field(default=10, ge=1)  # AE/timeouts past this: failed
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _known_version(self) -> DestinationSettings:
        if self.version not in OUTBOUND_VERSIONS:
            raise ValueError(f"version {self.version!r}: choose one of "
                             f"{', '.join(OUTBOUND_VERSIONS)}")
        return self

    def takes(self, message_type: str) -> bool:
        """True when this destination receives messages of ``message_type`` (``ORU^R01``)."""
        if self.message_types is None:
            return True
        return any(t == message_type or (t.endswith("^*") and message_type.startswith(t[:-1]))
                   for t in self.message_types)


class OutboundSettings(_Strict):
    """Results from the cloud back to the EHR: consumed from ``topic``, queued durably in
    the spool, sent to each destination that takes their message type (docs/outbound.md)."""

    topic: str = Field(default="hl7.outbound", min_length=1)
    group_id: str = Field(default="hl7gw-outbound", min_length=1)
    destinations: list[DestinationSettings] = Field(default_factory=list)
    retain_sent_hours: float = Field(default=168, ge=0)  # then pruned with the spool

    @model_validator(mode="after")
    def _unique_names(self) -> OutboundSettings:
        seen: set[str] = set()
        for dest in self.destinations:
            if dest.name in seen:
                raise ValueError(f"two destinations are named {dest.name!r}; names must differ")
            seen.add(dest.name)
        return self

