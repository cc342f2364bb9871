"""EventProducer against the real broker: acked sends, CloudEvents headers, keyed order."""

from __future__ import annotations

import asyncio
import socket

import pytest

from connectors.errors import PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.settings import KafkaSettings
from tests.integration.conftest import bounded, read_records

pytestmark = pytest.mark.integration



def event(n: int, key: bytes) -> Event:
    return Event.new(source="urn:hl7gw:test", type="org.hl7gw.adt.a01", key=key,
                     subject=f"Patient/{key.decode()}", id=f"{key.decode()}-{n:03d}",
                     data=b'{"resourceType":"Bundle","type":"transaction","entry":[]}',
                     extensions={"seq": str(n)})


@bounded(60)
async def test_send_waits_for_the_ack_and_writes_binary_cloudevents(
        kafka_bootstrap: str, kafka_topic: str) -> None:
    sent = event(1, b"patient-a")
    async with EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as producer:
        partition, offset = await producer.send(kafka_topic, sent)
    assert partition >= 0 and offset == 0
    [record] = await read_records(kafka_bootstrap, kafka_topic, 1)
    assert (record.partition, record.offset) == (partition, offset)
    assert record.key == b"patient-a"
    headers = dict(record.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == b"patient-a-001"
    assert headers["ce_partitionkey"] == b"patient-a"
    assert headers["content-type"] == b"application/fhir+json"
    assert Event.from_kafka(record.key, record.value, record.headers) == sent


@bounded(90)
async def test_same_key_keeps_one_partition_in_send_order(
        kafka_bootstrap: str, kafka_topic: str) -> None:
    keys = [b"patient-a", b"patient-b", b"patient-c"]
    acks: dict[bytes, list[tuple[int, int]]] = {key: [] for key in keys}
    async with EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as producer:
        for n in range(10):
            for key in keys:
                acks[key].append(await producer.send(kafka_topic, event(n, key)))
    for key in keys:
        assert len({partition for partition, _ in acks[key]}) == 1
        offsets = [offset for _, offset in acks[key]]
        assert offsets == sorted(offsets)
    records = await read_records(kafka_bootstrap, kafka_topic, 30)
    for key in keys:
        seqs = [int(dict(r.headers)["ce_seq"]) for r in records if r.key == key]
        assert seqs == list(range(10))


@bounded(60)
async def test_concurrent_sends_all_acked(kafka_bootstrap: str, kafka_topic: str) -> None:
    async with EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as producer:
        acks = await asyncio.gather(*(producer.send(kafka_topic, event(n, b"p"))
                                      for n in range(50)))
    assert len(set(acks)) == 50


@bounded(60)
async def test_record_too_large_is_not_retriable(kafka_bootstrap: str, kafka_topic: str) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, max_request_size=1024)
    big = Event.new(source="urn:s", type="t", data=b"x" * 4096)
    async with EventProducer(settings) as producer:
        with pytest.raises(PublishError) as caught:
            await producer.send(kafka_topic, big)
        assert caught.value.retriable is False
        assert caught.value.cause == "MessageSizeTooLargeError"
        assert (await producer.send(kafka_topic, event(1, b"p")))[1] == 0  # still usable


@bounded(60)
async def test_unreachable_broker_is_a_retriable_publish_error() -> None:
    with socket.socket() as sock:  # a port that refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    producer = EventProducer(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}",
                                           request_timeout_ms=2000))
    with pytest.raises(PublishError) as caught:
        await producer.start()
    assert caught.value.retriable is True
    await producer.stop()


@bounded(60)
async def test_stop_is_idempotent(kafka_bootstrap: str, kafka_topic: str) -> None:
    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await producer.start()
    await producer.send(kafka_topic, event(1, b"p"))
    await producer.stop()
    await producer.stop()
    with pytest.raises(PublishError, match="not started"):
        await producer.send(kafka_topic, event(2, b"p"))


@bounded(60)
async def test_send_batch_pipelines_and_keeps_order(kafka_bootstrap: str,
                                                     kafka_topic: str) -> None:
    batch = [event(n, key) for n in range(40) for key in (b"p-1", b"p-2")]
    async with EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as producer:
        results = await producer.send_batch(kafka_topic, batch)
    assert all(isinstance(r, tuple) for r in results)
    for key in (b"p-1", b"p-2"):
        acks = [r for e, r in zip(batch, results, strict=True)
                if e.key == key and isinstance(r, tuple)]
        assert len(acks) == 40 and len({partition for partition, _ in acks}) == 1
        offsets = [offset for _, offset in acks]
        assert offsets == sorted(offsets)
    records = await read_records(kafka_bootstrap, kafka_topic, 80)
    for key in (b"p-1", b"p-2"):
        assert [int(dict(r.headers)["ce_seq"]) for r in records if r.key == key] == list(
            range(40))


@bounded(60)
async def test_ping_answers_while_the_broker_does(kafka_bootstrap: str) -> None:
    from connectors.kafka.errors import KafkaClientError

    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    with pytest.raises(KafkaClientError) as caught:  # not started: nothing to ask with
        await producer.ping(1.0)
    assert caught.value.retriable
    async with producer:
        await producer.ping(5.0)
    with pytest.raises(KafkaClientError):
        await producer.ping(1.0)  # stopped

