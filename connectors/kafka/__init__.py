"""Kafka side of the connectors: the idempotent :class:`EventProducer`."""

from connectors.kafka.producer import EventProducer

__all__ = ["EventProducer"]
