"""Build HL7 v2 acknowledgements (ACK) for received messages.

AR versus AE, settled once (see docs/acks.md): **AR** when the envelope is unacceptable —
the bytes are not an HL7 message, or MSH names a type, event, processing id or version
this listener does not take. **AE** when the message was read but its content is wrong
(required field missing, bad data type, segment order) or we failed to process it (207).
Either way an ERR segment carries the HL7 table 0357 code and a readable text.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from mappers.errors import MessageError
from mappers.hl7v2.envelope import DEFAULT_ENCODING, Envelope, sniff_text

__all__ = ["DEFAULT_ENCODING", "Envelope", "ack_bytes", "ack_code_of", "answer_code",
           "build_ack", "escape", "hl7_timestamp", "sniff_envelope", "version_tuple"]


def sniff_envelope(text: str) -> Envelope:
    """Read what an ACK needs from the first segment of ``text``, never raising.

    Used for the NAK of a message the parser refused: whatever can be echoed is echoed,
    so the sender can match the NAK to its message (``mappers.hl7v2.envelope``; from
    bytes, ``sniff``).
    """
    return sniff_text(text).envelope


ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}


def answer_code(code: str, env: Envelope) -> str | None:
    """The MSA-1 to send for an original-mode outcome, or None to send nothing.

    Original mode (MSH-15 and MSH-16 empty): AA/AE/AR as given. Enhanced mode: the commit
    ACK CA/CE/CR, sent as MSH-15 asks — AL always, NE never, ER only on CE/CR, SU only on
    CA (an empty MSH-15 beside a valued MSH-16 counts as AL). The application ACK of
    MSH-16 is not sent: the gateway's commit is the last word it has on a message.
    """
    if not env.enhanced:
        return code
    commit = ENHANCED[code]
    condition = env.accept_ack_type or "AL"
    if condition == "NE":
        return None
    if condition == "ER" and commit == "CA":
        return None
    if condition == "SU" and commit != "CA":
        return None
    return commit


# Characters that must never reach an ACK as they are: MLLP's start and end bytes (0x0B,
# 0x1C), CR and LF (segment ends) and every other C0 control and DEL.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def clean(value: str, env: Envelope) -> str:
    """A field echoed from the message, its control characters as HL7 hex escapes.

    The field's own delimiters stay (MSH-3 ``APP^1.2.3^ISO`` is echoed as sent); only
    what would break the ACK's framing or segments is escaped (``\\X1C\\``).
    """
    if value.isprintable():  # the common case: nothing to do (control chars are not)
        return value
    esc = env.encoding_chars[2]
    return _CONTROL.sub(lambda m: f"{esc}X{ord(m.group()):02X}{esc}", value)


def escape(text: str, env: Envelope) -> str:
    """Escape HL7 delimiters in free text placed into an ACK; controls become spaces."""
    comp, rep, esc, sub = (env.encoding_chars[i] for i in range(4))
    out = text.replace(esc, f"{esc}E{esc}")
    for char, code in ((env.field_sep, "F"), (comp, "S"), (rep, "R"), (sub, "T")):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out if out.isprintable() else _CONTROL.sub(" ", out)


def hl7_timestamp(now: datetime | None = None) -> str:
    """An HL7 DTM with seconds and offset, e.g. 20261126134500+0000.

    The current time's text is kept for the rest of its second: ``strftime`` cost about
    9 us, an eighth of intake's own work per frame.
    """
    if now is not None:
        return now.strftime("%Y%m%d%H%M%S%z")
    second = int(time.time())
    if second != _stamp[0]:
        _stamp[:] = [second, datetime.fromtimestamp(second, UTC).strftime("%Y%m%d%H%M%S%z")]
    return str(_stamp[1])


_stamp: list[int | str] = [-1, ""]  # [whole second, its DTM text]


def build_ack(
    env: Envelope,
    code: str,
    *,
    ack_control_id: str,
    error: MessageError | None = None,
    now: datetime | None = None,
) -> str:
    """Return the ACK message text (segments joined by CR, no MLLP framing).

    The ACK swaps sender and receiver, echoes MSH-10 in MSA-2, and for AE/AR adds an ERR
    segment: ERR-1 (ELD) for versions before 2.5, ERR-2/3/4/8 from 2.5 on.
    """
    s = env.field_sep
    comp, sub = env.encoding_chars[0], env.encoding_chars[3]
    trigger = clean(env.trigger_event, env)
    msg_type = f"ACK{comp}{trigger}{comp}ACK" if trigger else "ACK"
    msh = s.join([
        "MSH", env.encoding_chars, clean(env.receiving_application, env),
        clean(env.receiving_facility, env), clean(env.sending_application, env),
        clean(env.sending_facility, env), hl7_timestamp(now), "",
        msg_type, ack_control_id, clean(env.processing_id, env), clean(env.version, env),
    ])
    text = escape(str(error), env) if error else ""
    msa = s.join(["MSA", code, clean(env.control_id, env)] + ([text] if text else []))
    segments = [msh, msa]
    if error is not None:
        segments.append(_err_segment(env, error, text, comp, sub))
    return "\r".join(segments) + "\r"


def _err_segment(env: Envelope, error: MessageError, text: str, comp: str, sub: str) -> str:
    """ERR for the version the sender speaks."""
    s = env.field_sep
    seg = escape(error.segment or "", env)
    seq, fld = str(error.sequence or ""), str(error.field or "")
    code = error.err_code
    if (version_tuple(env.version) or (2, 5)) < (2, 5):
        eld = comp.join([seg, seq, fld, sub.join([code, text, "HL70357"])])
        return s.join(["ERR", eld])
    erl = comp.join([seg, seq, fld]) if seg else ""
    cwe = comp.join([code, text, "HL70357"])
    return s.join(["ERR", "", erl, cwe, "E", "", "", "", text])


def version_tuple(version: str) -> tuple[int, ...]:
    """``2.5.1`` as ``(2, 5, 1)``, to compare versions; ``()`` when it starts with no number."""
    parts = []
    for p in version.split("."):
        if not (p.isascii() and p.isdigit()):  # "²".isdigit() is True; int("²") fails
            break
        parts.append(int(p))
    return tuple(parts)


def ack_bytes(text: str, charset: str) -> bytes:
    """An ACK's text as bytes in ``charset``, guaranteed free of MLLP's 0x0B and 0x1C.

    Echoed fields hold no control characters (``clean``), so an ASCII-compatible charset
    cannot produce those bytes; UTF-16 can (a code unit like U+1C00), so then every
    non-ASCII character is replaced by ``?`` rather than break the sender's framing.
    """
    data = text.encode(charset, "replace")
    if b"\x0b" in data or b"\x1c" in data:
        data = "".join(c if c.isascii() else "?" for c in text).encode(charset, "replace")
    return data


def ack_code_of(ack_text: str) -> str:
    """MSA-1 of an ACK text ("AA", "AE", ...), or "" when there is no MSA."""
    for seg in ack_text.replace("\n", "\r").split("\r"):
        if seg.startswith("MSA") and len(seg) > 4:
            return seg.split(seg[3])[1]
    return ""
