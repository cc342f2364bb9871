"""Results flowing back: a function's FHIR answer as a CloudEvent on the outbound topic.

A function that computes something for the EHR (a NEWS2 score, a checked lab result, a
document) answers the event that caused it with a FHIR resource or Bundle. The bridge
publishes that answer to ``outbound_topic`` (default ``hl7.outbound``); a function run
from a Kafka trigger (a Lambda event source mapping) publishes it itself with
:func:`publish_result`. Either way the event is built here, so both are the same:

- ``id``: ``<cause id>.result``: deterministic, so a cause delivered twice (at-least-once)
  gives a result with the same id, which the gateway's outbound queue takes once, and the
  HL7 v2 message sent for it carries the same MSH-10 on every resend;
- ``causationid`` extension: the id of the event that caused it;
- key and ``subject``: the cause's (the Patient id), so a patient's results stay in order
  on one partition, like the events they answer;
- ``content-type: application/fhir+json``, binary mode, as every event of the gateway.

No PHI outside ``data``: the attributes carry ids and types only.
"""

from __future__ import annotations

from typing import Any

import orjson

from connectors.errors import InvalidEvent
from connectors.events import FHIR_JSON, Event, is_json_media_type
from connectors.kafka import EventProducer

DEFAULT_OUTBOUND_TOPIC = "hl7.outbound"
CAUSATION_ID = "causationid"
RESULT_SUFFIX = ".result"


def result_type(resource: dict[str, Any]) -> str:
    """``hl7gw.result.<resource type>`` (``bundle`` for a Bundle), lower case."""
    return f"hl7gw.result.{str(resource.get('resourceType', 'unknown')).lower()}"


def result_event(cause: Event, resource: dict[str, Any] | bytes, *,
                 source: str | None = None) -> Event:
    """The CloudEvent carrying ``resource`` as the answer to ``cause``.

    ``resource`` may be the parsed resource or its JSON bytes (the bridge passes the HTTP
    body as it came). Raises :class:`InvalidEvent` when it is not a FHIR resource.
    """
    data, parsed = _as_resource(resource)
    return Event.new(id=cause.id + RESULT_SUFFIX, source=source or cause.source,
                     type=result_type(parsed), subject=cause.subject, key=cause.key,
                     data=data, content_type=FHIR_JSON,
                     extensions={CAUSATION_ID: cause.id})


def fhir_answer(content_type: str | None, body: bytes) -> bytes | None:
    """``body`` when an HTTP answer is a FHIR resource (JSON with ``resourceType``), else None.

    The function app answers plain JSON status objects too (``{"status": "accepted"}``);
    only a body whose media type is JSON and that parses to an object with a
    ``resourceType`` is a result.
    """
    if not body or not is_json_media_type(content_type or ""):
        return None
    try:
        _as_resource(body)
    except InvalidEvent:
        return None
    return body


async def publish_result(producer: EventProducer, cause: Event,
                         resource: dict[str, Any] | bytes, *,
                         topic: str = DEFAULT_OUTBOUND_TOPIC,
                         source: str | None = None) -> Event:
    """Publish the answer to ``cause`` and wait for Kafka's acknowledgement.

    For functions triggered from Kafka, which have no bridge to do it for them::

        producer = EventProducer(KafkaSettings(bootstrap_servers=...))  # module scope
        await producer.start()
        ...
        await publish_result(producer, event, bundle, topic="hl7.outbound")

    Raises :class:`~connectors.errors.PublishError` (``retriable`` says whether to try
    again: the same cause gives the same result id, so a retry cannot double it).
    """
    event = result_event(cause, resource, source=source)
    await producer.send(topic, event)
    return event


def _as_resource(resource: dict[str, Any] | bytes) -> tuple[bytes, dict[str, Any]]:
    if isinstance(resource, dict):
        parsed = resource
        data = orjson.dumps(resource)
    else:
        data = resource
        try:
            parsed = orjson.loads(resource)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("a result must be a FHIR resource in JSON") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("resourceType"), str):
        raise InvalidEvent("a result must be a FHIR resource (a JSON object with resourceType)")
    return data, parsed


class KafkaResults:
    """A result sink for Kafka-triggered functions: publishes each answer to ``topic``.

    The producer starts on first use and lives as long as the process (warm invocations
    reuse it). Built from the environment by ``connectors.cloud.select.results_from_env``
    (``HL7GW_OUTBOUND_TOPIC`` and ``KAFKA_BOOTSTRAP_SERVERS``).
    """

    def __init__(self, producer: EventProducer, topic: str = DEFAULT_OUTBOUND_TOPIC, *,
                 source: str | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.source = source

    async def __call__(self, cause: Event, resource: dict[str, Any]) -> None:
        """Publish ``resource`` as the answer to ``cause``; raises PublishError."""
        if not self.producer.started:
            await self.producer.start()
        await publish_result(self.producer, cause, resource, topic=self.topic,
                             source=self.source)
