"""The return path: FHIR results from the cloud back to the EHR as HL7 v2 over MLLP.

Functions answer events with FHIR results; the bridge (or the function itself) publishes
them to the outbound topic (:mod:`connectors.results`). In the gateway, on premises:

- :mod:`~gateway.outbound.consumer`: consumes that topic, renders each result for every
  destination that takes its type, queues the messages durably in the spool, then
  commits the offsets;
- :mod:`~gateway.outbound.sender`: one sender per destination sends its queue in order,
  crediting a message only on the ACK whose MSA-2 is its MSH-10;
- :mod:`~gateway.outbound.render`: the destination's version, profile and MSH names over
  the FHIR -> v2 specs (:mod:`mappers.outbound`);
- :mod:`~gateway.outbound.settings`: the ``outbound:`` section of the config.

:class:`~gateway.outbound.service.OutboundService` runs them in the gateway's loop
(docs/outbound.md). This package's ``__init__`` imports nothing, so the config loader can
read :mod:`~gateway.outbound.settings` without the mapper and Kafka clients.
"""
