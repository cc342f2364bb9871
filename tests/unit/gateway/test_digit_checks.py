"""``str.isdigit()`` takes "²" (and other scripts' digits) that int()/float() refuse or FHIR
does not allow: every such check is ASCII-only now (issue 16.3, 16.14)."""

from __future__ import annotations

import pytest

from connectors.cloud import create_app
from gateway.ack import build_ack, sniff_envelope, version_tuple
from gateway.batch import split_batch
from mappers.errors import UnsupportedVersion
from mappers.timestamps import TimestampError, to_fhir

MSH = "MSH|^~\\&|A|F|R|R|20240601120500||ADT^A08|X-1|P|{v}\rEVN|A08\r"


@pytest.mark.parametrize(("text", "expected"), [
    ("2.5.1", (2, 5, 1)), ("2.²", (2,)), ("²", ()), ("2.٣", (2,)), ("", ())])
def test_version_tuple_reads_ascii_digits_only(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_a_nak_for_a_superscript_version_is_built() -> None:
    env = sniff_envelope(MSH.format(v="2.²"))
    ack = build_ack(env, "AR", ack_control_id="A1", error=UnsupportedVersion("no"))
    assert "\rMSA|AR|X-1|" in ack


@pytest.mark.parametrize("count", ["²", "٣", "1²"])
def test_a_non_ascii_batch_count_is_no_count(count: str) -> None:
    batch = split_batch("BHS|^~\\&|A|F|R|R|2024||||B1\r" + MSH.format(v="2.5")
                        + f"BTS|{count}\r")
    assert batch.error is None and len(batch.messages) == 1


def test_a_batch_count_past_ints_digit_limit_is_a_mismatch() -> None:
    batch = split_batch("BHS|^~\\&|A|F|R|R|2024||||B1\r" + MSH.format(v="2.5")
                        + "BTS|" + "9" * 5000 + "\r")
    assert batch.error is not None and "BTS-1 says 999999999999..." in str(batch.error)
    assert split_batch("BHS|^~\\&|A\r" + MSH.format(v="2.5") + "BTS|0001\r").error is None


@pytest.mark.parametrize("value", ["20240601120000.²+0000", "20240601120000.٣", "2024²"])
def test_timestamps_refuse_non_ascii_digits(value: str) -> None:
    with pytest.raises(TimestampError):
        to_fhir(value, "instant")


async def _post(app: object, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """POST /events straight through ASGI (the header is sent exactly as given)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/events", "raw_path": b"/events",
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    start = next(m for m in sent if m["type"] == "http.response.start")
    return int(str(start["status"]))


@pytest.mark.parametrize("length", [b"\xb2", b"9" * 5000])
async def test_the_function_refuses_odd_content_lengths_without_a_500(length: bytes) -> None:
    status = await _post(create_app(), [(b"content-length", length),
                                        (b"content-type", b"application/cloudevents+json")],
                         b"{}")
    assert status < 500
