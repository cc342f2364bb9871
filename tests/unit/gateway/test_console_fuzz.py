"""Fuzzing the console's and the API's inputs (hypothesis): never a 500, always a reason.

Query strings, path ids, JSON bodies (well-formed with wrong types, any JSON at all, and
bytes that are not JSON), forms and the Authorization header, against the real app over a
real SQLite spool. A 4xx from the API carries ``{"error": ...}``; a replay is accepted
(202) only for a body a strict reading allows (no ``true`` as a number, ids in 64 bits,
an empty filter only with ``"all": true``). ``make test`` tries a few hundred examples per
target, the same ones every run; ``make fuzz`` many more, at random (tests/support/fuzz.py):
a tenth of ``HL7GW_FUZZ_EXAMPLES`` here, as each example is an HTTP round trip through the
whole app and SQLite (about 7 ms; 3,000 per target took 2.6 minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Awaitable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from tests.support.fuzz import ENV, fuzz, fuzz_settings
from tests.unit.gateway.console_app import OPERATOR, VIEWER, FakeRuntime, bearer, running_app

pytestmark = fuzz
T = TypeVar("T")
EXAMPLES = 300
MAX_ROW_ID = 2**63 - 1


def http_fuzz_settings() -> settings:
    """``fuzz_settings``, with a tenth of a long run's examples (each is a round trip)."""
    base = fuzz_settings(EXAMPLES)
    if os.environ.get(ENV, "").strip():
        return settings(base, max_examples=max(EXAMPLES, base.max_examples // 10))
    return base


class Harness:
    """One app, spool and client for a whole test module, on an event loop of its own
    (hypothesis calls the test once per example, synchronously)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.stack = AsyncExitStack()
        self.folder = tempfile.TemporaryDirectory(prefix="console-fuzz-")
        client, runtime, _ = self.run(self.stack.enter_async_context(
            running_app(Path(self.folder.name))))
        self.client: httpx.AsyncClient = client
        self.runtime: FakeRuntime = runtime

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        answer = self.run(self.client.request(method, url, **kwargs))
        assert answer.status_code < 500, (method, url, answer.status_code, answer.text[:500])
        if url.startswith("/api/") and answer.status_code >= 400:
            assert isinstance(answer.json().get("error"), str), answer.text[:500]
        return answer

    def close(self) -> None:
        self.run(self.stack.aclose())
        self.loop.close()
        self.folder.cleanup()


@pytest.fixture(scope="module")
def gw() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


# -- strategies ---------------------------------------------------------------------------

numbers_as_text = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "0", "1", "1e999", "nan", "-0", "1_000", "²", "١٢", "0x10",
                     str(MAX_ROW_ID), str(MAX_ROW_ID + 1), "9" * 5000]))
times_as_text = st.one_of(
    numbers_as_text,
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                     "2024-01-15T10:30", "2024-13-45", "yesterday"]))
any_text = st.text(max_size=40)
query_values = st.one_of(any_text, numbers_as_text, times_as_text)
query = st.dictionaries(
    st.sampled_from(["sender", "type", "status", "control_id", "since", "until", "limit",
                     "before", "show", "notice", "other"]),
    query_values, max_size=6)
row_ids = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                    numbers_as_text, st.text(min_size=1, max_size=20))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)
replay_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={
        "ids": st.one_of(st.lists(st.one_of(st.integers(min_value=-(2**70),
                                                        max_value=2**70), json_values),
                                  max_size=5), json_values),
        "sender": st.one_of(any_text, json_values),
        "message_type": st.one_of(st.sampled_from(["ADT^A01", "ADT^*", ""]), json_values),
        "status": st.one_of(st.sampled_from(["pending", "published", "failed", "conflict",
                                             "lost"]), json_values),
        "control_id": st.one_of(any_text, json_values),
        "since": st.one_of(times_as_text, json_values),
        "until": st.one_of(times_as_text, json_values),
        "all": json_values}),
    json_values)


def has_bool(value: object) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(has_bool(v) for v in value)
    if isinstance(value, dict):
        return any(has_bool(v) for v in value.values())
    return False


def json_request(body: Any) -> dict[str, Any]:
    # json.dumps, not httpx's json=: lone surrogates and big ints must reach the server
    return {"content": json.dumps(body), "headers": {
        **bearer(OPERATOR), "content-type": "application/json"}}


# -- targets ------------------------------------------------------------------------------


@http_fuzz_settings()
@given(path=st.sampled_from(["/api/v1/messages", "/api/v1/rejected", "/console/messages",
                             "/console/rejected"]), params=query)
@example(path="/api/v1/messages", params={"before": "99999999999999999999"})
@example(path="/console/rejected", params={"before": "99999999999999999999"})
@example(path="/api/v1/messages", params={"since": "nan"})
def test_listings_answer_any_query(gw: Harness, path: str, params: dict[str, str]) -> None:
    answer = gw.request("GET", path, params=params, headers=bearer(VIEWER))
    assert answer.status_code in (200, 400)


@http_fuzz_settings()
@given(template=st.sampled_from([
    "/api/v1/messages/{}", "/api/v1/messages/{}/body", "/api/v1/rejected/{}",
    "/api/v1/rejected/{}/body", "/console/messages/{}", "/console/messages/{}?show=body",
    "/console/rejected/{}", "/console/rejected/{}?show=body&ack=AA&row=1"]), row=row_ids)
@example(template="/api/v1/messages/{}", row="99999999999999999999")
def test_pages_and_ids_answer_any_row_id(gw: Harness, template: str, row: str) -> None:
    answer = gw.request("GET", template.format(quote(row, safe="")),
                        headers=bearer(OPERATOR))
    assert answer.status_code in (200, 307, 400, 404, 405)  # 307: "/messages/" to "/messages"


@http_fuzz_settings()
@given(body=replay_bodies)
@example(body={"since": True})
@example(body={"ids": [True]})
@example(body={"ids": [99999999999999999999]})
@example(body={"sender": "\ud800"})
@example(body={"all": True})  # accepted: the property's 202 branch runs every time
@example(body={"message_type": "ADT^*", "since": 0, "until": "2999-01-01"})
def test_replay_accepts_only_what_a_strict_reading_allows(gw: Harness, body: Any) -> None:
    answer = gw.request("POST", "/api/v1/replay", **json_request(body))
    event(f"HTTP {answer.status_code}")
    assert answer.status_code in (202, 400), answer.text
    if answer.status_code == 202:
        assert isinstance(body, dict)
        assert not has_bool({k: v for k, v in body.items() if k != "all"})
        assert all(1 <= i <= MAX_ROW_ID for i in body.get("ids") or [])
        given_fields = {k: v for k, v in body.items() if k != "all" and v not in (None, "", [])}
        assert given_fields or body.get("all") is True


@http_fuzz_settings()
@given(path=st.sampled_from(["/api/v1/replay", "/api/v1/playground"]),
       raw=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)),
       kind=st.sampled_from(["application/json", "text/plain", "", "application/x+json"]))
def test_bodies_that_are_not_json_are_refused(gw: Harness, path: str, raw: bytes,
                                              kind: str) -> None:
    headers = {**bearer(OPERATOR), **({"content-type": kind} if kind else {})}
    gw.request("POST", path, content=raw, headers=headers)


@http_fuzz_settings()
@given(body=st.one_of(st.fixed_dictionaries({"text": st.one_of(st.text(max_size=200),
                                                               json_values)},
                                            optional={"profile": json_values}),
                      json_values))
@example(body={"text": "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\r", "profile": "nope"})
@example(body={"text": "\udc80"})
def test_the_playground_maps_or_refuses_any_body(gw: Harness, body: Any) -> None:
    answer = gw.request("POST", "/api/v1/playground", **json_request(body))
    event(f"HTTP {answer.status_code}")
    assert answer.status_code in (200, 400)


@http_fuzz_settings()
@given(path=st.sampled_from(["/console/playground", "/console/login",
                             "/console/messages/1/replay", "/console/rejected/1/reprocess"]),
       form=st.dictionaries(st.sampled_from(["text", "profile", "csrf", "token", "next"]),
                            st.text(max_size=60), max_size=4))
def test_console_forms_answer_any_fields(gw: Harness, path: str, form: dict[str, str]) -> None:
    answer = gw.request("POST", path, data=form, headers=bearer(OPERATOR))
    assert answer.status_code in (200, 303, 400, 401, 403, 404, 409)


@http_fuzz_settings()
@given(value=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                     max_size=80))
def test_any_authorization_header_is_a_401_not_a_crash(gw: Harness, value: str) -> None:
    answer = gw.request("GET", "/api/v1/messages", headers={"Authorization": value})
    assert answer.status_code in (200, 401)


def test_the_harness_would_see_a_500(gw: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above are only as good as this: an exception in a route is seen."""

    async def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(gw.runtime.spool, "counts", broken)
    with pytest.raises(AssertionError, match="500"):
        gw.request("GET", "/api/v1/dashboard", headers=bearer(VIEWER))
