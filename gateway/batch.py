"""HL7 batches: FHS/BHS … BTS/FTS in one frame, split into messages and answered once.

A batch whose BTS-1 count disagrees with the messages it holds is refused whole (AR,
nothing stored): it was cut or assembled wrongly, and a partial acceptance would hide that.
Otherwise each message is checked and spooled on its own, and the sender gets either one
ACK for the batch (``batch_ack: batch``; AA when every message was accepted, else AE with
one ERR per refused message) or an ACK batch with one ACK per message
(``batch_ack: messages``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

from gateway.ack import Envelope, build_ack, clean, hl7_timestamp
from mappers.errors import MessageError, SegmentSequenceError, UnreadableMessage
from mappers.hl7v2.envelope import DEFAULT_ENCODING, sane_delimiters

_LINES = re.compile(r"\r\n|\r|\n")
_COUNT = re.compile("[0-9]+")


@dataclass(frozen=True)
class Batch:
    """A split batch: the envelope to answer, its control id and its messages."""

    envelope: Envelope
    control_id: str
    messages: list[str] = field(default_factory=list)
    error: MessageError | None = None


def split_batch(text: str) -> Batch:
    """Split a batch file's text; a count mismatch is returned as ``error``."""
    lines = [ln for ln in _LINES.split(text.lstrip("\ufeff\xef\xbb\xbf")) if ln.strip()]
    if not lines or len(lines[0]) < 8:
        raise UnreadableMessage("empty batch")
    sep = lines[0][3]
    header = next((ln for ln in lines if ln.startswith("BHS")), lines[0])
    fields = header.split(sep)
    if not sane_delimiters(sep, fields[1] if len(fields) > 1 else ""):
        raise UnreadableMessage("the batch header's delimiters (FHS/BHS-1 and -2) are not "
                                "4 or 5 distinct punctuation characters",
                                segment=lines[0][:3], sequence=1, field=2)
    env = _envelope(fields, sep)
    control_id = fields[10] if len(fields) > 10 else ""
    messages: list[list[str]] = []
    declared: str | None = None  # BTS-1 when it is a count (ASCII digits), as sent
    for line in lines:
        tag = line[:3]
        if tag in ("FHS", "BHS", "FTS"):
            continue
        if tag == "BTS":
            count = line.split(sep)[1].strip() if len(line.split(sep)) > 1 else ""
            # [0-9] only: str.isdigit() takes "²", which int() refuses
            declared = count if _COUNT.fullmatch(count) else None
            continue
        if tag == "MSH":
            messages.append([line])
        elif messages:
            messages[-1].append(line)
        else:
            raise SegmentSequenceError(f"segment {tag} before the batch's first MSH",
                                       segment=tag)
    texts = ["\r".join(m) + "\r" for m in messages]
    env = _with_version(env, texts)
    batch = Batch(env, control_id, texts)
    if not texts:
        return Batch(env, control_id, [], SegmentSequenceError(
            "the batch holds no messages", segment="BHS"))
    if declared is not None and (declared.lstrip("0") or "0") != str(len(texts)):
        shown = declared if len(declared) <= 12 else declared[:12] + "..."
        return Batch(env, control_id, texts, _CountMismatch(
            f"BTS-1 says {shown} messages, the batch holds {len(texts)}",
            segment="BTS", field=1))
    return batch


class _CountMismatch(SegmentSequenceError):
    """BTS-1 disagrees with the batch's content: refuse it whole."""

    ack_code = "AR"


def _envelope(fields: list[str], sep: str) -> Envelope:
    def get(n: int) -> str:
        return fields[n - 1] if len(fields) > n - 1 else ""

    enc = get(2) if sane_delimiters(sep, get(2)) else DEFAULT_ENCODING
    return Envelope(field_sep=sep, encoding_chars=enc, sending_application=get(3),
                    sending_facility=get(4), receiving_application=get(5),
                    receiving_facility=get(6), control_id=get(11))


def _with_version(env: Envelope, texts: list[str]) -> Envelope:
    if not texts:
        return env
    fields = texts[0].split("\r", 1)[0].split(env.field_sep)
    version = fields[11].split(env.encoding_chars[0])[0] if len(fields) > 11 else ""
    processing = fields[10].split(env.encoding_chars[0])[0] if len(fields) > 10 else ""
    return dataclasses.replace(env, version=version or env.version,
                               processing_id=processing or env.processing_id)


def build_batch_ack(batch: Batch, results: list[tuple[str, bytes, MessageError | None]], *,
                    mode: Literal["batch", "messages"], ack_control_id: str) -> tuple[str, str]:
    """The answer to a batch and its overall code: (text, "AA" | "AE")."""
    env = batch.envelope
    failed = [(i, cid, err) for i, (cid, _, err) in enumerate(results, 1) if err is not None]
    code = "AE" if failed else "AA"
    if mode == "messages":
        s = env.field_sep
        bhs = s.join(["BHS", env.encoding_chars, *(clean(v, env) for v in (
            env.receiving_application, env.receiving_facility, env.sending_application,
            env.sending_facility)), hl7_timestamp(), "", "", "", ack_control_id,
            clean(batch.control_id, env)])
        body = "".join(ack.decode("utf-8", "replace") for _, ack, _ in results)
        return f"{bhs}\r{body}BTS{s}{len(results)}\r", code
    if not failed:
        return build_ack(env, "AA", ack_control_id=ack_control_id), code
    text = build_ack(env, "AE", ack_control_id=ack_control_id, error=_numbered(*failed[0]))
    for number, cid, err in failed[1:]:
        assert err is not None
        extra = build_ack(env, "AE", ack_control_id=ack_control_id,
                          error=_numbered(number, cid, err))
        text += next(seg for seg in extra.split("\r") if seg.startswith("ERR")) + "\r"
    return text, code


def _numbered(number: int, control_id: str, err: MessageError | None) -> MessageError:
    """The message's error, its text prefixed with its place in the batch."""
    assert err is not None
    out = type(err)(f"message {number} (MSH-10 {control_id}): {err}", segment=err.segment,
                    sequence=err.sequence, field=err.field)
    return out

