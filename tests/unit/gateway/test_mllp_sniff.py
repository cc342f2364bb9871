"""Telling MLLP from TLS and HTTP by the first bytes of a connection (no sockets)."""

from __future__ import annotations

import pytest

from gateway.mllp.client import split_messages
from gateway.mllp.framing import FrameDecoder, encode_frame, sniff_protocol


@pytest.mark.parametrize(("head", "kind"), [
    (b"\x0bMSH|", "mllp"),
    (b"\x00\x00junk", "mllp"),
    (b"Garbage", "mllp"),
    (b"\x16\x03\x01\x02\x00", "tls"),
    (b"\x16\x03", "tls"),
    (b"\x16", None),
    (b"\x16\x0b", "mllp"),
    (b"GET / HTTP/1.1", "http"),
    (b"POST /x", "http"),
    (b"OPTIONS *", "http"),
    (b"PRI * HTTP/2", "http"),
    (b"GE", None),
    (b"POS", None),
    (b"", None),
])
def test_sniff_protocol(head: bytes, kind: str | None) -> None:
    assert sniff_protocol(head) == kind


def test_decoder_remembers_that_a_frame_started() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"noise")
    assert not decoder.seen_start
    decoder.feed(encode_frame(b"A"))
    assert decoder.seen_start and not decoder.in_frame


def test_batch_file_is_one_item_with_cr_segment_ends() -> None:
    batch = b"\xef\xbb\xbfFHS|^~\\&\r\nBHS|^~\\&\nMSH|a\nPID|1\n\nMSH|b\nBTS|2\nFTS|1\n"
    assert split_messages(batch) == [b"FHS|^~\\&\rBHS|^~\\&\rMSH|a\rPID|1\rMSH|b\rBTS|2\rFTS|1\r"]


def test_bhs_without_fhs_is_a_batch_too() -> None:
    assert len(split_messages(b"BHS|^~\\&\rMSH|a\rMSH|b\rBTS|2\r")) == 1


def test_plain_messages_still_split() -> None:
    assert split_messages(b"MSH|a\nPID|1\nMSH|b\n") == [b"MSH|a\rPID|1\r", b"MSH|b\r"]
