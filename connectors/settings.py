"""Settings for the connectors, validated at start-up (unknown keys are errors).

``KafkaSettings``: ``bootstrap_servers``, ``topic`` ("hl7.fhir"), ``client_id`` ("hl7gw"),
``linger_ms`` (5), ``request_timeout_ms`` (30000), ``max_request_size`` (1 MiB),
``security_protocol`` ("PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"),
``sasl_mechanism`` ("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"), ``sasl_username``,
``sasl_password``, ``ssl_cafile``, ``ssl_certfile``, ``ssl_keyfile``.

``BridgeSettings``: ``topic`` ("hl7.fhir"), ``group_id`` ("hl7gw-bridge"), ``target_url``,
``timeout_s`` (10), ``max_attempts`` (5), ``backoff_initial_s`` (0.5), ``backoff_max_s``
(30), ``retry_after_max_s`` (120), ``dlq_topic`` (``"<topic>.dlq"``; ``null`` turns
dead-lettering off, and then an undeliverable event stops the bridge), ``outbound_topic``
("hl7.outbound": where a function's FHIR answer is published; ``null``: not), ``headers`` (extra
request headers such as API keys; kept as secrets so they never show in logs or reprs),
``max_batch`` (20 records per poll), ``drain_timeout_s`` (8: how long a stop or a
rebalance waits for the records in flight; with 2 s to exit, ``hl7gw bridge`` stops
within 10 s), ``queue_size`` (100 records buffered per
partition; a full partition is paused until half of them are done), ``auth`` (how
requests to the target are authenticated, or ``null``; one of the models below, chosen by
its ``type``), ``http`` (``ProbeSettings``: ``enabled`` (true), ``host`` ("127.0.0.1"),
``port`` (8081): the bridge's ``/healthz``, ``/readyz`` and ``/metrics``).

``TracingSettings``: ``enabled`` (false), ``endpoint`` (OTLP/HTTP), ``service_name``,
``sample_ratio`` (1.0), ``headers``, ``timeout_s`` (10).

Bridge auth (``BridgeSettings.auth``): ``ApiKeyAuth`` (``type: api_key``, ``header``
("x-api-key"), ``value``); ``AwsSigV4Auth`` (``type: aws_sigv4``, ``region``, ``service``
("lambda"), optional ``access_key_id`` / ``secret_access_key`` / ``session_token``, else
botocore's default credential chain); ``OidcAuth`` (``type: oidc``, ``token_url``,
``client_id``, ``client_secret``, ``audience``, ``scope``, ``refresh_margin_s`` (30));
``AzureFunctionKeyAuth`` (``type: azure_function_key``, ``key``). Secrets are SecretStr.

``FhirWriterSettings``: ``base_url``, ``timeout_s`` (10), ``max_attempts`` (4),
``backoff_initial_s`` (0.2), ``backoff_max_s`` (5).

``AlertSettings``: ``sink_url`` (where alert CloudEvents are POSTed), ``source``
("urn:hl7gw:alerts"), ``timeout_s`` (10).

``FunctionSettings``: ``host`` ("127.0.0.1"), ``port`` (8080), ``dedupe_capacity``
(10000 ids), ``max_events`` (1000 kept by the sample ``MemoryStore``), ``max_body_bytes``
(10 MiB).

These are plain pydantic models: the gateway's configuration loader reads a file and passes
them in; nothing here reads the environment. Secrets (``sasl_password``, the auth secrets,
``headers``) reach these models already read: the loader replaces ``${env:NAME}`` and
``${file:PATH}`` values before validation (``gateway.config_refs``).
"""

from __future__ import annotations

import ssl
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Headers the bridge sets itself; a configured header may not replace them.
_RESERVED_HEADERS = ("content-type", "content-length", "idempotency-key", "host",
                     "traceparent", "tracestate")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicRoute(_Strict):
    """Send matching events to ``topic``: by message type (``ADT^*`` matches every ADT
    event) and/or by a resource type the Bundle contains. Both given: both must match."""

    topic: str = Field(min_length=1)
    message_types: list[str] = Field(default_factory=list)
    resource_types: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_a_condition(self) -> TopicRoute:
        if not self.message_types and not self.resource_types:
            raise ValueError("a route needs message_types or resource_types")
        return self

    def matches(self, message_type: str, resource_types: frozenset[str]) -> bool:
        """True when an event of this message type with these resources takes the route."""
        if self.message_types and not any(
                t == message_type or (t.endswith("^*") and message_type.startswith(t[:-1]))
                for t in self.message_types):
            return False
        return not self.resource_types or bool(resource_types.intersection(self.resource_types))


class KafkaSettings(_Strict):
    """How to reach Kafka; shared by the producer, the bridge's consumer and its DLQ."""

    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(default="hl7.fhir", min_length=1)  # events no route claims
    routes: list[TopicRoute] = Field(default_factory=list)  # first match wins
    raw_topic: str | None = None  # also publish each message's raw HL7 v2 bytes here
    client_id: str = Field(default="hl7gw", min_length=1)
    linger_ms: int = Field(default=5, ge=0)
    request_timeout_ms: int = Field(default=30000, gt=0)
    max_request_size: int = Field(default=1048576, gt=0)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @model_validator(mode="after")
    def _security_is_consistent(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        sasl_fields = (self.sasl_mechanism, self.sasl_username, self.sasl_password)
        if sasl and None in sasl_fields:
            raise ValueError(f"{self.security_protocol} needs sasl_mechanism, sasl_username "
                             "and sasl_password")
        if not sasl and any(f is not None for f in sasl_fields):
            raise ValueError(f"sasl_* settings need a SASL_* security_protocol, "
                             f"not {self.security_protocol}")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError("ssl_* settings need security_protocol SSL or SASL_SSL")
        return self

    def topic_for(self, message_type: str, resource_types: frozenset[str]) -> str:
        """The topic of a FHIR event: the first matching route's, else ``topic``."""
        for route in self.routes:
            if route.matches(message_type, resource_types):
                return route.topic
        return self.topic

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by aiokafka's producer and consumer constructors."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self.ssl_context()
        if self.sasl_mechanism is not None and self.sasl_password is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying TLS context from the configured CA and client certificate files."""
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context


def _check_http_url(value: str, name: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ValueError(f"{name} must be an absolute http:// or https:// URL")
    return value


class ApiKeyAuth(_Strict):
    """A static API key sent in one request header (API Gateway's ``x-api-key``)."""

    type: Literal["api_key"]
    header: str = Field(default="x-api-key", min_length=1)
    value: SecretStr


class AwsSigV4Auth(_Strict):
    """AWS Signature Version 4 (IAM-authorised function URLs and API Gateway)."""

    type: Literal["aws_sigv4"]
    region: str = Field(min_length=1)
    service: str = Field(default="lambda", min_length=1)
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> AwsSigV4Auth:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together (or neither, "
                             "for the default credential chain)")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        return self


class OidcAuth(_Strict):
    """An OAuth 2.0 client-credentials bearer token, cached until shortly before expiry."""

    type: Literal["oidc"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    audience: str | None = None
    scope: str | None = None
    refresh_margin_s: float = Field(default=30.0, ge=0)

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value, "token_url")


class AzureFunctionKeyAuth(_Strict):
    """An Azure Functions key, sent as ``x-functions-key``."""

    type: Literal["azure_function_key"]
    key: SecretStr


AuthSettings = Annotated[ApiKeyAuth | AwsSigV4Auth | OidcAuth | AzureFunctionKeyAuth,
                         Field(discriminator="type")]


class ProbeSettings(_Strict):
    """A process's own HTTP port for ``/healthz``, ``/readyz`` and ``/metrics``."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)  # 0: any free port


class TracingSettings(_Strict):
    """OpenTelemetry tracing (``connectors.tracing``): off unless ``enabled``.

    ``endpoint``: the OTLP/HTTP traces URL (``http://collector:4318/v1/traces``); unset,
    the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``
    variables apply, else ``http://localhost:4318/v1/traces``. ``headers``: sent with each
    export (a vendor's API key; kept secret). ``sample_ratio``: the share of new traces
    kept (a trace continued from a sampled parent is always kept).
    """

    enabled: bool = False
    endpoint: str | None = None
    service_name: str | None = None  # default: hl7gw-gateway, hl7gw-bridge, hl7gw-function
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value, "endpoint")


class BridgeSettings(_Strict):
    """What the bridge consumes and where it delivers, with its retry and DLQ policy."""

    topic: str = Field(default="hl7.fhir", min_length=1)
    group_id: str = Field(default="hl7gw-bridge", min_length=1)
    target_url: str
    timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    retry_after_max_s: float = Field(default=120.0, ge=0)
    dlq_topic: str | None = None
    # A 200/201 answer that is a FHIR resource is a result for the EHR: published here
    # (connectors.results; the gateway's outbound consumer reads it). null: not published.
    outbound_topic: str | None = Field(default="hl7.outbound", min_length=1)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    max_batch: int = Field(default=20, ge=1)
    drain_timeout_s: float = Field(default=8.0, ge=0)
    queue_size: int = Field(default=100, ge=1)
    # Offsets are committed when a partition's queue runs empty, and at least this often
    # while it is busy: a crash redelivers at most this much (deduped by ce-id downstream).
    commit_interval_s: float = Field(default=1.0, ge=0)
    auth: AuthSettings | None = None
    # /healthz, /readyz and /metrics of the bridge process (docs/observability.md)
    http: ProbeSettings = Field(default_factory=ProbeSettings)

    @model_validator(mode="before")
    @classmethod
    def _default_dlq_topic(cls, data: Any) -> Any:
        # "<topic>.dlq" unless the key is present; an explicit null turns the DLQ off.
        if isinstance(data, dict) and "dlq_topic" not in data:
            data = {**data, "dlq_topic": f"{data.get('topic', 'hl7.fhir')}.dlq"}
        return data

    @field_validator("target_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value, "target_url")

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            lname = name.lower()
            if lname in _RESERVED_HEADERS or lname.startswith("ce-"):
                raise ValueError(f"header {name!r} is set by the bridge and cannot be configured")
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> BridgeSettings:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        if self.dlq_topic is not None and self.dlq_topic == self.topic:
            raise ValueError("dlq_topic must differ from topic")
        return self


class FunctionSettings(_Strict):
    """The serverless function app: where it listens and how much it remembers."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    dedupe_capacity: int = Field(default=10000, ge=1)
    max_events: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)


class FhirWriterSettings(_Strict):
    """The FHIR server writer processor: where transaction Bundles go and how to retry."""

    base_url: str
    timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    backoff_initial_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=5.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value, "base_url").rstrip("/")


class AlertSettings(_Strict):
    """The remote-monitoring alert processor's HTTP sink."""

    sink_url: str
    source: str = Field(default="urn:hl7gw:alerts", min_length=1)
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("sink_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value, "sink_url")
