"""What the console and API take: every parameter validated at the edge, 400 with a reason.

Regression tests for issue 16, items 9 and 10: integers beyond 64 bits gave HTTP 500
(``OverflowError`` from SQLite), and JSON ``true`` counted as a number in replay filters
(``{"since": true}`` replayed everything past the ``"all": true`` guard; ``{"ids": [true]}``
replayed row 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.console.core import Denied
from gateway.console.filters import filter_from_json, parse_query
from gateway.spool import MessageFilter
from tests.unit.gateway.console_app import OPERATOR, VIEWER, bearer, replays_of, running_app

HUGE = "99999999999999999999"  # beyond 2**63 - 1


@pytest.mark.parametrize("path", [
    f"/api/v1/messages?before={HUGE}", f"/api/v1/rejected?before={HUGE}",
    f"/api/v1/messages/{HUGE}", f"/api/v1/rejected/{HUGE}", f"/api/v1/messages/{HUGE}/body",
    f"/api/v1/rejected/{HUGE}/body", "/api/v1/messages/0", "/api/v1/messages/-1",
    "/api/v1/messages/abc", "/api/v1/messages?before=-5", "/api/v1/messages?before=1.5",
    "/api/v1/messages?limit=ten", "/api/v1/messages?since=nan",
    "/api/v1/messages?until=1e999", "/api/v1/messages?limit=501",
    "/api/v1/messages?limit=0",
])
async def test_api_parameters_out_of_range_are_400_with_a_reason(tmp_path: Path,
                                                                 path: str) -> None:
    async with running_app(tmp_path) as (client, _, _):
        answer = await client.get(path, headers=bearer(OPERATOR))
        assert answer.status_code == 400, answer.text
        reason = answer.json()["error"]
        assert reason and "Traceback" not in reason


@pytest.mark.parametrize("path", [f"/console/messages?before={HUGE}",
                                  f"/console/rejected?before={HUGE}"])
async def test_console_listings_show_why_a_parameter_is_refused(tmp_path: Path,
                                                                 path: str) -> None:
    async with running_app(tmp_path) as (client, _, _):
        page = await client.get(path, headers=bearer(VIEWER))
        assert page.status_code == 200
        assert "before must be a whole number from 1 to 9223372036854775807" in page.text


@pytest.mark.parametrize("path", [f"/console/messages/{HUGE}", f"/console/rejected/{HUGE}",
                                  f"/console/rejected/1?row={HUGE}"])
async def test_console_pages_answer_400_with_the_reason(tmp_path: Path, path: str) -> None:
    async with running_app(tmp_path) as (client, _, _):
        page = await client.get(path, headers=bearer(VIEWER))
        assert page.status_code == 400
        assert "9223372036854775807" in page.text and "<html" in page.text


@pytest.mark.parametrize("path", [f"/console/messages/{HUGE}/replay",
                                  f"/console/rejected/{HUGE}/reprocess"])
async def test_console_forms_with_a_huge_id_are_400(tmp_path: Path, path: str) -> None:
    async with running_app(tmp_path) as (client, runtime, _):
        page = await client.post(path, headers=bearer(OPERATOR))
        assert page.status_code == 400
        assert runtime.publisher.wakes == 0


@pytest.mark.parametrize(("body", "why"), [
    ({"ids": [int(HUGE)]}, "ids.0"),
    ({"ids": [True]}, "ids.0: Input should be a valid integer"),
    ({"ids": [1.0]}, "ids.0"),
    ({"ids": ["1"]}, "ids.0"),
    ({"ids": 1}, "ids"),
    ({"since": True}, "since: a time is Unix seconds or ISO 8601 text, not true or false"),
    ({"until": False}, "until"),
    ({"since": 10**400}, "since"),
    ({"since": "not a time"}, "since: not a time"),
    ({"sender": 5}, "sender"),
    ({"sender": "\ud800"}, "sender: text must be valid Unicode"),
    ({"status": "lost"}, "status"),
    ({"all": 1}, "all"),
    ({"all": "yes"}, "all"),
    ({}, '"all": true'),
    ({"idz": [1]}, "unknown field idz"),
    ([], "send a JSON object"),
    ("everything", "send a JSON object"),
    (None, "send a JSON object"),
])
async def test_replay_bodies_are_typed_strictly(tmp_path: Path, body: Any, why: str) -> None:
    async with running_app(tmp_path) as (client, runtime, _):
        answer = await client.post("/api/v1/replay", headers={
            **bearer(OPERATOR), "content-type": "application/json"}, content=json.dumps(body))
        assert answer.status_code == 400, answer.text
        assert why in answer.json()["error"]
        assert await replays_of(runtime.spool) == {"C-0": 0, "C-1": 0, "C-2": 0}
        assert runtime.publisher.wakes == 0
        assert not runtime.settings.console.audit_path.exists()


async def test_a_replay_body_that_is_not_json_is_400(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _, _):
        answer = await client.post("/api/v1/replay", headers={
            **bearer(OPERATOR), "content-type": "application/json"}, content=b"{nope")
        assert answer.status_code == 400
        assert answer.json() == {"error": "the request body must be JSON"}


async def test_a_body_sent_as_a_form_is_told_to_be_json(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _, _):
        answer = await client.post("/api/v1/replay", headers=bearer(OPERATOR),
                                   data={"all": "true"})  # curl -d without -H
        assert answer.status_code == 400
        assert "Content-Type: application/json" in answer.json()["error"]


async def test_a_well_typed_replay_still_replays_and_is_audited(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, runtime, _):
        answer = await client.post("/api/v1/replay", headers=bearer(OPERATOR),
                                   json={"message_type": "ADT^*", "since": 0,
                                         "until": "2999-01-01T00:00"})
        assert answer.status_code == 202
        assert len(answer.json()["replayed"]) == 2  # the published and the failed one
        assert await replays_of(runtime.spool) == {"C-0": 1, "C-1": 1, "C-2": 0}
        assert runtime.publisher.wakes == 1
        entry = json.loads(runtime.settings.console.audit_path.read_text().splitlines()[-1])
        assert entry["action"] == "replay" and entry["user"] == "olga"
        assert entry["filter"] == {"message_type": "ADT^*", "since": 0.0,
                                   "until": 32472144000.0}


@pytest.mark.parametrize("body", [{"text": 5}, {"text": "MSH|", "profile": True},
                                  {"text": "\udc80"}, {}, []])
async def test_playground_bodies_are_typed_strictly(tmp_path: Path, body: Any) -> None:
    async with running_app(tmp_path) as (client, _, _):
        answer = await client.post("/api/v1/playground", headers={
            **bearer(VIEWER), "content-type": "application/json"}, content=json.dumps(body))
        assert answer.status_code == 400, answer.text


def test_filters_refuse_what_sqlite_cannot_hold() -> None:
    for params in ({"before": HUGE}, {"before": "0"}, {"limit": "x"}, {"since": "inf"},
                   {"sender": "\ud800"}, {"before": "١٢"},
                   {"before": "0" * 39 + "1" + "0" * 5000}):  # Arabic-Indic digits: isdigit()
        with pytest.raises(Denied) as refused:
            parse_query(params)
        assert refused.value.status == 400
    assert parse_query({"limit": "500", "before": str(2**63 - 1)}).limit == 500
    with pytest.raises(Denied, match="not true or false"):
        filter_from_json({"since": True})
    assert filter_from_json({"ids": [2**63 - 1]}) == MessageFilter(ids=(2**63 - 1,))
