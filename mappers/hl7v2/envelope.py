"""The MSH envelope read straight from a message's bytes: one sniffer for every caller.

Before a message can be decoded, something must read its header: MSH-3/4/12 choose the
sender's profile and settings, MSH-18 may name the charset, and a refusal's NAK echoes
MSH-10. MSH is ASCII in every charset HL7 allows, so the header line is read from the bytes
(Latin-1 maps each byte to one character and never fails) without decoding the message.
Two byte layouts are not ASCII-compatible and are recognised first: a UTF-8 byte order mark
(skipped), and UTF-16 LE/BE, told by its byte order mark or, without one, by the NUL bytes
around ``MSH`` (the message then declares ``UNICODE UTF-16`` in MSH-18).

The sniffer never raises and trusts nothing: MSH-1 and MSH-2 are used only when they are
printable ASCII punctuation, distinct, like the tokenizer demands; otherwise the standard
``|^~\\&`` stands in (and with an unusable MSH-1 no field is read at all). Fields keep the
sender's raw text; whoever echoes them (the ACK builder) cleans them for its output.

Pure and cheap (it runs for every MLLP frame): it slices the first line only.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Final

DEFAULT_FIELD_SEP: Final = "|"
DEFAULT_ENCODING: Final = "^~\\&"

# MSH-18 values (HL7 table 0211) -> Python codecs.
HL7_CHARSETS: Final[dict[str, str]] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "ISO IR192": "utf-8",
    "WINDOWS-1252": "cp1252",
    "CP1252": "cp1252",
}

_DELIMITERS: Final = frozenset(string.punctuation)
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_LE_BOM: Final = b"\xff\xfe"
_UTF16_BE_BOM: Final = b"\xfe\xff"
_LEADING: Final = "\ufeff\r\n "  # what may stand before the first segment
_MSH_LE: Final = "MSH".encode("utf-16-le")
_MSH_BE: Final = "MSH".encode("utf-16-be")


# Read-only by convention, not frozen: a frozen dataclass sets each field through
# object.__setattr__, which made building one cost more than the rest of sniffing a frame.
@dataclass(slots=True)
class Envelope:
    """The MSH fields an ACK echoes and a profile is chosen by, read tolerantly.

    ``field_sep`` and ``encoding_chars`` are always usable delimiters (the sender's when
    sane, else the standard ones). ``version`` is MSH-12.1 or ``2.5.1`` for an ACK to
    speak; ``msh12`` is MSH-12.1 as sent ("" when empty), which profiles match on.
    """

    field_sep: str = DEFAULT_FIELD_SEP
    encoding_chars: str = DEFAULT_ENCODING
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    trigger_event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5.1"
    accept_ack_type: str = ""  # MSH-15
    application_ack_type: str = ""  # MSH-16
    msh12: str = ""
    charset_field: str = ""  # MSH-18, first repetition, upper case

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgement mode: the sender valued MSH-15 or MSH-16."""
        return bool(self.accept_ack_type or self.application_ack_type)

    def first_component(self, value: str) -> str:
        """``value`` up to its first component separator, stripped (MSH-3.1 and such)."""
        return value.split(self.encoding_chars[0], 1)[0].strip()

    @property
    def sender_key(self) -> tuple[str, str, str]:
        """(MSH-3.1, MSH-4.1, MSH-12.1): what sender profiles are matched on."""
        return (self.first_component(self.sending_application),
                self.first_component(self.sending_facility), self.msh12)


@dataclass(slots=True)
class Sniffed:
    """What the bytes say before decoding: the envelope and how the bytes are laid out.

    ``layout`` is the codec the bytes must be read with whatever anyone configured
    (``utf-16`` with a UTF-16 BOM, ``utf-16-le``/``utf-16-be`` without one, ``utf-8``
    after a UTF-8 BOM), or "" for an ordinary ASCII-compatible message. ``declared`` is
    the codec MSH-18 names, or "" when MSH-18 is empty or names no charset we know.
    """

    envelope: Envelope
    layout: str = ""
    declared: str = ""
    batch: bool = False  # the first segment is FHS or BHS (its envelope: gateway.batch)



def sane_delimiters(field_sep: str, encoding_chars: str) -> bool:
    """MSH-1 and MSH-2 the tokenizer would accept: 1 + 4 or 5 distinct ASCII punctuation."""
    if field_sep == DEFAULT_FIELD_SEP and encoding_chars == DEFAULT_ENCODING:
        return True  # nearly every message: no sets built
    every = field_sep + encoding_chars
    return (len(field_sep) == 1 and 4 <= len(encoding_chars) <= 5
            and len(set(every)) == len(every) and set(every) <= _DELIMITERS)


def sniff(raw: bytes) -> Sniffed:
    """The envelope and byte layout of a message (or batch) given as bytes; never raises."""
    layout = ""
    head = raw[:3]
    if head == _UTF8_BOM:
        layout = "utf-8"
        raw = raw[3:]
    elif head[:2] in (_UTF16_LE_BOM, _UTF16_BE_BOM):
        layout = "utf-16"
    elif b"\x00" in raw[:16]:
        # UTF-16 without a BOM: "MSH" with a NUL after (LE) or before (BE) each letter,
        # told apart by alignment (a code unit starts at an even offset).
        if raw.find(_MSH_LE, 0, 16) % 2 == 0:
            layout = "utf-16-le"
        elif raw.find(_MSH_BE, 0, 16) % 2 == 0:
            layout = "utf-16-be"
    if layout.startswith("utf-16"):
        first = _utf16_first_line(raw, layout)
    else:
        # The first line only: MSH is ASCII, so Latin-1 reads it without failing.
        end = _line_end(raw)
        first = raw[:end].decode("latin-1") if end >= 0 else raw.decode("latin-1")
        if not first.strip(_LEADING):  # blank lines before the first segment
            first = raw.decode("latin-1").lstrip(_LEADING)
            first = first[:_text_line_end(first)]
    result = sniff_text(first)
    if layout:
        return Sniffed(result.envelope, layout, result.declared, result.batch)
    return result


def sniff_text(text: str) -> Sniffed:
    """``sniff`` for text already decoded (the console's playground, a batch's parts)."""
    text = text.lstrip(_LEADING)
    tag = text[:3]
    if tag in ("FHS", "BHS"):
        return Sniffed(Envelope(), batch=True)  # gateway.batch reads a batch's header
    first = text[:_text_line_end(text)]
    if tag != "MSH" or len(first) < 8 or first[3] not in _DELIMITERS:
        return Sniffed(Envelope())  # not HL7, or MSH-1 unusable: no field can be read
    sep = first[3]
    # MSH-1 is the separator itself, so MSH-n sits at index n - 1; fields the message
    # leaves off are padded as empty (runs for every frame: no per-field helper call).
    fields = first.split(sep, 18)
    if len(fields) < 18:
        fields += [""] * (18 - len(fields))
    enc = fields[1]
    if not sane_delimiters(sep, enc):
        if sep in DEFAULT_ENCODING:
            return Sniffed(Envelope())
        enc = DEFAULT_ENCODING
    comp = enc[0]
    msg_type = fields[8].split(comp)
    version = fields[11].split(comp, 1)[0].strip()
    declared = fields[17].split(enc[1], 1)[0].strip().upper() if fields[17] else ""
    env = Envelope(
        field_sep=sep,
        encoding_chars=enc,
        sending_application=fields[2],
        sending_facility=fields[3],
        receiving_application=fields[4],
        receiving_facility=fields[5],
        trigger_event=msg_type[1] if len(msg_type) > 1 else "",
        control_id=fields[9],
        processing_id=fields[10].split(comp)[0] or "P",
        version=version or "2.5.1",
        accept_ack_type=fields[14].strip().upper(),
        application_ack_type=fields[15].strip().upper(),
        msh12=version,
        charset_field=declared,
    )
    return Sniffed(env, declared=HL7_CHARSETS.get(declared, "") if declared else "")


def _line_end(raw: bytes) -> int:
    """Index of the first CR or LF in ``raw``, or -1."""
    cr = raw.find(b"\r")
    lf = raw.find(b"\n", 0, cr if cr >= 0 else len(raw))
    return lf if lf >= 0 else cr


def _text_line_end(text: str) -> int:
    cr = text.find("\r")
    lf = text.find("\n", 0, cr if cr >= 0 else len(text))
    return lf if lf >= 0 else (cr if cr >= 0 else len(text))


def _utf16_first_line(raw: bytes, layout: str) -> str:
    """The first line of UTF-16 bytes (at most 64 KiB read; undecodable units replaced)."""
    text = raw[:65536].decode(layout, "replace").lstrip(_LEADING)
    return text[:_text_line_end(text)]
