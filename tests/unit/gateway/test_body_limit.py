"""The request body cap: by declared length before the app runs, by count while it reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from gateway.body_limit import BodyLimit
from tests.unit.gateway.console_app import VIEWER, running_app


async def call(app: Any, path: str, chunks: list[bytes], *, length: int | None,
               headers: dict[str, str] | None = None) -> tuple[int, bytes, int]:
    """Drive an ASGI app by hand: (status, body, body messages the app took)."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": raw, "client": ("127.0.0.1", 1234),
             "server": ("gw", 80), "root_path": ""}
    pending = list(chunks)
    taken = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal taken
        if not pending:
            return {"type": "http.disconnect"}
        taken += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent  # exactly one answer
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], body, taken


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body and answers its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


async def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    status, body, taken = await call(BodyLimit(echo, limit=10), "/x", [b"y" * 11], length=11)
    assert status == 413 and taken == 0
    assert "larger than 10 bytes" in json.loads(body)["error"]


async def test_bodies_within_the_limit_pass_untouched() -> None:
    assert await call(BodyLimit(echo, limit=10), "/x", [b"12345", b"67890"], length=None) == (
        200, b"10", 2)


async def test_a_streamed_body_is_cut_off_when_the_count_passes_the_limit() -> None:
    chunks = [b"z" * 4] * 100
    status, body, taken = await call(BodyLimit(echo, limit=10), "/x", chunks, length=None)
    assert status == 413 and taken == 3  # 12 bytes read, then refused: not all 400
    assert "larger than 10 bytes" in json.loads(body)["error"]


async def test_every_route_of_the_real_app_is_covered(tmp_path: Path) -> None:
    # Through FastAPI (JSON bodies), a page's form, and a route that reads nothing.
    async with running_app(tmp_path) as (_, _, app):
        chunks = [b"a" * 65536] * 100  # 6.25 MiB, over the 4 MiB cap
        fields = [b"f=" + b"a" * 65533 + b"&"] * 100  # within the form parser's own limits
        auth = {"authorization": f"Bearer {VIEWER}", "content-type": "application/json"}
        form = {**auth, "content-type": "application/x-www-form-urlencoded"}
        for path, headers, body_chunks in (("/api/v1/playground", auth, chunks),
                                           ("/console/playground", form, fields),
                                           ("/console/login", form, fields)):
            status, body, taken = await call(app, path, list(body_chunks), length=None,
                                             headers=headers)
            assert status == 413, (path, body)
            assert taken <= 65, (path, taken)
        status, _, taken = await call(app, "/api/v1/playground", chunks, length=len(chunks)
                                      * 65536, headers=auth)
        assert status == 413 and taken == 0
