"""Framing and connection faults against a real listening socket.

Each test drives raw sockets at an MllpListener (a tiny handler stands in for intake, which
has its own tests), checks what the listener did and counted, and then checks that the
listener still serves a well-behaved client.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from gateway.ack import ack_code_of
from gateway.cli import main as cli
from gateway.config import GatewaySettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.mllp.framing import encode_frame
from gateway.mllp.server import MllpListener
from gateway.service import GatewayService
from tests.integration.mllp_helpers import (
    Listening,
    ack_handler,
    closed_by_listener,
    listening,
    peer,
    read_frames,
    reset,
    roundtrip,
    wait_for_metric,
)
from tests.support import SAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RESETS = "hl7gw_connections_closed_by_gateway_total"
REFUSED = "hl7gw_connections_refused_total"
NON_MLLP = "hl7gw_non_mllp_connections_total"
PARTIAL = "hl7gw_partial_frames_dropped_total"
DISCARDED = "hl7gw_discarded_bytes_total"


async def still_serves(running: Listening) -> None:
    """A well-behaved client gets its ACK after whatever came before."""
    ack = await roundtrip(running.port, b"MSH|GOOD")
    assert ack_code_of(ack.decode()) == "AA"
    assert running.seen[-1] == b"MSH|GOOD"


# --- framing faults -----------------------------------------------------------------------

async def test_frame_deadline_resets_without_an_ack() -> None:
    async with listening(frame_timeout_s=0.3) as running:
        async with peer(running.port) as (reader, writer):
            writer.write(b"\x0bMSH|never finished")
            began = asyncio.get_running_loop().time()
            assert await closed_by_listener(reader) == b""
            assert asyncio.get_running_loop().time() - began < 2
        await wait_for_metric(running, RESETS, reason="frame_timeout")
        assert running.sample(PARTIAL) == 1
        assert running.seen == []
        await still_serves(running)


async def test_dribbling_does_not_extend_the_frame_deadline() -> None:
    async with listening(frame_timeout_s=0.5) as running:
        async with peer(running.port) as (reader, writer):
            writer.write(b"\x0b")
            with pytest.raises((ConnectionError, BrokenPipeError)):
                for _ in range(40):  # 4 s of one byte per 0.1 s: far past the deadline
                    writer.write(b"x")
                    await writer.drain()
                    await asyncio.sleep(0.1)
                    if reader.at_eof():
                        raise ConnectionResetError
            assert await closed_by_listener(reader) == b""
        assert running.sample(RESETS, reason="frame_timeout") == 1
        await still_serves(running)


async def test_rst_mid_frame_drops_the_partial_frame() -> None:
    async with listening() as running:
        async with peer(running.port) as (_, writer):
            writer.write(b"\x0bMSH|half a mess")
            await writer.drain()
            await asyncio.sleep(0.1)
            reset(writer)
        await wait_for_metric(running, PARTIAL)
        assert running.seen == []
        await still_serves(running)


async def test_fin_mid_frame_drops_the_partial_frame() -> None:
    async with listening() as running:
        async with peer(running.port) as (reader, writer):
            writer.write(b"\x0bMSH|half a mess")
            writer.write_eof()
            assert await closed_by_listener(reader) == b""
        await wait_for_metric(running, PARTIAL)
        assert running.seen == []
        await still_serves(running)


async def test_oversize_frame_resets_without_an_ack() -> None:
    async with listening(max_frame_bytes=4096) as running:
        async with peer(running.port) as (reader, writer):
            writer.write(b"\x0b" + b"x" * 5000)
            assert await closed_by_listener(reader) == b""
        await wait_for_metric(running, RESETS, reason="frame_too_large")
        assert running.seen == []
        await still_serves(running)


async def test_garbage_and_nuls_between_frames_are_discarded_and_counted() -> None:
    async with listening() as running:
        async with peer(running.port) as (reader, writer):
            writer.write(b"\x00\x00junk" + encode_frame(b"MSH|A") + b"\x00xx\r\n"
                         + encode_frame(b"MSH|B"))
            acks = await read_frames(reader, 2)
        assert [a.split(b"MSA|AA|")[1] for a in acks] == [b"MSH|A\r", b"MSH|B\r"]
        await wait_for_metric(running, DISCARDED, 6 + 5)
        await still_serves(running)


async def test_two_frames_in_one_write_get_two_acks_in_order() -> None:
    async with listening() as running:
        async with peer(running.port) as (reader, writer):
            writer.write(encode_frame(b"MSH|one") + encode_frame(b"MSH|two"))
            acks = await read_frames(reader, 2)
        assert running.seen == [b"MSH|one", b"MSH|two"]
        assert [a.split(b"MSA|AA|")[1] for a in acks] == [b"MSH|one\r", b"MSH|two\r"]


async def test_frame_dribbled_byte_by_byte_over_a_socket() -> None:
    async with listening() as running:
        async with peer(running.port) as (reader, writer):
            writer.transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in encode_frame(b"MSH|dribble"):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.002)
            acks = await read_frames(reader, 1)
        assert running.seen == [b"MSH|dribble"]
        assert ack_code_of(acks[0].decode()) == "AA"


async def test_handler_failure_stays_in_its_connection() -> None:
    async def fragile(frame: bytes, peer_: str) -> bytes:
        if frame == b"MSH|boom":
            raise RuntimeError("handler bug")
        return await ack_handler(frame, peer_)

    async with listening(fragile) as running:
        async with peer(running.port) as (reader, writer):
            writer.write(encode_frame(b"MSH|boom"))
            assert await closed_by_listener(reader) == b""
        await still_serves(running)


async def test_peer_that_never_reads_its_acks_is_reset() -> None:
    big = b"A" * (8 * 1024 * 1024)

    async def huge_ack(frame: bytes, peer_: str) -> bytes:
        return big if frame == b"MSH|big" else await ack_handler(frame, peer_)

    async with listening(huge_ack, frame_timeout_s=0.5) as running:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", running.port))
        _, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(encode_frame(b"MSH|big"))
            await writer.drain()
            await wait_for_metric(running, RESETS, reason="write_timeout")
        finally:
            writer.transport.abort()
        await still_serves(running)


# --- not MLLP at all -------------------------------------------------------------------------

@pytest.mark.parametrize(("hello", "kind"), [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x0b" * 40, "tls"),
    (b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n", "http"),
    (b"POST /fhir HTTP/1.1\r\nContent-Length: 3\r\n\r\n\x0babc\x1c\r", "http"),
    (b"\x00" * 1025, "no_vt"),
    (b"hello there " * 100, "no_vt"),
])
async def test_non_mllp_client_is_closed_and_counted(hello: bytes, kind: str) -> None:
    async with listening() as running:
        async with peer(running.port) as (reader, writer):
            writer.write(hello)
            assert await closed_by_listener(reader) == b""
        await wait_for_metric(running, NON_MLLP, kind=kind)
        assert running.sample(REFUSED, reason="non_mllp") == 1
        assert running.seen == []
        await still_serves(running)


async def test_http_request_dribbled_is_caught_after_four_bytes() -> None:
    async with listening() as running:
        async with peer(running.port) as (reader, writer):
            for byte in b"GET ":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.01)
            assert await closed_by_listener(reader) == b""
        assert running.sample(NON_MLLP, kind="http") == 1
        await still_serves(running)


async def test_real_tls_handshake_on_the_plain_port_fails_fast() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with listening() as running:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", running.port, ssl=context), 5)
        await wait_for_metric(running, NON_MLLP, kind="tls")
        await still_serves(running)


async def test_garbage_under_a_kilobyte_before_the_first_frame_is_tolerated() -> None:
    async with listening() as running:
        async with peer(running.port) as (reader, writer):
            writer.write(b"\x00" * 1000 + encode_frame(b"MSH|late"))
            acks = await read_frames(reader, 1)
        assert ack_code_of(acks[0].decode()) == "AA"
        assert running.sample(NON_MLLP, kind="no_vt") == 0


# --- who may connect, how many, how long -------------------------------------------------------

async def test_allowlist_refuses_other_addresses_at_once() -> None:
    async with listening(allow=["10.0.0.0/8", "192.168.0.0/16"]) as running:
        async with peer(running.port) as (refused, _):
            assert await closed_by_listener(refused, within=2) == b""
        assert running.sample(REFUSED, reason="allowlist") == 1
        assert running.sample("hl7gw_connections_accepted_total") == 0


async def test_allowlist_admits_listed_addresses() -> None:
    async with listening(allow=["10.0.0.0/8", "127.0.0.1/32"]) as running:
        await still_serves(running)
        assert running.sample(REFUSED, reason="allowlist") == 0


async def test_global_cap_refuses_extra_connections_and_frees_slots() -> None:
    async with listening(max_connections=2) as running:
        async with peer(running.port) as (r1, w1), peer(running.port) as (r2, w2):
            for reader, writer in ((r1, w1), (r2, w2)):  # both admitted and served
                writer.write(encode_frame(b"MSH|held"))
                await read_frames(reader, 1)
            async with peer(running.port) as (r3, _):
                assert await closed_by_listener(r3, within=2) == b""
            assert running.sample(REFUSED, reason="cap") == 1
        await asyncio.sleep(0.1)  # the listener notices the two closes
        await still_serves(running)


async def test_per_ip_cap_refuses_a_second_connection_from_the_same_address() -> None:
    async with listening(max_connections_per_ip=1) as running:
        async with peer(running.port) as (r1, w1):
            w1.write(encode_frame(b"MSH|first"))
            await read_frames(r1, 1)
            async with peer(running.port) as (r2, _):
                assert await closed_by_listener(r2, within=2) == b""
            assert running.sample(REFUSED, reason="per_ip_cap") == 1
            w1.write(encode_frame(b"MSH|first again"))  # the admitted one goes on
            assert ack_code_of((await read_frames(r1, 1))[0].decode()) == "AA"
        await asyncio.sleep(0.1)
        await still_serves(running)


async def test_idle_connection_is_closed_quietly() -> None:
    async with listening(idle_timeout_s=0.3) as running:
        async with peer(running.port) as (reader, writer):
            writer.write(encode_frame(b"MSH|then silence"))
            await read_frames(reader, 1)
            began = asyncio.get_running_loop().time()
            assert await reader.read(10) == b""  # FIN, not RST
            assert asyncio.get_running_loop().time() - began < 2
        assert running.sample(RESETS, reason="idle_timeout") == 1
        assert running.sample(PARTIAL) == 0
        await still_serves(running)


class _KeepaliveProbe(MllpListener):
    """Records SO_KEEPALIVE of each accepted socket as the listener starts serving it."""

    keepalive_seen: ClassVar[list[int]] = []

    async def _serve(self, reader, writer, decoder, peer):  # type: ignore[no-untyped-def]
        sock = writer.get_extra_info("socket")
        self.keepalive_seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        await super()._serve(reader, writer, decoder, peer)


@pytest.mark.parametrize(("keepalive", "expected"), [(True, 1), (False, 0)])
async def test_keepalive_is_set_on_accepted_sockets(keepalive: bool, expected: int) -> None:
    _KeepaliveProbe.keepalive_seen = []
    async with listening(listener_class=_KeepaliveProbe, keepalive=keepalive) as running:
        await still_serves(running)
    assert _KeepaliveProbe.keepalive_seen == [expected]


# --- the sender side ---------------------------------------------------------------------

async def test_client_reports_a_lost_message_reconnects_and_goes_on(tmp_path: Path) -> None:
    async def drops(frame: bytes, peer_: str) -> bytes:
        if b"|DROP|" in frame:
            raise RuntimeError("simulated crash mid-message")
        return await ack_handler(frame, peer_)

    file = tmp_path / "three.hl7"
    file.write_bytes(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|ONE|P|2.5\n"
                     b"MSH|^~\\&|A|B|C|D|1||ADT^A01|DROP|P|2.5\n"
                     b"MSH|^~\\&|A|B|C|D|1||ADT^A01|THREE|P|2.5\n")
    async with listening(drops) as running:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["send", "--port", str(running.port), "--timeout", "5",
                                      str(file)])
        assert [ln.split()[0] for ln in result.stdout.splitlines()] == ["AA", "LOST", "AA"]
        assert "3 sent, 2 accepted, 0 refused, 1 lost" in result.stderr
        assert result.exit_code == 1
        assert running.sample("hl7gw_connections_accepted_total") == 2


async def test_batch_file_goes_as_one_frame(tmp_path: Path) -> None:
    batch = (b"FHS|^~\\&|A|B\r\nBHS|^~\\&|A|B\r\nMSH|^~\\&|A|B|C|D|1||ADT^A01|M1|P|2.5\r\n"
             b"PID|1\r\nMSH|^~\\&|A|B|C|D|1||ADT^A01|M2|P|2.5\r\nBTS|2\r\nFTS|1\r\n")
    file = tmp_path / "batch.hl7"
    file.write_bytes(batch)
    async with listening() as running:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["send", "--port", str(running.port), str(file)])
        assert result.exit_code == 0, result.output
        assert running.seen == [batch.replace(b"\r\n", b"\r")]
        assert "1 sent, 1 accepted, 0 refused" in result.stderr


async def test_client_timeout_is_a_lost_message_not_a_hang() -> None:
    async def slow(frame: bytes, peer_: str) -> bytes:
        await asyncio.sleep(3)
        return await ack_handler(frame, peer_)

    async with listening(slow) as running:
        async with MllpClient("127.0.0.1", running.port, timeout=0.3) as client:
            from gateway.mllp.client import MllpConnectionLost

            with pytest.raises(MllpConnectionLost):
                await client.send(b"MSH|slow")


# --- the whole gateway ---------------------------------------------------------------------

A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


async def test_gateway_acks_after_a_run_of_faults(gateway_settings: GatewaySettings) -> None:
    a01 = A01
    listener = gateway_settings.listeners[0].model_copy(update={"frame_timeout_s": 0.3})
    settings = gateway_settings.model_copy(update={"listeners": [listener]})
    async with GatewayService(settings, http=False) as gateway:
        port = gateway.listeners[0].port
        for fault in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x00\x05", b"\x0bMSH|partial"):
            async with peer(port) as (reader, writer):
                writer.write(fault)
                assert await closed_by_listener(reader) == b""
        async with peer(port) as (_, writer):
            writer.write(b"\x0b" + a01[:50])
            await writer.drain()
            reset(writer)
        async with MllpClient("127.0.0.1", port, timeout=10) as client:
            # AA, or CA when the sample asks for enhanced-mode acknowledgements
            assert ack_code_of((await client.send(a01)).decode()) in ("AA", "CA")
        registry = gateway.metrics.registry
        assert registry.get_sample_value(
            "hl7gw_non_mllp_connections_total", {"listener": "test", "kind": "http"}) == 1
        assert registry.get_sample_value(
            "hl7gw_partial_frames_dropped_total", {"listener": "test"}) == 2
