"""MLLP framing, fed bytes directly (no sockets)."""

from __future__ import annotations

import pytest

from gateway.mllp.framing import FrameDecoder, FrameTooLarge, encode_frame


def test_one_frame() -> None:
    assert FrameDecoder().feed(encode_frame(b"MSH|x")) == [b"MSH|x"]


def test_two_frames_in_one_write_come_out_in_order() -> None:
    data = encode_frame(b"one") + encode_frame(b"two")
    assert FrameDecoder().feed(data) == [b"one", b"two"]


def test_frame_dribbled_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    out: list[bytes] = []
    for byte in encode_frame(b"MSH|dribble") + encode_frame(b"next"):
        out += decoder.feed(bytes([byte]))
    assert out == [b"MSH|dribble", b"next"]


def test_split_between_fs_and_cr() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x0bABC\x1c") == []
    assert decoder.in_frame
    assert decoder.feed(b"\r") == [b"ABC"]
    assert not decoder.in_frame


def test_garbage_before_and_between_frames_is_discarded_and_counted() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(b"\x00\x00junk" + encode_frame(b"A") + b"xx" + encode_frame(b"B"))
    assert frames == [b"A", b"B"]
    assert decoder.discarded_bytes == 6 + 2


def test_strict_mode_keeps_fs_without_cr_as_data() -> None:
    assert FrameDecoder().feed(b"\x0bA\x1cB\x1c\r") == [b"A\x1cB"]


def test_lenient_mode_accepts_fs_without_cr() -> None:
    decoder = FrameDecoder(strict_end=False)
    assert decoder.feed(b"\x0bA\x1c\x0bB\x1c\r") == [b"A", b"B"]


def test_frame_over_limit_raises_keeps_its_head_and_skips_the_rest_of_it() -> None:
    decoder = FrameDecoder(max_frame_bytes=10)
    with pytest.raises(FrameTooLarge) as raised:
        decoder.feed(b"\x0bMSH|" + b"x" * 11)
    assert raised.value.head == b"MSH|xxxxxx"  # the cap's worth, for the refusal's MSH
    assert decoder.buffered == 0  # nothing past the cap is held
    assert decoder.in_frame and decoder.skipping
    # the rest of the refused frame is dropped up to its end; the next frame comes through
    assert decoder.feed(b"y" * 1000 + b"\x1c\r\x0bnext\x1c\r") == [b"next"]
    assert not decoder.in_frame and not decoder.skipping
    assert decoder.discarded_bytes == 0


def test_a_whole_oversized_frame_in_one_read_hands_back_what_followed_it() -> None:
    decoder = FrameDecoder(max_frame_bytes=3)
    with pytest.raises(FrameTooLarge) as raised:
        decoder.feed(b"\x0bA\x1c\r\x0bTOO BIG\x1c\r\x0bB\x1c\r")
    assert raised.value.frames == [b"A"]
    assert raised.value.head == b"TOO"
    assert decoder.feed(raised.value.rest) == [b"B"]


def test_frame_exactly_at_limit_passes() -> None:
    assert FrameDecoder(max_frame_bytes=10).feed(encode_frame(b"x" * 10)) == [b"x" * 10]


def test_empty_frame_is_a_frame() -> None:
    assert FrameDecoder().feed(b"\x0b\x1c\r") == [b""]


def test_reset_drops_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x0bpartial")
    decoder.reset()
    assert decoder.feed(b"rest\x1c\r" + encode_frame(b"C")) == [b"C"]
