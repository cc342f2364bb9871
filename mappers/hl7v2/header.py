"""The message header (MSH) read into plain strings, for routing, ACKs and mapping."""

from __future__ import annotations

from dataclasses import dataclass

from mappers.errors import RequiredFieldMissing
from mappers.hl7v2.message import Segment


@dataclass(frozen=True, slots=True)
class Header:
    """What MSH says about a message; whole fields are raw text, parts are decoded values.

    ``sending_application`` & co. keep the whole field (``EPICADT^2.16.840.1^ISO``) so an ACK
    can echo it unchanged; ``message_code``, ``trigger_event``, ``structure``,
    ``processing_id`` and ``version`` are single components.
    """

    field_sep: str
    encoding_chars: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    timestamp: str
    message_code: str
    trigger_event: str
    structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str
    application_ack_type: str
    charset: str

    @property
    def message_type(self) -> str:
        """``ADT^A01``: message code and trigger event, the key mappings are chosen by."""
        return f"{self.message_code}^{self.trigger_event}"

    @classmethod
    def from_segment(cls, msh: Segment) -> Header:
        """Read MSH; ``RequiredFieldMissing`` when MSH-9 code/trigger or MSH-10 is empty."""
        raw = msh.raw_fields()
        f = raw + [""] * (19 - len(raw)) if len(raw) < 19 else raw
        enc = msh.encoding
        special = (enc.escape, enc.subcomponent, enc.repetition, '""')
        if not any(c in f[9] for c in special):  # the common case: plain components
            parts = [*f[9].split(enc.component), "", "", ""]
            code, trigger, structure = parts[0], parts[1], parts[2]
        else:
            msg_type = msh.field(9).first
            code, trigger = msg_type.component(1), msg_type.component(2)
            structure = msg_type.component(3)
        if not code or not trigger:
            part = "message code" if not code else "trigger event"
            raise RequiredFieldMissing(f"MSH-9 has no {part}", segment="MSH", sequence=1,
                                       field=9)
        if not f[10].strip() or f[10] == '""':
            raise RequiredFieldMissing("MSH-10 (message control id) is empty",
                                       segment="MSH", sequence=1, field=10)
        return cls(
            field_sep=f[1], encoding_chars=f[2],
            sending_application=f[3], sending_facility=f[4],
            receiving_application=f[5], receiving_facility=f[6],
            timestamp=f[7],
            message_code=code, trigger_event=trigger,
            structure=structure,
            control_id=f[10],
            processing_id=_first_component(msh, 11, f[11]),
            version=_first_component(msh, 12, f[12]),
            accept_ack_type=f[15], application_ack_type=f[16], charset=f[18],
        )


def _first_component(msh: Segment, n: int, raw: str) -> str:
    """Component 1 of MSH-n, decoded (without building field objects when it is plain)."""
    if not raw:
        return ""
    enc = msh.encoding
    if not any(c in raw for c in (enc.escape, enc.subcomponent, enc.repetition, '""')):
        return raw.split(enc.component, 1)[0]
    return msh.field(n).component(1)
