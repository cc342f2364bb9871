"""OpenTelemetry tracing of one message's way, off by default and free while off.

One trace follows a message from its MLLP frame to the function: the frame and its spool
commit (gateway), the mapping and the Kafka record (publisher, after the ACK), the
delivery (bridge) and the processing (function). The links between the hops:

- intake to publisher: the frame span's W3C ``traceparent`` is stored with the spool row
  (column ``messages.traceparent``), so the publish spans, which run later and after a
  restart too, join the intake's trace;
- publisher to bridge: the record carries ``traceparent`` as a CloudEvents extension
  attribute (the CloudEvents distributed-tracing extension: header ``ce_traceparent``);
- bridge to function: the POST carries the W3C ``traceparent`` header of the bridge's
  delivery span (``ce-traceparent`` still names the record's producer, as the extension
  must not change in transit); the function continues from the W3C header, else from the
  extension (a Kafka event-source invocation has only the extension).

While tracing is off (the default) nothing of OpenTelemetry is imported and every helper
here returns at its first line: the function's cold start and the intake path pay nothing.
When it is on, spans go to an OTLP/HTTP collector through a batching processor.

Span attributes come from :data:`ALLOWED_ATTRIBUTES` only (ids, types, sizes, outcomes:
the same things the logs carry); any other key is dropped, so a name, an MRN or a body
cannot reach a trace backend by a slip at a call site.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from connectors.errors import ConnectorError

if TYPE_CHECKING:
    from connectors.settings import TracingSettings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"

# What a span may say: opaque ids, message types, sizes, places in Kafka and outcomes.
ALLOWED_ATTRIBUTES = frozenset({
    "hl7gw.listener", "hl7gw.bytes", "hl7gw.ack_code", "hl7gw.event_id",
    "hl7gw.message_type", "hl7gw.sender", "hl7gw.control_id", "hl7gw.spool_row",
    "hl7gw.outcome", "hl7gw.batch_size", "hl7gw.attempts", "hl7gw.resources",
    "hl7gw.error_class", "hl7gw.processor",
    "messaging.system", "messaging.operation.type", "messaging.destination.name",
    "messaging.destination.partition.id", "messaging.kafka.offset",
    "messaging.message.id", "messaging.consumer.group.name",
    "http.request.method", "http.response.status_code", "url.path",
    "cloudevents.event_id", "cloudevents.event_type",
})


class _Tracing:
    """The live tracer and its provider (exists only while tracing is on)."""

    def __init__(self, tracer: Any, provider: Any, kinds: dict[str, Any]) -> None:
        self.tracer = tracer
        self.provider = provider
        self.kinds = kinds


_on: _Tracing | None = None


def enabled() -> bool:
    """Whether spans are being recorded in this process."""
    return _on is not None


def configure(settings: TracingSettings | None, *, service_name: str,
              exporter: Any = None) -> bool:
    """Turn tracing on when ``settings.enabled`` (or an ``exporter`` is given); True if on.

    ``exporter``: a span exporter to use instead of OTLP (tests pass an in-memory one);
    it gets every span as it ends. Calling this again replaces the earlier set-up.
    """
    global _on
    if exporter is None and (settings is None or not settings.enabled):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace import SpanKind
    except ImportError as exc:
        raise ConnectorError(f"tracing is enabled but OpenTelemetry is not installed "
                             f"({exc.name}); install hl7gw[tracing], or turn tracing "
                             "off") from None

    shutdown()
    ratio = settings.sample_ratio if settings is not None else 1.0
    name = (settings.service_name if settings is not None else None) or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}),
                              sampler=ParentBased(TraceIdRatioBased(ratio)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        assert settings is not None
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings)))
    kinds = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER,
             "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
             "consumer": SpanKind.CONSUMER}
    _on = _Tracing(provider.get_tracer("hl7gw"), provider, kinds)
    log.info("tracing on", extra={"service": name, "sample_ratio": ratio,
                                  "endpoint": settings.endpoint if settings else "memory"})
    return True


def _otlp_exporter(settings: TracingSettings) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {k: v.get_secret_value() for k, v in settings.headers.items()} or None
    # endpoint None: the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else localhost
    return OTLPSpanExporter(endpoint=settings.endpoint, headers=headers,
                            timeout=settings.timeout_s)


def flush(timeout_s: float = 5.0) -> None:
    """Export the spans buffered so far (a no-op while off).

    For AWS Lambda, which freezes the process between invocations: a batch waiting for
    its timer would leave only when the next invocation thaws it, or never.
    """
    if _on is not None:
        _on.provider.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Export what is buffered and turn tracing off (a no-op while it is off)."""
    global _on
    on, _on = _on, None
    if on is not None:
        on.provider.shutdown()


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {k: v for k, v in attributes.items() if k in ALLOWED_ATTRIBUTES and v is not None}


def _context(traceparent: str | None) -> Any:
    """An OpenTelemetry context whose parent is ``traceparent`` (None: the current one)."""
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


@contextlib.contextmanager
def span(name: str, *, kind: str = "internal", parent: str | None = None,
         attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span around the block, current inside it; yields None while tracing is off.

    ``parent``: a W3C traceparent to continue (else the current span is the parent).
    """
    on = _on
    if on is None:
        yield None
        return
    # OpenTelemetry would record an exception's message, which may quote the data: only
    # its class is kept (fail()).
    with on.tracer.start_as_current_span(name, context=_context(parent), kind=on.kinds[kind],
                                         attributes=_attributes(attributes),
                                         record_exception=False,
                                         set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            fail(current, exc)
            raise


def start(name: str, *, kind: str = "internal", parent: str | None = None,
          attributes: Mapping[str, Any] | None = None, start_time: int | None = None) -> Any:
    """A started span that is not made current (end it with :func:`end`); None while off."""
    on = _on
    if on is None:
        return None
    return on.tracer.start_span(name, context=_context(parent), kind=on.kinds[kind],
                                attributes=_attributes(attributes), start_time=start_time)


def set_attributes(current: Any, attributes: Mapping[str, Any]) -> None:
    """Add allowed attributes to a span from :func:`span` or :func:`start` (None: no-op)."""
    if current is not None:
        current.set_attributes(_attributes(attributes))


def end(current: Any, *, error: BaseException | str | None = None,
        end_time: int | None = None) -> None:
    """End a span from :func:`start`, marked as an error when ``error`` is given."""
    if current is None:
        return
    if error is not None:
        fail(current, error)
    current.end(end_time=end_time)


def fail(current: Any, error: BaseException | str) -> None:
    """Mark a span as failed, naming only the error's class (messages may quote data)."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    what = error if isinstance(error, str) else type(error).__name__
    current.set_status(Status(StatusCode.ERROR, what))
    current.set_attribute("hl7gw.error_class", what)


def traceparent_of(current: Any) -> str | None:
    """The W3C traceparent naming ``current`` (a span), or None."""
    if current is None:
        return None
    ctx = current.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span; None while off or outside a span."""
    if _on is None:
        return None
    from opentelemetry.trace import get_current_span

    return traceparent_of(get_current_span())


def http_headers() -> dict[str, str]:
    """``{"traceparent": ...}`` for an outgoing request from the current span ({} if off)."""
    found = current_traceparent()
    return {TRACEPARENT: found} if found else {}
