"""Tests for the datatype functions (XPN, CX, XAD, XTN, CWE, XCN, PL, HD) and timestamps."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mappers.conversion import default_specs
from mappers.engine.context import Context
from mappers.engine.models import Rule
from mappers.hl7v2 import parse
from mappers.registry import DATATYPES
from mappers.result import Issue
from mappers.timestamps import TimestampError, to_fhir

MSH = "MSH|^~\\&|EPICADT|GOODHEALTH|HL7GW|CLOUD|20240115103000||ADT^A01|C1|P|2.5.1"


def run(type_name: str, value: str, *, table: str | None = None,
        args: dict[str, Any] | None = None, tz: str = "UTC",
        extra: str = "") -> tuple[list[Any], list[Issue]]:
    """Apply a datatype to every repetition of ZZZ-1 = ``value``; (outputs, issues)."""
    msg = parse(f"{MSH}\rZZZ|{value}|{extra}")
    specs = default_specs()
    ctx = Context(msg, specs.tables, specs.resolved_tables, tz)
    segment = msg.get("ZZZ")
    assert segment is not None
    ctx.segment = segment
    rule = Rule.model_validate({"field": "ZZZ-1", "type": type_name, "path": "x",
                                "table": table, "args": args or {},
                                "extra": ["ZZZ-2"] if extra else []})
    assert rule.field is not None
    ctx.location = "ZZZ-1"
    fn = DATATYPES[type_name].fn
    return [fn(rep, ctx, rule.view()) for rep in ctx.values(rule.field)], ctx.issues


def one(type_name: str, value: str, **kw: Any) -> Any:
    out, issues = run(type_name, value, **kw)
    assert issues == []
    assert len(out) == 1
    return out[0]


# --- XPN -------------------------------------------------------------------------------

def test_xpn_full_name() -> None:
    assert one("XPN", "Everyman^Adam^Alan^Jr^Mr.^MD^L") == {
        "use": "official", "family": "Everyman", "given": ["Adam", "Alan"],
        "prefix": ["Mr."], "suffix": ["Jr", "MD"]}


def test_xpn_repetitions_and_name_types() -> None:
    out, _ = run("XPN", "Doe^Jane^^^^^L~Smith^^^^^^M~JJ^^^^^^N")
    assert [(n["family"], n["use"]) for n in out] == [
        ("Doe", "official"), ("Smith", "maiden"), ("JJ", "nickname")]


def test_xpn_family_is_the_surname_subcomponent() -> None:
    assert one("XPN", "van Gogh&van&Gogh^Vincent")["family"] == "van Gogh"


def test_xpn_without_name_parts_is_nothing() -> None:
    assert run("XPN", "^^^^^^L") == ([None], [])


def test_xpn_unknown_name_type_is_an_issue_and_left_out() -> None:
    out, issues = run("XPN", "Doe^Jane^^^^^QQ")
    assert out == [{"family": "Doe", "given": ["Jane"]}]
    assert [(i.code, i.location) for i in issues] == [("unknown-code", "ZZZ-1")]
    assert "0200" in issues[0].text and "QQ" not in issues[0].text


def test_xpn_known_type_without_fhir_use_is_not_an_issue() -> None:
    assert one("XPN", "Doe^Jane^^^^^B") == {"family": "Doe", "given": ["Jane"]}


def test_xpn_validity_period() -> None:
    name = one("XPN", "Doe^Jane^^^^^L^^^^^20200101^20231231")
    assert name["period"] == {"start": "2020-01-01", "end": "2023-12-31"}


@pytest.mark.parametrize("type_name", ["XPN", "CX", "XAD"])
def test_invalid_validity_dates_leave_no_empty_period(type_name: str) -> None:
    value = {"XPN": "Doe^Jane^^^^^L^^^^^2020XX01^2020YY01",
             "CX": "42^^^GH^MR^^2020XX01^2020YY01",
             "XAD": "1 Way^^Town^^^^H^^^^^^2020XX01^2020YY01"}[type_name]
    out, issues = run(type_name, value)
    assert "period" not in out[0]
    assert [i.code for i in issues] == ["invalid-value", "invalid-value"]


# --- CX --------------------------------------------------------------------------------

def test_cx_with_an_oid_authority() -> None:
    assert one("CX", "4820017^^^GOODHEALTH&2.16.840.1.113883.3.9999.1&ISO^MR") == {
        "value": "4820017", "system": "urn:oid:2.16.840.1.113883.3.9999.1",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                             "code": "MR", "display": "Medical record number"}]},
        "assigner": {"display": "GOODHEALTH"}}


@pytest.mark.parametrize(
    ("authority", "system"),
    [
        ("EPIX", "urn:id:EPIX"),
        ("Good Health", "urn:id:Good%20Health"),
        ("&1.2.840.114350&ISO", "urn:oid:1.2.840.114350"),
        ("&1.2.840.114350", "urn:oid:1.2.840.114350"),
        ("X&6F1D2C70-9A3B-4C5D-8E7F-0123456789AB&UUID",
         "urn:uuid:6f1d2c70-9a3b-4c5d-8e7f-0123456789ab"),
        ("X&https://ids.example.org/mrn&URI", "https://ids.example.org/mrn"),
        ("LOCAL&not an oid&ISO", "urn:id:LOCAL"),
    ],
)
def test_cx_assigning_authority_becomes_a_stable_system(authority: str, system: str) -> None:
    assert one("CX", f"42^^^{authority}")["system"] == system


def test_cx_without_authority_has_no_system() -> None:
    assert one("CX", "42") == {"value": "42"}


def test_cx_unknown_identifier_type_keeps_it_as_text() -> None:
    out, issues = run("CX", "42^^^EPIX^LOCALMRN")
    assert out[0]["type"] == {"text": "LOCALMRN"}
    assert [i.code for i in issues] == ["unknown-code"]


def test_cx_default_type_and_period() -> None:
    cx = one("CX", "V1^^^GH^^^20240101^20241231", args={"default_type": "VN"})
    assert cx["type"]["coding"][0]["code"] == "VN"
    assert cx["period"] == {"start": "2024-01-01", "end": "2024-12-31"}


def test_cx_without_value_is_nothing() -> None:
    assert run("CX", "^^^GH^MR") == ([None], [])


# --- XAD -------------------------------------------------------------------------------

def test_xad_home_address() -> None:
    assert one("XAD", "2222 Home Street^Apt 4B^Ann Arbor^MI^48104^USA^H^^WASHTENAW") == {
        "line": ["2222 Home Street", "Apt 4B"], "city": "Ann Arbor", "state": "MI",
        "postalCode": "48104", "country": "USA", "district": "WASHTENAW", "use": "home"}


def test_xad_mailing_address_is_a_postal_type() -> None:
    assert one("XAD", "PO Box 9^^Ypsi^MI^48197^^M")["type"] == "postal"


def test_xad_street_name_and_number_when_no_street_line() -> None:
    assert one("XAD", "&Main Street&12^^Town")["line"] == ["12 Main Street"]


def test_xad_unknown_type_is_an_issue() -> None:
    out, issues = run("XAD", "1 Way^^Town^^^^ZZ")
    assert out == [{"line": ["1 Way"], "city": "Town"}]
    assert [i.code for i in issues] == ["unknown-code"]


def test_xad_with_only_a_type_is_nothing() -> None:
    assert run("XAD", "^^^^^^H") == ([None], [])


# --- XTN -------------------------------------------------------------------------------

def test_xtn_composed_number_with_extension() -> None:
    assert one("XTN", "^WPN^PH^^1^734^5559876^22") == {
        "system": "phone", "value": "+1 (734) 5559876 ext. 22", "use": "work"}


def test_xtn_email() -> None:
    assert one("XTN", "^NET^Internet^adam@example.com") == {
        "system": "email", "value": "adam@example.com"}


def test_xtn_cell_phone_is_mobile() -> None:
    assert one("XTN", "^PRN^CP^^1^207^5550123")["use"] == "mobile"


def test_xtn_legacy_formatted_number_and_default_use() -> None:
    assert one("XTN", "(555)555-1234", args={"default_use": "home"}) == {
        "system": "phone", "value": "(555)555-1234", "use": "home"}


def test_xtn_unformatted_number_wins() -> None:
    assert one("XTN", "^PRN^PH^^1^555^5550000^^^^^+15555550000")["value"] == "+15555550000"


# --- CWE -------------------------------------------------------------------------------

def test_cwe_with_an_hl7_table_and_a_mapping_table() -> None:
    assert one("CWE", "M^Married^HL70002", table="0002") == {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0002", "code": "M",
         "display": "Married"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M",
         "display": "Married"}]}


def test_cwe_named_code_systems_and_alternate_coding() -> None:
    cc = one("CWE", "8867-4^Heart rate^LN^HR^Pulse^L^^^Pulse rate")
    assert cc == {"coding": [
        {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
        {"code": "HR", "display": "Pulse"}], "text": "Pulse rate"}


def test_cwe_display_alone_becomes_text() -> None:
    assert one("CWE", "^Hospital medicine") == {"text": "Hospital medicine"}


def test_cwe_without_system_takes_the_tables_source_system() -> None:
    cc = one("CWE", "S", table="0002")
    assert cc["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0002",
                               "code": "S"}


# --- code, NM, XCN, PL, HD, endpoint, organization -------------------------------------

def test_code_through_a_table() -> None:
    assert one("code", "F", table="0001") == "female"
    assert one("code", "Y", table="0136") is True
    assert one("code", "N", table="0136") is False


def test_code_through_a_coding_table() -> None:
    assert one("code", "E", table="0004") == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER",
        "display": "emergency"}


def test_nm_integer_and_invalid_number() -> None:
    assert one("NM", "2") == 2
    out, issues = run("NM", "two")
    assert out == [None]
    assert [(i.code, i.location) for i in issues] == [("invalid-value", "ZZZ-1")]


def test_xcn_display_and_identifier() -> None:
    assert one("XCN", "0148^Attending^Alice^A^^Dr.^MD^^GH&2.16.840.1.113883.3.9999.2&ISO") == {
        "display": "Dr. Alice A Attending MD",
        "identifier": {"value": "0148", "system": "urn:oid:2.16.840.1.113883.3.9999.2"}}


def test_pl_display() -> None:
    assert one("PL", "4E^401^B^GOODHEALTH") == {"display": "4E, 401, B, GOODHEALTH"}
    assert one("PL", "4E^^^^^^^^East wing four") == {"display": "East wing four"}


def test_hd_name_endpoint_and_organization() -> None:
    assert one("HD", "EPICADT^1.2.3^ISO") == "EPICADT"
    assert one("endpoint", "EPICADT", extra="GOOD HEALTH") == "urn:hl7v2:EPICADT:GOOD%20HEALTH"
    assert one("endpoint", "EPICADT^1.2.3^ISO", extra="GH") == "urn:oid:1.2.3"
    assert one("endpoint", "GH", args={"role": "facility"}) == "urn:hl7v2::GH"
    assert one("organization", "GH^1.2.3^ISO") == {
        "display": "GH", "identifier": {"system": "urn:ietf:rfc:3986",
                                        "value": "urn:oid:1.2.3"}}
    assert one("organization", "GH") == {"display": "GH"}


# --- TS / DTM --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("ts", "kind", "expected"),
    [
        ("2024", "dateTime", "2024"),
        ("202401", "dateTime", "2024-01"),
        ("20240115", "dateTime", "2024-01-15"),
        ("2024011510", "dateTime", "2024-01-15T10:00:00+00:00"),
        ("202401151030", "dateTime", "2024-01-15T10:30:00+00:00"),
        ("20240115103015", "dateTime", "2024-01-15T10:30:15+00:00"),
        ("20240115103015.1234-0500", "dateTime", "2024-01-15T10:30:15.1234-05:00"),
        ("20240115103015+0530", "dateTime", "2024-01-15T10:30:15+05:30"),
        ("20240115103015-0500", "date", "2024-01-15"),
        ("202401151030-0500", "instant", "2024-01-15T10:30:00-05:00"),
        ("20240115+0100", "dateTime", "2024-01-15"),
    ],
)
def test_timestamps_keep_precision_and_offset(ts: str, kind: str, expected: str) -> None:
    assert one("TS", ts, args={"as": kind}) == expected


@pytest.mark.parametrize(
    ("ts", "tz", "expected"),
    [
        ("20240115103000", "Europe/Berlin", "2024-01-15T10:30:00+01:00"),
        ("20240715103000", "Europe/Berlin", "2024-07-15T10:30:00+02:00"),
        ("20240715103000", "America/New_York", "2024-07-15T10:30:00-04:00"),
        ("20240715103000", "UTC", "2024-07-15T10:30:00+00:00"),
        ("20240715103000-0700", "Europe/Berlin", "2024-07-15T10:30:00-07:00"),
    ],
)
def test_a_time_without_offset_takes_the_default_zone(ts: str, tz: str, expected: str) -> None:
    assert one("TS", ts, tz=tz) == expected


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ("20240230", "calendar date"),
        ("20241301", "calendar date"),
        ("20240115250000", "time of day"),
        ("20240115106000", "time of day"),
        ("2024011510+1500", "offset"),
        ("15/01/2024", "not a TS/DTM"),
        ("2024011", "not a TS/DTM"),
    ],
)
def test_invalid_timestamps_are_issues_and_left_out(ts: str, why: str) -> None:
    out, issues = run("TS", ts)
    assert out == [None]
    assert [(i.code, i.location) for i in issues] == [("invalid-value", "ZZZ-1")]
    assert why in issues[0].text
    assert ts not in issues[0].text


def test_an_instant_needs_minutes() -> None:
    with pytest.raises(TimestampError):
        to_fhir("20240115", "instant")
    with pytest.raises(TimestampError):
        to_fhir("2024011510", "instant")


_FHIR_DATETIME = re.compile(
    r"\d{4}(-\d\d(-\d\d(T\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))?)?)?")


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_no_datetime_has_a_time_without_an_offset(tz: str) -> None:
    samples = ["2024", "202401", "20240101", "2024010112", "202401011230", "20240101123045",
               "20240101123045.5", "20240331023000", "20241027023000", "2024010112-0300"]
    for ts in samples:
        out = to_fhir(ts, "dateTime", tz)
        assert _FHIR_DATETIME.fullmatch(out), (ts, out)
