"""Bulk selections: form ids, filters for the audit log, previews and confirmation tokens."""

from __future__ import annotations

import pytest

from gateway.console.bulk_select import (
    MAX_BULK,
    Selection,
    Selections,
    parse_action,
    parse_form_ids,
    preview_of,
    query_params,
)
from gateway.console.core import Denied
from gateway.spool import MessageInfo


def info(row_id: int, sender: str = "LAB|NORTH", status: str = "published",
         message_type: str = "ORU^R01") -> MessageInfo:
    return MessageInfo(id=row_id, received_at=0.0, listener="l", peer="p", sender=sender,
                       control_id=f"C{row_id}", message_type=message_type, status=status,
                       conflict=False, attempts=0, last_error=None, published_at=None,
                       kafka_topic=None, kafka_partition=None, kafka_offset=None,
                       summary="{}", replays=0, size=1, charset="utf-8", timezone="UTC")


def test_form_ids_are_checked_deduplicated_and_capped() -> None:
    assert parse_form_ids(["3", " 1", "3"]) == [1, 3]
    for bad in (["x"], ["0"], ["-1"], ["²"], [str(2**63)]):
        with pytest.raises(Denied) as refused:
            parse_form_ids(bad)
        assert refused.value.status == 400
    with pytest.raises(Denied, match="at most 10,000"):
        parse_form_ids([str(i) for i in range(1, MAX_BULK + 2)])


def test_actions_are_named() -> None:
    assert parse_action("export-ndjson") == "export-ndjson"
    with pytest.raises(Denied, match="replay, reprocess, export-hl7, export-ndjson"):
        parse_action("delete")


def test_the_list_pages_query_string_without_paging() -> None:
    assert query_params("sender=LAB&type=ADT%5E%2A&before=90&limit=5&status=") == {
        "sender": "LAB", "type": "ADT^*"}


def test_preview_counts_and_samples_newest_first() -> None:
    rows = [info(9, status="pending"), info(8), info(7, sender="ADT|SOUTH",
                                                    message_type="ADT^A01")]
    preview = preview_of(rows)
    assert preview.count == 3 and (preview.first_id, preview.last_id) == (7, 9)
    assert preview.statuses == {"pending": 1, "published": 2}
    assert preview.senders == [("LAB|NORTH", 2), ("ADT|SOUTH", 1)]
    assert preview.sample == ["C9", "C8", "C7"]
    assert preview_of([]).as_json()["first_id"] is None


def test_a_token_is_for_its_user_used_once_and_expires() -> None:
    held = Selections(ttl_s=60)
    token = held.hold(Selection("replay", (1, 2), "olga", {}))
    with pytest.raises(Denied) as other:
        held.take(token, "vic")
    assert other.value.status == 409
    assert held.take(token, "olga").ids == (1, 2)
    with pytest.raises(Denied, match="expired or was used"):
        held.take(token, "olga")
    stale = Selections(ttl_s=0.0)
    old = stale.hold(Selection("replay", (1,), "olga", {}, created=0.0))
    with pytest.raises(Denied):
        stale.take(old, "olga")


def test_old_tokens_make_room_for_new_ones() -> None:
    held = Selections(most=2)
    first = held.hold(Selection("replay", (1,), "olga", {}))
    held.hold(Selection("replay", (2,), "olga", {}))
    third = held.hold(Selection("replay", (3,), "olga", {}))
    with pytest.raises(Denied):
        held.take(first, "olga")
    assert held.take(third, "olga").ids == (3,)
