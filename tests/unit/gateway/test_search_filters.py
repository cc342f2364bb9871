"""What the console takes for a search and what it writes down: the parsed query, the
audit filter (the kind, never the value), and the Rejected page's sender filter matching
the sender as the page shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.console.core import Denied
from gateway.console.filters import audit_filter, parse_search
from gateway.spool import MessageFilter, Rejected, Spool


def test_a_search_needs_q_and_a_known_kind_and_enough_to_look_for() -> None:
    where = MessageFilter(sender="LAB")
    assert parse_search({}, where) is None
    assert parse_search({"q": "  "}, where) is None
    found = parse_search({"q": " 4820017 "}, where)
    assert found is not None and (found.kind, found.text, found.where) == (
        "identifier", "4820017", where)
    for params, why in (({"q": "x", "kind": "dna"}, "unknown search kind"),
                        ({"q": "j", "kind": "name"}, "two letters"),
                        ({"q": "ab", "kind": "text"}, "three characters"),
                        ({"q": "x" * 201, "kind": "order"}, "at most 200")):
        with pytest.raises(Denied) as refused:
            parse_search(params, where)
        assert refused.value.status == 400 and why in refused.value.message


def test_the_audit_filter_names_the_kind_and_never_the_value() -> None:
    line = audit_filter({"q": "Everyman", "kind": "name", "sender": "LAB", "status": "",
                         "before": "9"})
    assert line == {"sender": "LAB", "search": "name"}
    assert "Everyman" not in str(line)
    assert audit_filter({"q": "4820017"}) == {"search": "identifier"}
    assert audit_filter({"type": "ADT^*"}) == {"type": "ADT^*"}


def refused(sender: str, cid: str) -> Rejected:
    return Rejected(listener="l", peer="p", sender=sender, control_id=cid, ack_code="AR",
                    err_code="200", reason="unknown event", raw=b"MSH|x", ack=b"MSA|AR")


async def test_the_rejected_sender_filter_takes_the_sender_as_shown(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    await spool.start()
    try:
        shown = "SUNLAB|RIVERSIDE^2.16.840.1.113883^ISO"
        await spool.store(refused(shown, "A"))
        await spool.store(refused("SUNLAB^1.2.3^ISO|NORTH", "B"))
        await spool.store(refused("SUNLABX|RIVERSIDE", "C"))
        await spool.store(refused("EPIC|RIVERSIDE", "D"))

        async def cids(sender: str) -> list[str]:
            rows = await spool.search.find_rejected(MessageFilter(sender=sender))
            return [r.control_id for r in rows]

        assert await cids(shown) == ["A"]
        assert await cids("SUNLAB|RIVERSIDE") == ["A"]
        assert await cids("SUNLAB") == ["B", "A"]  # an application with components too
        assert await cids("|RIVERSIDE") == ["D", "C", "A"]
        assert await cids("SUNLAB|RIVER") == []  # whole components only, no loose prefix
        assert await spool.search.rejected_senders() == sorted(
            [shown, "SUNLAB^1.2.3^ISO|NORTH", "SUNLABX|RIVERSIDE", "EPIC|RIVERSIDE"])
    finally:
        await spool.stop()


async def test_the_messages_page_searches_for_operators_and_refuses_viewers(
        tmp_path: Path) -> None:
    from tests.unit.gateway.console_app import OPERATOR, VIEWER, bearer, running_app

    async with running_app(tmp_path) as (client, runtime, _):
        await runtime.spool.search.catch_up()
        page = await client.get("/console/messages", params={"kind": "identifier",
                                                             "q": "4711"},
                                headers=bearer(OPERATOR))
        assert page.status_code == 200
        html = page.text
        assert html.count('name="id" value=') == 3  # three rows, each with its checkbox
        assert 'action="/console/messages/bulk"' in html and "all 3 matching" in html
        assert 'name="filter" value="kind=identifier&amp;q=4711"' in html
        # a viewer: the listing and a control id search, no checkboxes, no PHI search
        listing = await client.get("/console/messages", params={"kind": "control",
                                                                "q": "C-2"},
                                   headers=bearer(VIEWER))
        assert listing.status_code == 200 and 'name="id"' not in listing.text
        assert listing.text.count("/console/messages/3\"") == 1
        refused = await client.get("/console/messages", params={"kind": "name",
                                                                "q": "every"},
                                   headers=bearer(VIEWER))
        assert refused.status_code == 403 and "operator role" in refused.text
        bad = await client.get("/console/messages", params={"kind": "name", "q": "e"},
                               headers=bearer(OPERATOR))
        assert bad.status_code == 200 and "two letters" in bad.text
    audit = (tmp_path / "audit.jsonl").read_text()
    lines = [json.loads(line) for line in audit.splitlines()]
    assert [(e["action"], e["user"], e["filter"]) for e in lines] == [
        ("search", "olga", {"search": "identifier"})]
    assert "4711" not in audit and "every" not in audit
