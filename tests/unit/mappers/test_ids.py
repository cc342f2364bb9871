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


def _observation_ids(text: str) -> list[str]:
    from mappers import convert

    return [e["resource"]["id"] for e in convert(text).bundle["entry"]
            if e["resource"]["resourceType"] == "Observation"]


def test_lines_of_one_report_get_ids_suffixed_by_their_place() -> None:
    # every OBX of a text report shares OBX-3 and OBX-4: the first gets the key's id, the
    # n-th the id of "<that id>#n" (the ids stored Bundles already hold: they must not move)
    from mappers.bench import text_report

    ids = _observation_ids(text_report(400))
    assert len(ids) == len(set(ids)) == 400
    first = ids[0]
    assert ids[1:] == [resource_id("Observation", f"{first}#{n}") for n in range(2, 401)]


def test_interleaved_duplicates_each_count_their_own_suffixes() -> None:
    from mappers.bench import text_report

    text = text_report(6).replace("OBX|2|TX|11502-2", "OBX|2|TX|8251-1") \
        .replace("OBX|4|TX|11502-2", "OBX|4|TX|8251-1")
    a1, b1, a2, b2, a3, a4 = _observation_ids(text)
    assert a1 != b1
    assert (a2, a3, a4) == tuple(resource_id("Observation", f"{a1}#{n}") for n in (2, 3, 4))
    assert b2 == resource_id("Observation", f"{b1}#2")


def test_the_collision_search_tries_each_suffix_once() -> None:
    # it used to restart at #2 for every duplicate: n duplicates cost n²/2 hashes, so
    # 16,000 report lines took minutes (here: 500,500 probes). Now at most two each: the
    # suffix the previous search stopped at (written since), then the next.
    from mappers.conversion import Written

    urls = Written()
    rid = resource_id("Observation", "order|11502-2")
    urls.add(f"Observation/{rid}")
    got = []
    for _ in range(1000):
        new, url = urls.suffixed("Observation", rid)
        urls.add(url)
        got.append(new)
    assert urls.probes <= 2 * 1000
    assert got == [resource_id("Observation", f"{rid}#{n}") for n in range(2, 1002)]


def test_a_suffix_not_written_is_offered_again() -> None:
    # a resource built as None is not written: the next duplicate takes its suffix
    from mappers.conversion import Written

    urls = Written()
    rid = resource_id("Observation", "k")
    urls.add(f"Observation/{rid}")
    first = urls.suffixed("Observation", rid)
    assert urls.suffixed("Observation", rid) == first
    urls.add(first[1])
    assert urls.suffixed("Observation", rid)[0] == resource_id("Observation", f"{rid}#3")
