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


PROFILES_HELP = "Folder of sender profiles (*.yaml), e.g. samples/profiles."


def _profiles_dir(profiles: Path | None, settings: Any) -> Path | None:
    """--profiles, else the config's profiles.dir, else None."""
    if profiles is not None:
        return profiles
    return settings.profiles.dir if settings is not None else None


def _load_profiles(directory: Path) -> Any:
    from mappers.profiles import ProfileSet

    try:
        return ProfileSet.load(directory)
    except Hl7gwError as exc:
        _fail(exc)


def _choose_profile(text: str, name: str | None, directory: Path | None) -> Any:
    """The profile ``--profile`` names, else the one the gateway would pick from MSH.

    Without a profiles folder there is none. An automatic choice is said on stderr, so
    what the Bundle was made with is never a guess.
    """
    if directory is None:
        if name is not None:
            _fail(ValueError("--profile needs the profiles folder: --profiles DIR, or "
                             "--config CFG with profiles.dir set"))
        return None
    from mappers.profiles import msh_sender

    profiles = _load_profiles(directory)
    if name is not None:
        try:
            return profiles.get(name)
        except Hl7gwError as exc:
            _fail(exc)
    chosen = profiles.select_text(text)
    if chosen is None:
        app, fac, version = msh_sender(text)
        click.echo(f"profile: none matches MSH-3 {app or '(empty)'}, MSH-4 "
                   f"{fac or '(empty)'}, MSH-12 {version or '(empty)'}", err=True)
    else:
        click.echo(f"profile: {chosen.name} ({chosen.path})", err=True)
    return chosen


@main.command("map")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timezone", "tz", default=None,
              help="Time zone for timestamps that carry none.  [default: the profile's, "
                   "else the config's default_timezone, else UTC]")
@click.option("--no-validate", is_flag=True,
              help="Skip the fhir.resources model check (faster; output is valid by construction).")
@click.option("--explain", is_flag=True,
              help="Instead of the Bundle, show where each element came from (PID-5.1 ...), "
                   "the code translations applied, the issues and the unmapped fields.")
@click.option("--profile", "profile_name", metavar="NAME",
              help="Map with this sender profile (from --profiles or the config's "
                   "profiles.dir). Without it, the profile is chosen from MSH like the "
                   "gateway does, and named on stderr.")
@click.option("--profiles", "profiles_dir",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=PROFILES_HELP)
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Gateway config: take profiles.dir and default_timezone from it.")
def map_(file: Path, tz: str | None, no_validate: bool, explain: bool,
         profile_name: str | None, profiles_dir: Path | None, config: Path | None) -> None:
    """Print the FHIR R4 transaction Bundle for one HL7 v2 message.

    With a sender profile, its charset, time zone, codes, identifier systems and extra
    fields apply, as in the gateway. Exits 2 with a one-line reason on stderr when the
    message is refused.
    """
    import orjson

    import mappers
    from gateway.mllp.client import split_messages

    messages = split_messages(file.read_bytes())
    if len(messages) != 1:
        _fail(ValueError(f"{file}: expected one message, found {len(messages)}"))
    settings = _load(config) if config is not None else None
    directory = _profiles_dir(profiles_dir, settings)
    profile = _choose_profile(messages[0].decode("latin-1"), profile_name, directory)
    charset = (profile.charset if profile is not None else None) or "utf-8"
    text = messages[0].decode(charset, "replace")
    # --timezone, else the profile's, else the config's default_timezone, else UTC
    if tz is None and profile is not None:
        tz = profile.timezone
    if tz is None and settings is not None:
        tz = settings.default_timezone
    try:
        if explain:
            sys.stdout.write(mappers.explain(text, default_tz=tz or "UTC", profile=profile)
                             .rstrip("\n") + "\n")
            return
        result = mappers.convert(text, default_tz=tz or "UTC", validate=not no_validate,
                                 profile=profile)
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


# -- sender profiles ------------------------------------------------------------------------


@main.group()
def profiles() -> None:
    """Per-sender mapping profiles: check a folder before the gateway loads it.

    \b
      hl7gw profiles check samples/profiles
      hl7gw profiles check samples/profiles --message samples/messages/oru_r01.hl7
    """


@profiles.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--message", "messages", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A message file to select a profile for and map with it (repeatable).")
def profiles_check(directory: Path, messages: tuple[Path, ...]) -> None:
    """Load and lint every profile in DIRECTORY, as the gateway would.

    Prints each profile (name, match, file), or each mistake as
    ``file:line: field: what is wrong``. With --message, prints the profile each message
    selects (most specific match on MSH-3, MSH-4, MSH-12) and maps it with that profile.
    Exits 2 when a profile is wrong or the mapper refuses a message.
    """
    from mappers.profiles import ProfileSet

    try:
        loaded = ProfileSet.load(directory)
    except Hl7gwError as exc:
        lines = str(exc).splitlines()
        for line in lines:
            click.echo(line)
        click.echo(f"error: {len(lines)} problem(s) in {directory}; the gateway would keep "
                   "its last good profiles (or not start)", err=True)
        sys.exit(2)
    by_name = {p.name: p for p in loaded.profiles}
    for name in loaded.names():
        p = by_name[name]
        extras = "".join(f"  {k}={v}" for k, v in (("timezone", p.timezone),
                                                   ("charset", p.charset)) if v)
        click.echo(f"{p.name}  {p.describe_match()}  {p.path}{extras}")
    if not loaded.profiles:
        click.echo(f"no profiles in {directory} (*.yaml)")
    refused = sum(_check_message_file(path, loaded) for path in messages)
    sys.exit(2 if refused else 0)


def _check_message_file(path: Path, loaded: Any) -> int:
    """Select and map each message of ``path``; print one line each; return refusals."""
    import mappers
    from gateway.mllp.client import split_messages
    from mappers.profiles import msh_sender

    refused = 0
    for n, raw in enumerate(split_messages(path.read_bytes()), 1):
        label = f"{path}#{n}"
        profile = loaded.select_text(raw.decode("latin-1"))
        if profile is None:
            app, fac, version = msh_sender(raw.decode("latin-1"))
            chosen = f"no profile (MSH-3 {app or '-'}, MSH-4 {fac or '-'}, MSH-12 {version or '-'})"
        else:
            chosen = f"profile {profile.name}"
        charset = (profile.charset if profile is not None else None) or "utf-8"
        try:
            result = mappers.convert(raw.decode(charset, "replace"), validate=True,
                                     profile=profile)
        except Hl7gwError as exc:
            where = f" ({exc.location})" if isinstance(exc, MessageError) and exc.location \
                else ""
            click.echo(f"{label}: {chosen}: refused: {exc}{where}")
            refused += 1
            continue
        click.echo(f"{label}: {chosen}: {result.message_type} -> "
                   f"{len(result.bundle['entry'])} resources, {len(result.issues)} issue(s), "
                   f"{len(result.unmapped)} unmapped field(s)")
    return refused


# -- replay ---------------------------------------------------------------------------------


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """ISO 8601 (naive = local time) or a duration back from now (``90s``, ``2h``, ``3d``)."""
    import re
    import time
    from datetime import datetime

    if value is None:
        return None
    text = value.strip()
    relative = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if relative:
        return time.time() - float(relative[1]) * _UNITS[relative[2]]
    try:
        # a naive time is local time: datetime.timestamp() reads it so
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither ISO 8601 (2024-05-01T08:00, naive = local time) nor a "
            "duration back from now (30m, 2h, 3d)", ctx, param) from None


@main.command()
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help=CONFIG_HELP + " Its spool.path is opened.")
@click.option("--id", "ids", type=int, multiple=True, help="Spool row id (repeatable).")
@click.option("--since", metavar="WHEN", callback=_when,
              help="Received at or after: ISO 8601 (naive = local) or 30m, 2h, 3d ago.")
@click.option("--until", metavar="WHEN", callback=_when,
              help="Received before: ISO 8601 (naive = local) or 30m, 2h, 3d ago.")
@click.option("--sender", metavar="APP|FAC", help="MSH-3|MSH-4, or APP for every facility.")
@click.option("--type", "message_type", metavar="TYPE", help="ADT^A01, or ADT^* for a prefix.")
@click.option("--status", type=click.Choice(["failed", "published"]),
              help="Only rows in this state.")
@click.option("--all", "everything", is_flag=True, help="Allow an empty filter: every row.")
@click.option("--dry-run", is_flag=True, help="Show what matches; change nothing.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the running gateway to publish (or fail) every queued row.")
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds --wait waits before giving up on rows still pending.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def replay(config: Path, ids: tuple[int, ...], since: float | None, until: float | None,
           sender: str | None, message_type: str | None, status: str | None,
           everything: bool, dry_run: bool, wait: bool, timeout: float, yes: bool) -> None:
    """Map and publish spooled messages again, e.g. after a profile fix.

    Matching published and failed rows go back to pending with their replay count + 1; the
    running gateway (which shares the spool file) maps them with the profiles live now
    and publishes them within about a second, with event ids ending in "-r<count>".
    Rows still pending are left alone. An empty filter is refused unless --all is given.

    Exits 0 when every queued row was published, 1 when some failed again or were still
    pending after --timeout (is the gateway running?), 2 on a usage or spool error.
    """
    from gateway.spool import MessageFilter

    flt = MessageFilter(ids=ids, sender=sender, message_type=message_type, status=status,
                        since=since, until=until)
    if flt == MessageFilter() and not everything:
        _fail(ValueError("no filter given: name rows with --id, --since, --until, --sender, "
                         "--type or --status, or pass --all to replay every message"))
    settings = _load(config)
    if not settings.spool.path.exists():
        _fail(ValueError(f"no spool at {settings.spool.path} (spool.path in {config})"))
    try:
        code = asyncio.run(_replay(settings.spool.path, flt, dry_run=dry_run, wait=wait,
                                   wait_s=timeout, yes=yes))
    except Hl7gwError as exc:
        _fail(exc)
        return
    sys.exit(code)


async def _replay(path: Path, flt: Any, *, dry_run: bool, wait: bool, wait_s: float,
                  yes: bool) -> int:
    import dataclasses

    from gateway.spool import Spool

    spool = Spool(path)
    await spool.start()
    try:
        matching = await _all_matching(spool, flt)
        queue = sorted(m.id for m in matching if m.status != "pending")
        by_status: dict[str, int] = {}
        for m in matching:
            by_status[m.status] = by_status.get(m.status, 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        click.echo(f"{len(matching)} message(s) match" + (f" ({detail})" if detail else ""))
        if by_status.get("pending"):
            click.echo(f"{by_status['pending']} pending row(s) are left as they are")
        if dry_run or not queue:
            for m in sorted(matching, key=lambda m: m.id)[:20]:
                click.echo(f"  {m.id:>8}  {_iso(m.received_at)}  {m.sender}  "
                           f"{m.message_type}  {m.status}  replays={m.replays}")
            if len(matching) > 20:
                click.echo(f"  ... and {len(matching) - 20} more")
            if dry_run:
                click.echo("dry run: nothing changed")
            return 0
        if not yes:
            click.confirm(f"Replay {len(queue)} message(s)?", abort=True, err=True)
        queued: list[int] = []
        for chunk in _chunks(queue, 10_000):
            queued += await spool.replay(dataclasses.replace(flt, ids=tuple(chunk)))
        click.echo(f"queued {len(queued)} message(s) for the running gateway to publish")
        if not wait or not queued:
            return 0
        return await _wait_replayed(spool, queued, wait_s)
    finally:
        await spool.stop()


async def _all_matching(spool: Any, flt: Any) -> list[Any]:
    """Every row ``flt`` matches (find pages newest first)."""
    out: list[Any] = []
    before: int | None = None
    while True:
        page = await spool.find(flt, limit=1000, before_id=before)
        out += page
        if len(page) < 1000:
            return out
        before = page[-1].id


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _iso(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


async def _wait_replayed(spool: Any, queued: list[int], wait_s: float) -> int:
    """Progress until every queued row left ``pending``; summary; exit code."""
    import time

    from gateway.spool import MessageFilter

    settled: dict[int, Any] = {}
    deadline = time.monotonic() + wait_s
    with click.progressbar(length=len(queued), label="publishing", file=sys.stderr) as bar:
        while len(settled) < len(queued) and time.monotonic() < deadline:
            waiting = [i for i in queued if i not in settled]
            for chunk in _chunks(waiting, 10_000):
                rows = await spool.find(MessageFilter(ids=tuple(chunk)), limit=len(chunk))
                done = [r for r in rows if r.status != "pending"]
                for r in done:
                    settled[r.id] = r
                bar.update(len(done))
            if len(settled) < len(queued):
                await asyncio.sleep(0.25)
    published = sum(r.status == "published" for r in settled.values())
    reasons: dict[str, int] = {}
    for r in settled.values():
        if r.status == "failed":
            reason = r.last_error or "(no reason kept)"
            reasons[reason] = reasons.get(reason, 0) + 1
    pending = len(queued) - len(settled)
    click.echo(f"{published} published, {sum(reasons.values())} failed, {pending} still pending")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  failed {n}x: {reason}")
    if pending:
        click.echo(f"{pending} row(s) still pending after {wait_s:g} s: is the gateway "
                   "running on this spool? They go out when it runs.", err=True)
    return 1 if pending or reasons else 0


# -- console --------------------------------------------------------------------------------


@main.group()
def console() -> None:
    """The web console and admin API (see docs/console.md)."""


@console.command("token")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True,
              help="viewer: message metadata; operator: also bodies and replay.")
def console_token(name: str, role: str) -> None:
    """Make a new bearer token for NAME and the config line that admits it.

    Prints the token (hand it to NAME; it is kept nowhere else) and, on the next line, the
    entry to put under ``console.users`` in the gateway config: only the token's SHA-256
    goes there.
    """
    import hashlib
    import json
    import re
    import secrets

    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    # A plain name stays plain; anything else becomes a double-quoted scalar (JSON string
    # syntax is valid YAML), so the line always parses back to the same name.
    shown = name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]*", name) else json.dumps(name)
    click.echo(token)
    click.echo(f"- {{name: {shown}, role: {role}, token_sha256: {digest}}}")
    click.echo(f"The first line is {name}'s token; put the second under console.users: in "
               "the gateway config and restart the gateway.", err=True)
