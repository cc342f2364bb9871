"""What a profile file may say: the pydantic models it is validated against.

Field types here turn YAML's guesses back into text (``version: 2.5`` is the text "2.5",
not a number) and check match keys; the models refuse unknown keys.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hl7gw.fieldtypes import Charset, TimeZone
from mappers.engine.models import TableValue
from mappers.engine.refs import FieldRef

# The value[x] element an extension gets for each datatype's output.
EXTENSION_VALUE: dict[str, str] = {
    "ST": "valueString", "TX": "valueString", "FT": "valueString", "SI": "valueString",
    "text": "valueString", "code": "valueCode", "ID": "valueCode", "IS": "valueCode",
    "CWE": "valueCodeableConcept", "CE": "valueCodeableConcept",
    "CNE": "valueCodeableConcept", "CF": "valueCodeableConcept",
    "TS": "valueDateTime", "DTM": "valueDateTime", "DT": "valueDate",
    "NM": "valueDecimal", "CX": "valueIdentifier", "identifier": "valueIdentifier",
    "EI": "valueIdentifier", "XPN": "valueHumanName", "XAD": "valueAddress",
    "XTN": "valueContactPoint", "XCN": "valueReference", "quantity": "valueQuantity",
}


def _text(value: Any) -> Any:
    """YAML reads ``version: 2.5`` as a number: take it as the text it was meant to be."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Text = Annotated[str, BeforeValidator(_text)]


def _values(value: Any) -> Any:
    """A match key: one value or a list of them (``[LAB, LAB2]``), as a tuple of text."""
    items = value if isinstance(value, list) else [value]
    out = tuple(_text(v) for v in items)
    if not out or not all(isinstance(v, str) and v.strip() for v in out):
        raise ValueError("give a value or a list of values (* for any)")
    if "*" in out and len(out) > 1:
        raise ValueError("'*' (any) cannot be listed with other values")
    return out


MatchValues = Annotated[tuple[str, ...], BeforeValidator(_values)]
ANY: tuple[str, ...] = ("*",)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    """Which messages a profile is for: MSH-3.1, MSH-4.1 and MSH-12.1 (``*``: any).

    Each key takes one value or a list (a system that sends under several names).
    """

    application: MatchValues = ANY
    facility: MatchValues = ANY
    version: MatchValues = ANY


class PatientKey(_Model):
    """Which identifier the Patient id is keyed on."""

    field: Text | None = None  # e.g. PID-2 for a sender that puts the MRN there
    authority: Text | None = None  # CX.4 namespace or universal id
    type: Text | None = None  # CX.5 identifier type code, e.g. MR

    @field_validator("field")
    @classmethod
    def _pid_field(cls, value: str | None) -> str | None:
        if value is not None:
            ref = FieldRef.parse(value)
            if ref.segment != "PID" or ref.component is not None:
                raise ValueError(f"{value!r}: the patient key must be a PID field, like PID-2")
        return value


class Coding(_Model):
    """A standard coding a local code translates to."""

    system: str
    code: Text
    display: str | None = None


class LocalCode(_Model):
    """A local coding (as the sender sends it in CWE.1/CWE.3) and its standard coding."""

    system: Text = "*"  # CWE.3 as sent ("L", "99LAB"); * = whatever it says
    code: Text
    to: Coding


class FieldMapping(_Model):
    """One more field to map: usually a Z-segment field to an extension or an element."""

    field: Text
    resource: str  # a resource spec name: Patient, Coverage, Observation, Encounter...
    type: str
    table: Text | None = None
    args: dict[str, str | int | bool] = Field(default_factory=dict)
    extension: str | None = None  # the extension's url: the value goes in extension[]
    value: str | None = None  # the extension's value[x] element, when not the type's usual
    path: str | None = None  # or a target element path, as in resource specs

    @model_validator(mode="after")
    def _one_target(self) -> FieldMapping:
        if (self.extension is None) == (self.path is None):
            raise ValueError("give exactly one of 'extension' (a URL) or 'path' (an element)")
        if self.value is not None and self.extension is None:
            raise ValueError("'value' names an extension's value[x]: it needs 'extension'")
        return self

    def rule(self, line: int) -> dict[str, Any]:
        """The resource spec rule this mapping adds, as spec data (validated by ``Rule``)."""
        data: dict[str, Any] = {"__line__": line, "field": self.field, "type": self.type}
        if self.table is not None:
            data["table"] = self.table
        if self.args:
            data["args"] = dict(self.args)
        if self.extension is not None:
            value = self.value or EXTENSION_VALUE.get(self.type)
            if self.type in ("TS", "DTM") and self.args.get("as") == "date":
                value = self.value or "valueDate"
            if value is None:
                raise ValueError(f"say which value[x] an extension of type {self.type} "
                                 "takes with 'value:' (e.g. valueString)")
            data["path"] = f"extension[].{value}"
            data["with"] = {"url": self.extension}
        else:
            data["path"] = self.path
        return data


class ProfileModel(_Model):
    """One profile file, as written."""

    profile: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    match: Match = Field(default_factory=Match)
    timezone: TimeZone | None = None
    charset: Charset | None = None
    identifier_systems: dict[Text, str] = Field(default_factory=dict)
    patient_key: PatientKey | None = None
    codes: dict[Text, dict[Text, TableValue]] = Field(default_factory=dict)
    local_codes: list[LocalCode] = Field(default_factory=list)
    fields: list[FieldMapping] = Field(default_factory=list)
    ignore_segments: list[Text] = Field(default_factory=list)

    @field_validator("ignore_segments")
    @classmethod
    def _segments(cls, value: list[str]) -> list[str]:
        for seg in value:
            if len(seg) != 3 or not seg.isalnum() or not seg.isupper() or seg == "MSH":
                raise ValueError(f"{seg!r} is not a segment id that can be ignored (like ZXX)")
        return value


