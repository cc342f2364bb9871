"""Oversized request bodies are refused before they are read (issue 16, item 11).

Against a real gateway (uvicorn on a real port, MLLP listener, spool, Kafka): a viewer's
64 MB ``POST /api/v1/playground`` once grew the gateway by 127 MB before its 400, because
the whole body was read before the 1 MiB check. Now a declared ``Content-Length`` over the
limit is answered 413 before a byte of the body is sent, and a chunked body without a
length is refused while the client is still sending it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from gateway.ack import ack_code_of
from gateway.body_limit import MAX_BODY_BYTES
from gateway.config import GatewaySettings
from gateway.mllp.client import MllpClient
from gateway.service import GatewayService
from tests.integration.conftest import bounded
from tests.integration.test_console_api import A01, OPERATOR, VIEWER, console_settings

pytestmark = pytest.mark.integration

BIG = 64 * 1024 * 1024
CHUNK = b"x" * 65536


def request_head(port: int, path: str, token: str, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else \
        "Transfer-Encoding: chunked"
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n\r\n").encode()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, object]]:
    """Status code and JSON body of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, json.loads(body)


@bounded(120)
async def test_a_declared_oversized_body_is_refused_before_it_is_sent(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    async with GatewayService(settings) as gateway:
        port = gateway.http_port
        assert port is not None
        for path, token in (("/api/v1/playground", VIEWER), ("/api/v1/replay", OPERATOR),
                            ("/console/login", ""), ("/healthz", "")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request_head(port, path, token, BIG))  # headers only, no body
                await writer.drain()
                # The old gateway waited here for all 64 MB to arrive.
                status, body = await asyncio.wait_for(read_answer(reader), 10)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            assert status == 413, (path, body)
            assert f"larger than {MAX_BODY_BYTES} bytes" in str(body["error"])
        # The gateway is unharmed: MLLP intake still answers.
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
            assert ack_code_of((await mllp.send(A01)).decode()) == "CA"


@bounded(180)
async def test_a_streamed_body_is_refused_while_it_is_still_being_sent(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    async with GatewayService(settings) as gateway:
        port = gateway.http_port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        answered_at: int | None = None

        async def send_body() -> None:
            nonlocal sent
            writer.write(request_head(port, "/api/v1/playground", VIEWER, None))
            with contextlib.suppress(OSError):
                while sent < BIG and answered_at is None:
                    writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                    await writer.drain()
                    sent += len(CHUNK)
                writer.write(b"0\r\n\r\n")
                await writer.drain()

        sender = asyncio.create_task(send_body())
        try:
            status, body = await asyncio.wait_for(read_answer(reader), 120)
            answered_at = sent
            await asyncio.wait_for(sender, 60)
        finally:
            sender.cancel()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert status == 413 and "larger than" in str(body["error"])
        # Answered once the limit was passed, not after all 64 MB (socket buffers hold a
        # few MB more); the old gateway read everything first, then said 400.
        assert answered_at is not None and answered_at < BIG // 2, answered_at
