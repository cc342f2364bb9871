"""The message header (MSH) read into plain strings, for routing, ACKs and mapping."""

from __future__ import annotations

from dataclasses import dataclass

from mappers.errors import RequiredFieldMissing
from mappers.hl7v2.message import Segment


@dataclass(init=False, eq=True, slots=True)
class Header:
    """What MSH says about a message; whole fields are raw text, parts are decoded values.

    ``sending_application`` & co. keep the whole field (``EPICADT^2.16.840.1^ISO``) so an ACK
    can echo it unchanged; ``message_code``, ``trigger_event``, ``structure``,
    ``processing_id`` and ``version`` are single components. Read-only by convention: the
    ``__init__`` is written out (not frozen) because one is made per message and mypyc
    compiles only an explicit one.
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

    def __init__(self, *, field_sep: str,
                 encoding_chars: str,
                 sending_application: str,
                 sending_facility: str,
                 receiving_application: str,
                 receiving_facility: str,
                 timestamp: str,
                 message_code: str,
                 trigger_event: str,
                 structure: str,
                 control_id: str,
                 processing_id: str,
                 version: str,
                 accept_ack_type: str,
                 application_ack_type: str,
                 charset: str) -> None:
        self.field_sep = field_sep
        self.encoding_chars = encoding_chars
        self.sending_application = sending_application
        self.sending_facility = sending_facility
        self.receiving_application = receiving_application
        self.receiving_facility = receiving_facility
        self.timestamp = timestamp
        self.message_code = message_code
        self.trigger_event = trigger_event
        self.structure = structure
        self.control_id = control_id
        self.processing_id = processing_id
        self.version = version
        self.accept_ack_type = accept_ack_type
        self.application_ack_type = application_ack_type
        self.charset = charset

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
