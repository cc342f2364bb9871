"""``hl7gw send``: an MLLP client that prints one ACK code per message."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from gateway.cli.common import (
    PEER_PORT,
    SECONDS,
    fail,
)
from hl7gw.errors import Hl7gwError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PEER_PORT, default=2575, show_default=True)
@click.option("--timeout", type=SECONDS, default=30.0, show_default=True,
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
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
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
            fail(f"cannot load TLS certificate, key or CA: {exc}")
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
        fail(failure)
    sys.exit(0 if ok == len(codes) else 1)
