"""Framing edge cases over a real socket: what ``FrameDecoder`` guarantees reaches the peer.

Unit and fuzz tests hold the decoder to "any chunking, the same frames"; these check the
listener acts on that, one TCP write carrying several frames.
"""

from __future__ import annotations

import pytest

from gateway.ack import ack_code_of
from gateway.mllp.framing import VT, FrameDecoder, encode_frame
from tests.integration.mllp_helpers import closed_by_listener, listening, peer, wait_for_metric

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_a_frame_before_an_oversize_one_in_the_same_write_is_answered() -> None:
    # The decoder raised FrameTooLarge with the whole read, and the frame completed before
    # the oversized one in that read was lost: the sender never got its ACK.
    async with listening(max_frame_bytes=4096) as running:
        async with peer(running.port) as (reader, writer):
            writer.write(encode_frame(b"MSH|FIRST") + VT + b"x" * 5000)
            received = await closed_by_listener(reader)
        frames = FrameDecoder().feed(received)
        assert len(frames) == 1 and ack_code_of(frames[0].decode()) == "AA"
        assert running.seen == [b"MSH|FIRST"]
        await wait_for_metric(running, "hl7gw_connections_closed_by_gateway_total",
                              reason="frame_too_large")
