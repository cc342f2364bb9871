"""Tests for the clinical datatypes: NM quantity, SN, ED, EI, XON, XCN parts, TX lines."""

from __future__ import annotations

import base64

from mappers.registry import DATATYPES
from tests.unit.mappers.test_mapping_datatypes import one, run

UCUM = "http://unitsofmeasure.org"


def test_quantity_with_ucum_units_from_extra() -> None:
    assert one("quantity", "5.90", extra="mmol/L^millimole per liter^UCUM") == {
        "value": 5.9, "unit": "millimole per liter", "system": UCUM, "code": "mmol/L"}
    assert one("quantity", "112") == {"value": 112}


def test_quantity_local_units_keep_no_system() -> None:
    assert one("quantity", "7", extra="MG^milligram^99LOCAL") == {"value": 7, "unit": "milligram"}


def test_quantity_refuses_non_numbers_with_an_issue() -> None:
    out, issues = run("quantity", "1l2")
    assert out == [None] and [i.code for i in issues] == ["invalid-value"]
    assert "1l2" not in issues[0].text


def test_sn_comparator_and_plain_value() -> None:
    assert one("SN", ">=^60") == {"value": 60, "comparator": ">="}
    assert one("SN", "^1.015") == {"value": 1.015}
    assert one("SN", "=^4") == {"value": 4}
    assert one("SN", "^1^:^128") is None  # a ratio: SN_ratio writes it


def test_sn_bad_comparator_is_an_issue() -> None:
    out, issues = run("SN", "~~^5".replace("~~", "!"))
    assert out == [None] and issues[0].code == "invalid-value"


def test_sn_range_and_ratio() -> None:
    assert one("SN_range", "^10^-^20", extra="%^percent^UCUM") == {
        "low": {"value": 10, "unit": "percent", "system": UCUM, "code": "%"},
        "high": {"value": 20, "unit": "percent", "system": UCUM, "code": "%"}}
    assert one("SN_range", ">^10") is None
    assert one("SN_ratio", "^1^/^40") == {"numerator": {"value": 1},
                                          "denominator": {"value": 40}}
    assert one("SN_ratio", "^1^-^40") is None


def test_ed_base64_and_ascii() -> None:
    data = base64.b64encode(b"%PDF-1.4 test").decode()
    assert one("ED", f"LAB^AP^PDF^Base64^{data}") == {"contentType": "application/pdf",
                                                       "data": data}
    ascii_text = one("ED", "LAB^TEXT^PLAIN^A^Hello\\.br\\world")
    assert base64.b64decode(ascii_text["data"]) == b"Hello\nworld"
    assert ascii_text["contentType"] == "text/plain"


def test_ed_bad_data_is_an_issue() -> None:
    for bad in ("LAB^AP^PDF^Base64^***", "LAB^AP^PDF^Base64^abc", "LAB^AP^PDF^Hex^00ff",
                "LAB^AP^PDF"):
        out, issues = run("ED", bad)
        assert out == [None] and issues[0].code == "invalid-value", bad


def test_ei_with_namespace_or_oid_and_type() -> None:
    assert one("EI", "FL-1^SUNLAB", args={"type": "FILL"}) == {
        "value": "FL-1", "system": "urn:id:SUNLAB",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                             "code": "FILL"}]}}
    assert one("EI", "A7^^1.2.840.9^ISO") == {"value": "A7", "system": "urn:oid:1.2.840.9"}
    assert one("EI", "^SUNLAB") is None


def test_xon_display_and_identifier() -> None:
    assert one("XON", "Good Health Hospital^L^^^^GH&1.2.3&ISO^XX^^^7788") == {
        "display": "Good Health Hospital", "identifier": {"value": "7788",
                                                          "system": "urn:oid:1.2.3"}}
    assert one("XON", "Northbay Family Practice^^NBFP01") == {
        "display": "Northbay Family Practice", "identifier": {"value": "NBFP01"}}


def test_xcn_as_practitioner_parts() -> None:
    xcn = "0148^Attending^Alice^A^Jr^Dr.^MD^^GH&2.16.840.1.1&ISO"
    assert one("XCN_name", xcn) == {"family": "Attending", "given": ["Alice", "A"],
                                    "prefix": ["Dr."], "suffix": ["Jr", "MD"]}
    assert one("XCN_identifier", xcn) == {"system": "urn:oid:2.16.840.1.1", "value": "0148"}
    assert one("XCN_identifier", "^Name^Only") is None


def test_text_lines_join_repetitions_and_decode_escapes() -> None:
    out, issues = run("text_lines", "Line one~Line \\T\\ two~~Line three")
    assert issues == [] and out[0] == "Line one\nLine & two\nLine three"  # the whole field
    assert one("text", "a^b\\.br\\c") == "a^b\nc"  # TX keeps component separators as text


def test_concept_text_display_and_location_name() -> None:
    assert one("concept_text", "Hives") == {"text": "Hives"}
    assert one("concept_display", "MSD^Merck and Co., Inc.^MVX") == {
        "display": "Merck and Co., Inc."}
    assert one("location_name", "CLIN2^204^^LAKEVIEW") == "CLIN2, 204, LAKEVIEW"
    assert one("location_name", "CLIN2^204^^LAKEVIEW^^^^^Room 204") == "Room 204"


def test_every_datatype_is_covered_by_a_test() -> None:
    covered = {"quantity", "SN", "SN_range", "SN_ratio", "ED", "EI", "XON", "XCN_name",
               "XCN_identifier", "text_lines", "text", "concept_text", "concept_display",
               "location_name", "patient_link", "text_attachment"}
    assert covered <= set(DATATYPES)
