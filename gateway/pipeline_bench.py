"""``hl7gw bench pipeline``: MLLP in -> spool -> ACK -> map -> Kafka, the whole way, timed.

Senders in a process of their own (as a hospital's interface engine is), each waiting for
its ACK before sending the next message, feed the real gateway
(:class:`~gateway.service.GatewayService`: default settings, a temporary spool, the
default mapping workers) publishing to a real broker, on a fresh topic. Every message is
distinct (its own MSH-10, and its patient one of :data:`PATIENTS`), so none is taken for a
resend and the records spread over the topic's partitions as a hospital's do.

Where the clocks come from (one machine, so one wall clock for all):

- **ACKed**: the senders stamp each message when it is sent and when its ACK arrives;
  ACKed msg/s runs from the first send to the last ACK.
- **Published**: from the producer's acknowledgements, as the gateway saw them: a row's
  ``published_at`` in the spool is written once the broker acknowledged every record made
  from it (``acks=all``), so it is the moment the gateway counts the message as
  delivered. Published msg/s runs from the first send to the last ``published_at`` of the
  run's rows; the publish lag of a message is its ``published_at`` minus its ACK time.
- **Broker**: a consumer reads the topic back after the run. The topic is created with
  ``message.timestamp.type=LogAppendTime``, so each record's timestamp is when the broker
  appended it (just before its ack). It gives the records seen, the duplicates (a second
  record with an event id already seen: at-least-once delivery after a retry) and a
  second lag figure, ACK to broker append, which leaves out the gateway's own bookkeeping
  after the ack. Records carry their spool row in the ``ce_hl7spoolrow`` header.

A warm-up of :data:`WARMUP` messages goes first, through the same gateway and topic, and
is left out of every figure (its rows are not the run's): the figures are the sustained
pipeline, not the mapping worker's first import.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.ack import ack_code_of
from gateway.cpu_time import cpu_bound, cpu_seconds, listening_pid, usable_cores
from gateway.errors import GatewayError
from gateway.mllp.client import MllpClient
from gateway.pipeline_figures import (
    Acked,
    Record,
    Settled,
    account,
)

if TYPE_CHECKING:  # the senders' process imports this module: it needs only the client
    from gateway.config import GatewaySettings
    from gateway.service import GatewayService
    from gateway.spool import Spool

PARTITIONS = 3
PATIENTS = 500
WARMUP = 50
SETTLE_TIMEOUT_S = 120.0  # after the last ACK, for the publisher to catch up
SPOOL_ROW_HEADER = "ce_hl7spoolrow"
EVENT_ID_HEADER = "ce_id"
LOG_APPEND_TIME = 1  # aiokafka's timestamp_type for a broker-stamped record

Progress = Callable[[int], None]  # told the run's published rows so far
# CPU seconds so far: this process, the mapping workers, the local broker (None: unknown)
_Cpu = tuple[float, float | None, float | None]


class PipelineBenchError(GatewayError):
    """The pipeline bench could not run (the gateway did not start, or Kafka is away)."""


def numbered(sample: bytes, tag: str, n: int) -> bytes:
    """``sample`` with MSH-10 ``<tag><n>`` and PID-3.1 one of :data:`PATIENTS` ids."""
    sep = sample[3:4] or b"|"
    component = sample[4:5] or b"^"
    out = []
    for segment in sample.rstrip(b"\r").split(b"\r"):
        fields = segment.split(sep)
        if segment.startswith(b"MSH") and len(fields) > 9:
            fields[9] = control_id(tag, n).encode()
        elif segment.startswith(b"PID") and len(fields) > 3:
            _, cut, rest = fields[3].partition(component)
            fields[3] = f"PB{n % PATIENTS:06d}".encode() + cut + rest
        out.append(sep.join(fields))
    return b"\r".join(out) + b"\r"


def control_id(tag: str, n: int) -> str:
    """The MSH-10 that :func:`numbered` gives message ``n``."""
    return f"{tag}{n:08d}"


async def run_pipeline_bench(bootstrap: str, sample: bytes, count: int, connections: int,
                             *, progress: Progress | None = None,
                             settle_timeout: float = SETTLE_TIMEOUT_S,
                             warmup: int = WARMUP) -> dict[str, Any]:
    """Run ``count`` messages (``sample`` renumbered) through a real gateway; the figures."""
    from gateway.service import GatewayService

    run = uuid.uuid4().hex[:8]
    topic = f"bench-pipeline-{run}"
    await create_topic(bootstrap, topic)
    tag = f"P{run[:4].upper()}"
    with tempfile.TemporaryDirectory(prefix="hl7gw-pipeline-") as tmp:
        settings = _settings(Path(tmp), bootstrap, topic)
        async with GatewayService(settings, http=False) as gateway:
            await _wait_connected(gateway)
            port = gateway.listeners[0].port
            assert port is not None
            if warmup:
                await _send(port, sample, f"W{run[:4].upper()}", warmup,
                            min(connections, warmup))
                await _wait_settled(gateway, topic, warmup, settle_timeout)
            workers, broker = gateway.mapping.worker_pids(), local_broker_pid(bootstrap)
            cpu_before = _cpu_now(workers, broker)
            acks, senders_cpu = await _send(port, sample, tag, count, connections)
            accepted = sum(a.code in ("AA", "CA") for a in acks)
            await _wait_settled(gateway, topic, warmup + accepted, settle_timeout,
                                progress, warmup)
            cpu = _per_message(cpu_before, _cpu_now(workers, broker), senders_cpu, count)
            rows = await _settled(gateway.spool, count + warmup)
        records = await read_topic(bootstrap, topic)
    figures = account(acks, rows, records)
    return {"sample_messages": count, "connections": connections, "topic": topic,
            "partitions": PARTITIONS, "patients": PATIENTS, "warmup": warmup,
            "mapping_workers": settings.mapping_workers, "cores": usable_cores(),
            "broker_timestamps": _stamps(records),
            **figures.as_dict(), **cpu}


def _per_message(before: _Cpu, after: _Cpu, senders: float, count: int
                 ) -> dict[str, float | None]:
    """CPU per message during the run: the gateway's process (event loop, its threads),
    the mapping workers, the senders and the local broker (None when not measured), their
    sum, and the most msg/s that sum allows on this machine's cores (``cpu_bound``).
    Steadier than msg/s on a shared machine: other load slows a run down but does not add
    to its CPU time."""
    def per(i: int) -> float | None:
        a, b = after[i], before[i]
        return None if a is None or b is None else round((a - b) / count * 1e6, 1)

    gateway, mapping, broker = per(0), per(1), per(2)
    sender = round(senders / count * 1e6, 1)
    total = sum(x for x in (gateway, mapping, sender, broker) if x is not None)
    return {"gateway_cpu_us_per_msg": gateway, "mapping_cpu_us_per_msg": mapping,
            "senders_cpu_us_per_msg": sender, "broker_cpu_us_per_msg": broker,
            "total_cpu_us_per_msg": round(total, 1),
            "cpu_bound_msg_per_s": round(cpu_bound(usable_cores(), gateway or 0.0,
                                                   total - (gateway or 0.0)))}


def _cpu_now(workers: Sequence[int], broker: int | None) -> _Cpu:
    return (time.process_time(), cpu_seconds(workers),
            cpu_seconds([broker]) if broker is not None else None)


def local_broker_pid(bootstrap: str) -> int | None:
    """The broker's process when the first bootstrap server is on this machine."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    if host.strip("[]") not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        return None
    return listening_pid(int(port))


def _stamps(records: Sequence[Record]) -> str:
    if not records:
        return "none"
    return "log-append" if all(r.log_append for r in records) else "create-time"


def _settings(tmp: Path, bootstrap: str, topic: str) -> GatewaySettings:
    """The gateway as deployed (defaults), on a free port, a fresh spool and topic."""
    from connectors.settings import KafkaSettings
    from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings

    return GatewaySettings(source="urn:hl7gw:bench",
                           listeners=[ListenerSettings(name="bench", port=0)],
                           http=HttpSettings(port=0),
                           spool=SpoolSettings(path=tmp / "spool.db"),
                           kafka=KafkaSettings(bootstrap_servers=bootstrap, topic=topic))


async def create_topic(bootstrap: str, topic: str) -> None:
    """A fresh topic whose records carry the broker's append time."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        response = await admin.create_topics([NewTopic(
            topic, num_partitions=PARTITIONS, replication_factor=1,
            topic_configs={"message.timestamp.type": "LogAppendTime"})])
    except Exception as exc:
        raise PipelineBenchError(f"cannot create the bench topic on {bootstrap} "
                                 f"({type(exc).__name__}: {exc}); is Kafka running there? "
                                 "Unset KAFKA_BOOTSTRAP_SERVERS to start a local one") from exc
    finally:
        await admin.close()
    for _name, error_code, *detail in response.topic_errors:
        if error_code != 0:
            raise PipelineBenchError(f"Kafka refused to create the bench topic {topic!r}: "
                                     f"error {error_code} {detail}")


async def _wait_connected(gateway: GatewayService, within: float = 60.0) -> None:
    """Start the clock only once the producer is connected: the run measures throughput,
    not how long Kafka takes to answer a new client."""
    deadline = time.monotonic() + within
    while not gateway.producer.started:
        if time.monotonic() > deadline:
            raise PipelineBenchError(f"the gateway's producer did not connect to Kafka within "
                                     f"{within:g} s; check that the broker answers")
        await asyncio.sleep(0.05)


async def _send(port: int, sample: bytes, tag: str, count: int, connections: int,
                ) -> tuple[list[Acked], float]:
    """Run the senders in a process of their own; each message's times and ACK code, and
    the CPU seconds the senders spent."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    senders = ctx.Process(target=senders_main,
                          args=(port, sample, tag, count, connections, child), daemon=True)
    senders.start()
    child.close()
    loop = asyncio.get_running_loop()
    try:
        answer: tuple[list[tuple[int, float, float, str]], float] | str = \
            await loop.run_in_executor(None, parent.recv)
    except EOFError:
        answer = "the sender process exited without a result"
    await loop.run_in_executor(None, senders.join)
    if isinstance(answer, str):
        raise PipelineBenchError(f"the MLLP senders failed: {answer}")
    times, cpu = answer
    return [Acked(control_id(tag, n), sent, acked, code) for n, sent, acked, code in times], cpu


def senders_main(port: int, sample: bytes, tag: str, count: int, connections: int,
                 out: Any) -> None:
    """Child process: ``connections`` senders, each waiting for its ACK before the next.
    Sends ``(times, CPU seconds spent)`` down ``out``, or the error's text."""
    times: list[tuple[int, float, float, str]] = []

    async def sender(lane: int) -> None:
        async with MllpClient("127.0.0.1", port, timeout=60) as client:
            for n in range(lane, count, connections):
                message = numbered(sample, tag, n)
                sent = time.time()
                ack = await client.send(message)
                times.append((n, sent, time.time(), ack_code_of(ack.decode("latin-1"))))

    async def run() -> None:
        await asyncio.gather(*(sender(lane) for lane in range(connections)))

    cpu_before = time.process_time()
    try:
        asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        out.send(f"{type(exc).__name__}: {exc}")
    else:
        out.send((times, time.process_time() - cpu_before))
    out.close()


async def _wait_settled(gateway: GatewayService, topic: str, rows: int, within: float,
                        progress: Progress | None = None, warmup: int = 0) -> None:
    """Until ``rows`` rows were settled (published or failed), or ``within`` s passed.

    Counted from the gateway's metrics, not the spool: a query per poll would compete with
    the publisher for the event loop it measures. ``progress`` is told the published rows
    past the ``warmup`` ones.
    """
    registry = gateway.registry
    deadline = time.monotonic() + within
    shown = 0
    while time.monotonic() < deadline:
        published = int(registry.get_sample_value("hl7gw_published_total",
                                                  {"topic": topic}) or 0)
        failed = int((registry.get_sample_value("hl7gw_mapping_failures_total") or 0)
                     + _refused(registry))
        if progress is not None and published - warmup > shown:
            shown = published - warmup
            progress(shown)
        if published + failed >= rows:
            return
        await asyncio.sleep(0.05)


def _refused(registry: Any) -> float:
    """Rows Kafka refused for good so far (``hl7gw_publish_refused_total``, all labels)."""
    return float(sum(sample.value for metric in registry.collect()
                     if metric.name == "hl7gw_publish_refused" for sample in metric.samples
                     if sample.name == "hl7gw_publish_refused_total"))


async def _settled(spool: Spool, limit: int) -> list[Settled]:
    """Every row of the spool (the warm-up's too: ``account`` leaves them out)."""
    from gateway.spool import MessageFilter

    return [Settled(r.id, r.control_id, r.status, r.published_at)
            for r in await spool.find(MessageFilter(), limit=limit)]


async def read_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS,
                     within: float = 60.0) -> list[Record]:
    """Every record of ``topic`` (``partitions`` of them) up to its end offsets now; what
    was read by ``within`` seconds if the broker stops answering (reported as missing)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        records: list[Record] = []
        deadline = time.monotonic() + within
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]] \
                and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(_record(r) for r in batch)
    finally:
        await consumer.stop()
    return records


def _record(consumer_record: Any) -> Record:
    headers = {name: value for name, value in consumer_record.headers}
    row = headers.get(SPOOL_ROW_HEADER, b"0")
    event = headers.get(EVENT_ID_HEADER, b"")
    return Record(int(row), event.decode(), consumer_record.timestamp / 1000,
                  consumer_record.timestamp_type == LOG_APPEND_TIME)
