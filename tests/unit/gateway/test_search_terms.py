"""Search tokens of a message: which fields are findable, how values are normalised, and
that the stored terms are keyed hashes (another key, another term)."""

from __future__ import annotations

from gateway.spool.search_terms import (
    TERM_BYTES,
    message_terms,
    name_tokens,
    query_terms,
    term,
    tokens,
)
from mappers.hl7v2 import parse

KEY = b"k" * 32
ORU = ("MSH|^~\\&|LAB|HOSP|GW|HOSP|20260101||ORU^R01|C1|P|2.5\r"
       "PID|1||MRN-1^^^HOSP~ 55512 ^^^SSA||O'Brien-Smith&van^Zoë^Ann~ALIAS^Jo\r"
       "ORC|RE|PL-9^EPIC|fl-7^LAB\r"
       "OBR|1|PL-9|FL-7|CBC||||||||||||||ACC-42|\r")


def test_every_identifier_repetition_and_order_number_is_a_token() -> None:
    found = tokens(parse(ORU))
    assert ("identifier", "MRN-1") in found
    assert ("identifier", "55512") in found  # trimmed, second repetition
    assert {("order", "PL-9"), ("order", "FL-7"), ("order", "ACC-42")} <= found
    assert ("identifier", "HOSP") not in found  # CX.4 is not the id


def test_names_fold_case_and_accents_and_index_prefixes_of_two_or_more() -> None:
    found = {t for k, t in tokens(parse(ORU)) if k == "name"}
    assert {"o", "brien", "smith", "zoe", "ann", "alias", "jo"} - {"o"} <= found
    assert {"br", "bri", "smi", "zo"} <= found
    assert "s" not in found and "b" not in found
    assert name_tokens("ZOË  o'brien") == ["zoe", "o", "brien"]


def test_terms_are_truncated_keyed_hashes_that_a_query_reproduces() -> None:
    stored = message_terms(KEY, ORU.encode())
    assert all(len(t) == TERM_BYTES for t in stored)
    assert query_terms(KEY, "identifier", " mrn-1 ")[0] in stored
    assert set(query_terms(KEY, "name", "smi zo")) <= stored
    assert query_terms(KEY, "order", "acc-42")[0] in stored
    assert query_terms(KEY, "identifier", "MRN-2")[0] not in stored
    # the kind is part of the term: an order number is not an identifier
    assert query_terms(KEY, "identifier", "ACC-42")[0] not in stored
    # another spool's key gives other terms
    assert term(b"x" * 32, "identifier", "MRN-1") not in stored
    assert not any(b"MRN" in t for t in stored)


def test_an_unreadable_message_has_no_terms() -> None:
    assert message_terms(KEY, b"not hl7 at all") == set()
