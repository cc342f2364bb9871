"""HL7 v2 text from values: escaping and the assembly of fields, components, segments.

A field value is built as data first: a list of repetitions, each a list of components,
each a list of subcomponents (plain, unescaped text). Escaping happens once, here, when the
value is joined with the standard delimiters ``|^~\\&``, so no writer can forget it.
"""

from __future__ import annotations

from typing import Final

FIELD: Final = "|"
COMPONENT: Final = "^"
REPETITION: Final = "~"
ESCAPE: Final = "\\"
SUBCOMPONENT: Final = "&"
ENCODING_CHARS: Final = COMPONENT + REPETITION + ESCAPE + SUBCOMPONENT

Component = list[str]  # subcomponents
Repetition = list[Component]  # components
FieldValue = list[Repetition]  # repetitions

_DELIMITERS: Final = {ESCAPE: "\\E\\", FIELD: "\\F\\", COMPONENT: "\\S\\",
                      SUBCOMPONENT: "\\T\\", REPETITION: "\\R\\"}


def escape(text: str, *, formatted: bool = False) -> str:
    """``text`` with the delimiters escaped; a line break is ``\\.br\\`` when ``formatted``
    (ST, TX, FT: text types where HL7 allows it), else ``\\X0D\\``/``\\X0A\\``; other
    control characters are written as ``\\Xhh\\`` so a segment never ends inside a value."""
    if formatted:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for ch in text:
        if ch in _DELIMITERS:
            out.append(_DELIMITERS[ch])
        elif ch == "\n" and formatted:
            out.append("\\.br\\")
        elif ch < " " or ch == "\x7f":
            out.append(f"\\X{ord(ch):02X}\\")
        else:
            out.append(ch)
    return "".join(out)


def _trim(parts: list[str]) -> list[str]:
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def escape_value(value: FieldValue, *, formatted: bool = False) -> FieldValue:
    """The same value with every subcomponent escaped (see ``escape``)."""
    return [[[escape(s, formatted=formatted) for s in comp] for comp in rep] for rep in value]


def join_field(value: FieldValue) -> str:
    """One field's text from an escaped value: repetitions by ``~``, components by ``^``,
    subcomponents by ``&``, trailing empty parts dropped."""
    reps = []
    for rep in value:
        comps = [SUBCOMPONENT.join(_trim(list(comp))) for comp in rep]
        reps.append(COMPONENT.join(_trim(comps)))
    return REPETITION.join(_trim(reps))


def join_segment(segment_id: str, fields: dict[int, str]) -> str:
    """A segment's text from its numbered fields (1-based; gaps empty, trailing dropped)."""
    if not fields:
        return segment_id
    last = max(n for n, text in fields.items() if text) if any(fields.values()) else 0
    parts = [segment_id, *(fields.get(n, "") for n in range(1, last + 1))]
    return FIELD.join(parts)


def join_msh(fields: dict[int, str]) -> str:
    """MSH: field 1 is the field separator itself and field 2 the encoding characters,
    written verbatim (never escaped)."""
    rest = {n - 1: text for n, text in fields.items() if n > 2}
    rest[1] = ENCODING_CHARS
    return join_segment("MSH", rest)
