"""The ``hl7gw`` command line: a thin layer over the gateway, mappers and connectors."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from mappers.errors import Hl7gwError, MessageError

CONFIG_HELP = "Gateway config file (YAML), e.g. samples/gateway.yaml."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="hl7gw")
def main() -> None:
    """HL7 v2 over MLLP in, FHIR R4 on Apache Kafka and cloud functions out.

    \b
    Quick start:
      hl7gw dev up                         run everything locally (Kafka, gateway, bridge,
                                           function) and send the samples
      hl7gw map samples/adt_a01.hl7        print the FHIR Bundle for one message
      hl7gw send --port 2575 FILE...       send messages over MLLP, print each ACK code
    """


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _load(config: Path) -> Any:
    from gateway.config import load_settings

    try:
        return load_settings(config)
    except Hl7gwError as exc:
        _fail(exc)


def run_until_signal(start: Callable[[], Awaitable[Any]],
                     stop: Callable[[], Awaitable[Any]]) -> None:
    """Run ``start()``, wait for SIGINT/SIGTERM, then ``stop()``: the shape of every daemon."""

    async def runner() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await start()
        try:
            await stopping.wait()
        finally:
            await stop()

    asyncio.run(runner())


@main.command()
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help=CONFIG_HELP)
@click.option("--mllp-port", type=int, help="Override the first listener's port.")
@click.option("--http-port", type=int, help="Override the health/metrics HTTP port.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config: Path, mllp_port: int | None, http_port: int | None, log_level: str) -> None:
    """Run the gateway: MLLP listeners, durable spool, Kafka publisher, /healthz /metrics."""
    from gateway.logs import configure_logging
    from gateway.service import GatewayService

    configure_logging(log_level)
    settings = _load(config)
    settings = _override_ports(settings, mllp_port, http_port)
    service = GatewayService(settings)

    async def start() -> None:
        await service.start()
        ports = ", ".join(f"{ls.settings.name}={ls.port}" for ls in service.listeners)
        click.echo(f"gateway ready: MLLP {ports}; HTTP {service.http_port}", err=True)

    try:
        run_until_signal(start, service.stop)
    except Hl7gwError as exc:
        _fail(exc)


def _override_ports(settings: Any, mllp_port: int | None, http_port: int | None) -> Any:
    update: dict[str, Any] = {}
    if mllp_port is not None:
        first = settings.listeners[0].model_copy(update={"port": mllp_port})
        update["listeners"] = [first, *settings.listeners[1:]]
    if http_port is not None:
        update["http"] = settings.http.model_copy(update={"port": http_port})
    return settings.model_copy(update=update) if update else settings


@main.command("map")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timezone", "tz", default="UTC", show_default=True,
              help="Time zone for timestamps that carry none.")
@click.option("--no-validate", is_flag=True,
              help="Skip the fhir.resources model check (faster; output is valid by construction).")
@click.option("--explain", is_flag=True,
              help="Instead of the Bundle, show where each element came from (PID-5.1 ...), "
                   "the code translations applied, the issues and the unmapped fields.")
def map_(file: Path, tz: str, no_validate: bool, explain: bool) -> None:
    """Print the FHIR R4 transaction Bundle for one HL7 v2 message.

    Exits 2 with a one-line reason on stderr when the message is refused.
    """
    import orjson

    import mappers
    from gateway.mllp.client import split_messages

    messages = split_messages(file.read_bytes())
    if len(messages) != 1:
        _fail(ValueError(f"{file}: expected one message, found {len(messages)}"))
    text = messages[0].decode("utf-8", "replace")
    try:
        if explain:
            sys.stdout.write(mappers.explain(text, default_tz=tz).rstrip("\n") + "\n")
            return
        result = mappers.convert(text, default_tz=tz, validate=not no_validate)
    except Hl7gwError as exc:
        where = f" ({exc.location})" if isinstance(exc, MessageError) and exc.location else ""
        _fail(ValueError(f"{file}: {exc}{where}"))
        return
    sys.stdout.write(orjson.dumps(result.bundle, option=orjson.OPT_INDENT_2).decode() + "\n")
    for issue in result.issues:
        click.echo(f"warning: {issue}", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=2575, show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for each ACK.")
@click.option("--tls", is_flag=True, help="Connect with TLS (implied by the options below).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA to check the gateway's certificate against (default: the system CAs).")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Client certificate (PEM), for mutual TLS.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Key of the client certificate (default: inside --certfile).")
@click.option("--insecure", is_flag=True,
              help="Do not check the gateway's certificate (test certificates only).")
@click.option("--retries", type=int, default=3, show_default=True,
              help="Reconnect attempts after a dropped connection.")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def send(host: str, port: int, timeout: float, tls: bool, cafile: Path | None,
         certfile: Path | None, keyfile: Path | None, insecure: bool, retries: int,
         files: tuple[Path, ...]) -> None:
    """Send HL7 messages over MLLP and print one ACK code per message.

    A file may hold several messages (each starting with MSH); a batch file (starting with
    FHS or BHS) is sent whole, as one frame. When the connection drops, the message in
    flight is reported LOST (send it again), the client reconnects and goes on. Exits 1 if
    any message was not accepted (AA/CA), 2 if the gateway could not be reached.
    """
    import ssl

    from gateway.ack import ack_code_of
    from gateway.mllp.client import MllpClient, MllpConnectionLost, read_message_files
    from gateway.mllp.settings import client_context

    messages = read_message_files(list(files))
    context = None
    if tls or cafile or certfile or keyfile or insecure:
        try:
            context = client_context(cafile=cafile, certfile=certfile, keyfile=keyfile,
                                     insecure=insecure)
        except (ssl.SSLError, OSError) as exc:
            _fail(ValueError(f"cannot load TLS certificate, key or CA: {exc}"))
    codes: list[str] = []

    async def reconnect(client: MllpClient) -> None:
        for attempt in range(retries + 1):
            try:
                await client.reconnect()
                return
            except Hl7gwError:
                if attempt == retries:
                    raise
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))

    async def run() -> None:
        async with MllpClient(host, port, timeout=timeout, tls=context) as client:
            bar = click.progressbar(length=len(messages), label="sending", file=sys.stderr) \
                if len(messages) > 50 else contextlib.nullcontext()
            with bar as progress:
                for path, message in messages:
                    try:
                        ack = (await client.send(message)).decode("latin-1")
                        code = ack_code_of(ack) or "??"
                    except MllpConnectionLost as exc:
                        code = "LOST"
                        click.echo(f"lost: {path}: {exc}; reconnecting", err=True)
                        await reconnect(client)
                    codes.append(code)
                    if progress is not None:
                        progress.update(1)
                    else:
                        click.echo(f"{code}  {path}")

    failure: Hl7gwError | None = None
    try:
        asyncio.run(run())
    except Hl7gwError as exc:
        failure = exc
    ok = sum(c in ("AA", "CA") for c in codes)
    lost = codes.count("LOST")
    if codes or failure is None:
        summary = f"{len(codes)} sent, {ok} accepted, {len(codes) - ok - lost} refused"
        click.echo(summary + (f", {lost} lost (no ACK: send again)" if lost else ""),
                   err=True)
    if failure is not None:
        _fail(failure)
    sys.exit(0 if ok == len(codes) else 1)


@main.command()
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help=CONFIG_HELP)
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def bridge(config: Path, log_level: str) -> None:
    """Consume FHIR events from Kafka and deliver them to the function target."""
    from connectors.bridge import run_bridge
    from gateway.logs import configure_logging

    configure_logging(log_level)
    settings = _load(config)
    if settings.bridge is None:
        _fail(ValueError(f"{config}: no 'bridge:' section; add one with target_url"))
    try:
        asyncio.run(run_bridge(settings.bridge, settings.kafka))
    except Hl7gwError as exc:
        _fail(exc)


@main.group()
def function() -> None:
    """The sample cloud function (FastAPI; AWS Lambda handler connectors.cloud:handler)."""


@function.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
def function_serve(host: str, port: int) -> None:
    """Serve the function app locally: POST /events, GET /events to read back."""
    from connectors.cloud import run_function

    run_function(port=port, host=host)


@main.group()
def dev() -> None:
    """Local development helpers: a real Kafka broker and the whole pipeline."""


@dev.command("kafka")
@click.option("--port", type=int, help="Broker port (default: a free one).")
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path),
              help="Log directory to keep between runs (default: a temporary one).")
def dev_kafka(port: int | None, data: Path | None) -> None:
    """Start a single-node Apache Kafka (KRaft) from Maven Central jars until Ctrl-C."""
    from gateway.dev.kafka import run_broker

    try:
        sys.exit(run_broker(port, data))
    except Hl7gwError as exc:
        _fail(exc)


@dev.command("up")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("samples/gateway.yaml"), show_default=True, help=CONFIG_HELP)
@click.option("--samples", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("samples"), show_default=True, help="Folder of *.hl7 to send.")
@click.option("--once", is_flag=True, help="Exit after showing the results (for scripts).")
def dev_up(config: Path, samples: Path, once: bool) -> None:
    """Run Kafka, gateway, bridge and function locally; send the samples; show results."""
    from gateway.dev.up import run_dev_up

    settings = _load(config)
    try:
        sys.exit(run_dev_up(settings, samples, once=once))
    except Hl7gwError as exc:
        _fail(exc)


@main.group()
def bench() -> None:
    """Measure throughput on this machine and print the numbers (``--json`` for scripts).

    Each figure is shown next to a ceiling measured in the same run, so the ratio says
    what the gateway's own work costs here.
    """


def _emit(figures: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        import orjson

        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    else:
        for line in lines:
            click.echo(line)


@bench.command("map")
@click.option("-n", "count", type=int, default=2000, show_default=True,
              help="Messages per measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_map(count: int, as_json: bool) -> None:
    """Parsing and mapping, per message type, on one core; next to full model validation."""
    from mappers._accel import status
    from mappers.bench import run

    figures = run(count)
    build = status()
    _emit({"mapper": build, **figures}, as_json,
          [f"mapping, {count} messages, one core; mapper {build}:"]
          + [f"  {name:38s} {value:12,.0f}" for name, value in figures.items()])


@bench.command("intake")
@click.option("-n", "count", type=int, default=2000, show_default=True,
              help="Messages per measurement.")
@click.option("--connections", type=int, multiple=True, default=(1, 8), show_default=True,
              help="Concurrent MLLP senders (repeat for several runs).")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("samples/adt_a01.hl7"), show_default=True)
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Interleaved rounds; each figure is the median over them.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_intake(count: int, connections: tuple[int, ...], sample: Path, rounds: int,
                 as_json: bool) -> None:
    """MLLP intake over loopback: an echo ceiling, spool-only, and the full durable intake.

    Each round measures every configuration back to back; ratios are to the ceiling of the
    same round, and each figure is the median over the rounds (a shared machine drifts).
    """
    from gateway.bench import run_intake_bench
    from gateway.mllp.client import split_messages

    message = split_messages(sample.read_bytes())[0]
    figures: dict[str, Any] = {}
    lines: list[str] = []
    for conns in connections:
        results = asyncio.run(run_intake_bench(message, count, conns, rounds))
        lines.append(f"MLLP intake, {count} messages, {conns} sender(s) waiting for each ACK"
                     f" (median of {rounds} interleaved round(s)):")
        for r in results:
            figures[f"{conns}:{r.name}"] = {
                "senders": conns, "rounds": r.rounds, "msg_per_s": round(r.rate),
                "p50_ms": round(r.p50_ms, 3), "p99_ms": round(r.p99_ms, 3),
                "ratio_to_ceiling": round(r.ratio, 3)}
            lines.append(f"  {r.name:28s} {r.rate:9,.0f} msg/s  p50 {r.p50_ms:6.2f} ms"
                         f"  p99 {r.p99_ms:6.2f} ms  {r.ratio:6.1%} of ceiling")
    _emit(figures, as_json, lines)


@bench.command("bridge")
@click.option("-n", "count", type=int, default=2000, show_default=True,
              help="Events to send through Kafka to a local function.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_bridge(count: int, as_json: bool) -> None:
    """Events/second from Kafka through the bridge to a local function, in order per key.

    Uses ``KAFKA_BOOTSTRAP_SERVERS`` or starts a local broker.
    """
    import os
    import tempfile

    from connectors.bench import run_bridge_bench
    from connectors.settings import KafkaSettings
    from gateway.dev.kafka import LocalKafka, default_cache_dir

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory(prefix="hl7gw-bench-") as tmp:
        broker = None
        try:
            if not bootstrap:
                click.echo("starting a local Kafka broker ...", err=True)
                broker = LocalKafka(data_dir=Path(tmp), cache_dir=default_cache_dir())
                bootstrap = broker.start()
            figures = asyncio.run(run_bridge_bench(KafkaSettings(bootstrap_servers=bootstrap),
                                                   count))
        except Hl7gwError as exc:
            _fail(exc)
            return
        finally:
            if broker is not None:
                broker.stop()
    _emit(figures, as_json, [f"  {k:38s} {v}" for k, v in figures.items()])
