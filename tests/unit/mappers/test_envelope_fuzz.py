"""Fuzzing the MSH envelope sniffer and the timestamp parser (hypothesis, bounded).

The sniffer runs on every frame before anything else, so it must take any bytes and any
text: it never raises, and what it returns is always usable to build an answer (sane
delimiters, no line breaks in echoed fields). ``to_fhir`` raises ``TimestampError`` and
nothing else for any text, and whatever it returns matches FHIR R4's pattern for the kind
asked. Settings and seeds: tests/support/fuzz.py.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from mappers.hl7v2.envelope import DEFAULT_ENCODING, Envelope, sane_delimiters, sniff, sniff_text
from mappers.timestamps import FHIR_PATTERNS, TimestampError, to_fhir
from tests.support.fuzz import fuzz, fuzz_settings

pytestmark = fuzz

MSH = "MSH|^~\\&|APP^1.2^ISO|FAC|GW|HUB|20240601120000||ADT^A01^ADT_A01|C1|P|2.5.1|||AL|NE||"
# bytes dense in what the sniffer looks at: BOMs, NULs (UTF-16), delimiters, line ends,
# MLLP's framing bytes, Latin-1 and UTF-8 high bytes, charset names
BYTE_ATOMS = st.sampled_from([
    b"MSH", b"FHS", b"BHS", b"|", b"^~\\&", b"^~\\&#", b"\r", b"\n", b" ", b"\x00", b"\x0b",
    b"\x1c", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xfc", b"\xb2", b"\xc2\xb2",
    b"8859/1", b"UNICODE UTF-16", b"UNICODE UTF-8", b"2.5.1", b"ADT^A01", b"~", b"#"])
FRAMES = st.one_of(
    st.binary(max_size=80),
    st.lists(BYTE_ATOMS | st.binary(max_size=3), max_size=30).map(b"".join),
    st.lists(BYTE_ATOMS | st.binary(max_size=3), max_size=20).map(
        lambda parts: MSH.encode() + b"".join(parts)),
    st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "latin-1", "utf-8"]).flatmap(
        lambda codec: st.text(max_size=30).map(
            lambda t: (MSH + t + "\rPID|1\r").encode(codec, "replace"))),
)


def usable(env: Envelope) -> None:
    assert sane_delimiters(env.field_sep, env.encoding_chars)
    for value in (env.sending_application, env.sending_facility, env.receiving_application,
                  env.receiving_facility, env.control_id, env.version, env.trigger_event,
                  env.processing_id, env.msh12):
        assert "\r" not in value and "\n" not in value


@fuzz_settings(2000)
@given(raw=FRAMES)
@example(raw=b"MSH\xfc^~\\&\xfcA")
@example(raw=b"MSH\r^~\\&\r")
@example(raw="MSH|^~\\&|A\r".encode("utf-16-be"))
@example(raw=b"\xff\xfe\x00")
def test_sniff_takes_any_bytes(raw: bytes) -> None:
    sniffed = sniff(raw)
    usable(sniffed.envelope)
    assert sniffed.layout in ("", "utf-8", "utf-16", "utf-16-le", "utf-16-be")


@fuzz_settings(2000)
@given(text=st.one_of(st.text(max_size=80), st.text(max_size=40).map(lambda t: MSH + t),
                      st.tuples(st.text(min_size=5, max_size=5), st.text(max_size=40)).map(
                          lambda p: f"MSH{p[0]}{p[1]}")))
@example(text="MSH^~\\&|^A")  # a field separator that is also a default encoding character
def test_sniff_text_takes_any_text(text: str) -> None:
    sniffed = sniff_text(text)
    usable(sniffed.envelope)
    if sniffed.envelope.encoding_chars != DEFAULT_ENCODING:
        assert text.lstrip("\ufeff\r\n ").startswith("MSH")


DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=14)
TS_ATOMS = st.sampled_from(["2024", "06", "01", "12", "00", "59", "60", "99", "13", "31",
                            "29", "0229", ".", ".1234", ".12345", "+0000", "-0500", "+1400",
                            "+1401", "-9999", "²", "٣", " ", "Z", "+", "-"])
TIMESTAMPS = st.one_of(st.text(max_size=24), DIGITS,
                       st.lists(TS_ATOMS | DIGITS, max_size=8).map("".join))


@fuzz_settings(2500)
@given(text=TIMESTAMPS, kind=st.sampled_from(["date", "dateTime", "instant"]),
       tz=st.sampled_from(["UTC", "Europe/Vienna", "America/Montreal", "Pacific/Kiritimati"]))
@example(text="20240601120000.²+0000", kind="instant", tz="UTC")
@example(text="20240601120000.٣", kind="dateTime", tz="UTC")
def test_timestamps_give_valid_fhir_or_timestamp_error(text: str, kind: str,
                                                       tz: str) -> None:
    try:
        out = to_fhir(text, kind, tz)  # type: ignore[arg-type]
    except TimestampError:
        return
    assert FHIR_PATTERNS[kind].fullmatch(out), (text, kind, out)
