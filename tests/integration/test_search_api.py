"""Searching the spool through the API of a real gateway (MLLP in, SQLite spool, Kafka,
uvicorn): who may search by what, the audit line each PHI search writes (its kind, never
its value), results and paging, and the helpers bulk actions use."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import GatewaySettings, ProfilesSettings
from gateway.console.core import Console
from gateway.console.search import count_matching, select_ids
from gateway.mllp.client import MllpClient
from gateway.service import GatewayService
from tests.integration.conftest import bounded
from tests.integration.test_console_api import (
    A01,
    OPERATOR,
    VIEWER,
    accepted,
    audit_lines,
    bearer,
    console_settings,
)
from tests.support import PROFILES, with_control_id

pytestmark = pytest.mark.integration

OTHER = (A01.replace(b"4820017^^^GOODHEALTH", b"7700001^^^GOODHEALTH", 1)
         .replace(b"Everyman^Adam", b"Nakamura^Yuki", 1))


async def search(client: httpx.AsyncClient, token: str, **params: str) -> httpx.Response:
    return await client.get("/api/v1/messages/search", params=params, headers=bearer(token))


async def indexed(client: httpx.AsyncClient) -> None:
    """Wait (bounded) until the indexer has caught up with every stored row."""
    for _ in range(150):
        got = await search(client, VIEWER, q="none", kind="control")
        if got.json()["index_behind"] == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the search indexer did not catch up")


@bounded(120)
async def test_search_roles_audit_and_results(gateway_settings: GatewaySettings,
                                              tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(update={
        "console": console_settings(tmp_path),
        "profiles": ProfilesSettings(dir=PROFILES, watch_interval_s=0)})
    audit = settings.console.audit_path
    async with GatewayService(settings) as gateway:
        await accepted(gateway, "SRCH-1", "SRCH-2", "SRCH-3")
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
            await mllp.send(with_control_id(OTHER, "SRCH-OTHER"))
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await indexed(client)
            # a viewer may search by control id (not audited) ...
            got = await search(client, VIEWER, q="SRCH-2", kind="control")
            assert got.status_code == 200
            assert [m["control_id"] for m in got.json()["messages"]] == ["SRCH-2"]
            assert not audit.exists()
            # ... but not by patient data: 403, and nothing searched or recorded
            for kind, q in (("identifier", "4820017"), ("name", "everyman"),
                            ("order", "X1"), ("text", "Everyman")):
                denied = await search(client, VIEWER, q=q, kind=kind)
                assert denied.status_code == 403, kind
                assert "operator" in denied.json()["error"]
            assert not audit.exists()

            # an operator finds by identifier (any repetition) and by name prefix
            by_id = await search(client, OPERATOR, q="4820017", kind="identifier")
            assert [m["control_id"] for m in by_id.json()["messages"]] == [
                "SRCH-3", "SRCH-2", "SRCH-1"]
            by_ssn = await search(client, OPERATOR, q="900112233", kind="identifier")
            assert len(by_ssn.json()["messages"]) == 4  # OTHER kept the SSN repetition
            by_name = await search(client, OPERATOR, q="naka yu", kind="name")
            assert [m["control_id"] for m in by_name.json()["messages"]] == ["SRCH-OTHER"]
            text = await search(client, OPERATOR, q="nakamura", kind="text")
            body: dict[str, Any] = text.json()
            assert [m["control_id"] for m in body["messages"]] == ["SRCH-OTHER"]
            assert (body["scanned"], body["in_window"]) == (4, 4)
            paged = await client.get("/api/v1/messages/search", headers=bearer(OPERATOR),
                                     params={"q": "4820017", "kind": "identifier",
                                             "limit": "2"})
            first = paged.json()
            assert len(first["messages"]) == 2 and first["next_before"] is not None
            later = await client.get("/api/v1/messages/search", headers=bearer(OPERATOR),
                                     params={"q": "4820017", "kind": "identifier",
                                             "limit": "2", "before": first["next_before"]})
            assert [m["control_id"] for m in later.json()["messages"]] == ["SRCH-1"]
            # bad queries are told what to do
            bad = await search(client, OPERATOR, q="x", kind="name")
            assert bad.status_code == 400 and "two letters" in bad.json()["error"]
            assert (await search(client, OPERATOR, q="x", kind="dna")).status_code == 400
            assert (await client.get("/api/v1/messages/search",
                                     headers=bearer(OPERATOR))).status_code == 400

        lines = audit_lines(audit)
        searches = [e for e in lines if e["action"] == "search"]
        assert [e["filter"]["search"] for e in searches] == [
            "identifier", "identifier", "name", "text", "identifier", "identifier"]
        assert all(e["user"] == "olga" and e["role"] == "operator" for e in searches)
        written = audit.read_text()
        for value in ("4820017", "900112233", "naka", "nakamura", "Everyman"):
            assert value not in written

        # the helpers behind bulk actions: the same query string, every matching row
        console: Console = gateway._http.config.app.state.console  # type: ignore[union-attr]
        ids, more = await select_ids(console, {"q": "4820017", "kind": "identifier"}, 2)
        assert len(ids) == 2 and more and ids == sorted(ids, reverse=True)
        assert await count_matching(console, {"q": "4820017", "kind": "identifier"}) == 3
        assert await count_matching(console, {"type": "ADT^*"}) == 4
        all_ids, more = await select_ids(console, {"control_id": "SRCH-1", "before": "1"},
                                         10)
        assert len(all_ids) == 1 and not more  # paging is ignored: every matching row
