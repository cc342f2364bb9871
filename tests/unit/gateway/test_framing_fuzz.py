"""Fuzzing MLLP framing: any chunking of any bytes gives the same frames.

``FrameDecoder.feed`` raises ``FrameTooLarge`` and nothing else; after it the listener refuses
the oversized frame and goes on with what follows it, and so does ``run`` here. Bounded
(see tests/support/fuzz.py).
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.mllp.framing import CR, FS, VT, FrameDecoder, FrameTooLarge, encode_frame
from tests.support.fuzz import fuzz, fuzz_settings

pytestmark = fuzz

# bytes dense in the framing bytes, so frames start, end and break often
PIECES = st.sampled_from([VT, FS, CR, FS + CR, VT + b"MSH|^~\\&|A", b"\n", b"x", b"\xff"])
STREAMS = st.lists(PIECES | st.binary(max_size=6), max_size=40).map(b"".join)


Outcome = tuple[list[bytes | tuple[str, bytes]], int, bool]


def run(decoder: FrameDecoder, chunks: list[bytes]) -> Outcome:
    """What the listener sees: frames and refusals (("too large", head)) in order, the
    discarded bytes, and whether a frame is still open at the end.

    After ``FrameTooLarge`` the listener answers the frames before it, refuses the oversized
    one and feeds ``rest``; the decoder skips the refused frame's remaining bytes itself.
    """
    seen: list[bytes | tuple[str, bytes]] = []
    for chunk in chunks:
        data = chunk
        while True:
            try:
                seen += decoder.feed(data)
            except FrameTooLarge as exc:
                seen += [*exc.frames, ("too large", exc.head)]
                data = exc.rest
                if data:
                    continue
            break
    return seen, decoder.discarded_bytes, decoder.in_frame


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@fuzz_settings(3000)
@given(data=STREAMS, cuts=st.lists(st.integers(min_value=0), max_size=12),
       strict=st.booleans(), limit=st.integers(min_value=1, max_value=40))
@example(data=VT + b"abc" + FS + CR, cuts=[4], strict=True, limit=3)  # FS ends a chunk at the cap
@example(data=VT + b"abc" + FS + CR + VT + b"d" + FS + CR, cuts=[5], strict=False, limit=10)
@example(data=VT + FS + VT + b"MSH|^~\\&|A", cuts=[2], strict=False, limit=1)  # frame, then too big
def test_any_chunking_gives_the_same_frames(data: bytes, cuts: list[int], strict: bool,
                                            limit: int) -> None:
    whole = run(FrameDecoder(max_frame_bytes=limit, strict_end=strict), [data])
    chunked = run(FrameDecoder(max_frame_bytes=limit, strict_end=strict), split(data, cuts))
    assert chunked == whole
    bytewise = run(FrameDecoder(max_frame_bytes=limit, strict_end=strict),
                   [data[i:i + 1] for i in range(len(data))])
    assert bytewise == whole


@fuzz_settings(2000)
@given(payloads=st.lists(st.binary(max_size=30).map(
    lambda b: b.replace(VT, b"").replace(FS, b"")), max_size=5),
       noise=st.binary(max_size=10).map(lambda b: b.replace(VT, b"")),
       cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_encoded_frames_come_back_whole_and_noise_is_counted(
        payloads: list[bytes], noise: bytes, cuts: list[int]) -> None:
    data = noise + b"".join(encode_frame(p) for p in payloads)
    frames, discarded, in_frame = run(FrameDecoder(), split(data, cuts))
    assert frames == payloads
    assert not in_frame
    assert discarded == len(noise)


@fuzz_settings(2000)
@given(data=STREAMS, limit=st.integers(min_value=1, max_value=40))
def test_no_frame_over_the_cap_is_returned(data: bytes, limit: int) -> None:
    seen, _, _ = run(FrameDecoder(max_frame_bytes=limit), [data])
    frames = [f for f in seen if isinstance(f, bytes)]
    assert all(len(f) <= limit for f in frames)
    assert all(len(head) <= limit for kind, head in (r for r in seen if isinstance(r, tuple)))


@fuzz_settings(2000)
@given(before=st.binary(max_size=8), big=st.integers(min_value=1, max_value=30),
       after=st.binary(max_size=8), cuts=st.lists(st.integers(min_value=0), max_size=8),
       strict=st.booleans())
def test_an_oversized_frame_is_refused_once_and_the_frames_after_it_come_through(
        before: bytes, big: int, after: bytes, cuts: list[int], strict: bool) -> None:
    clean = [p.replace(VT, b"").replace(FS, b"") for p in (before, after)]
    limit = 10
    oversized = b"MSH|" + b"x" * (limit + big)
    data = encode_frame(clean[0]) + encode_frame(oversized) + encode_frame(clean[1])
    seen, _, in_frame = run(FrameDecoder(max_frame_bytes=limit + 4, strict_end=strict),
                            split(data, cuts))
    assert seen == [clean[0], ("too large", oversized[:limit + 4]), clean[1]]
    assert not in_frame
