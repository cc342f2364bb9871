"""Deterministic resource ids."""

from __future__ import annotations

import uuid

from mappers.ids import NAMESPACE, resource_id


def test_resource_ids_are_uuid5_of_type_and_key() -> None:
    variants = set()
    for n in range(200):  # enough keys to meet every value of the variant nibble
        key = f"urn:oid:1.2.3|{n}"
        expected = str(uuid.uuid5(NAMESPACE, f"Observation|{key}"))
        assert resource_id("Observation", key) == expected
        variants.add(expected[19])
    assert variants == set("89ab")
