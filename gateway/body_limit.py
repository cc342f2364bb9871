"""Refuse oversized HTTP request bodies before they are buffered: 413 with a reason.

The gateway's HTTP port shares its process with MLLP intake, so one 300 MB POST must not
grow that process by 300 MB. ``BodyLimit`` sits in front of every route: a declared
``Content-Length`` over the limit is answered at once, before any route (or its auth)
runs and before a byte of the body is read (a client that sends
``Expect: 100-continue`` never sends it); a body without a length (chunked) is counted as
it streams and refused once the count passes the limit. Either way the 413 goes out
while the client may still be sending; the server then reads and drops the rest (uvicorn
discards body data once the answer is complete) instead of closing on it: a close with
unread data makes the client's TCP stack reset, and a client that reads its answer only
after sending would lose the 413 and its reason.

When a streamed body passes the limit, reading it raises ``BodyTooLarge`` inside the app;
whatever the layers in between make of that (FastAPI answers 400 for a body it could not
read; ``BaseHTTPMiddleware`` wraps it in an ``ExceptionGroup``), the answer that goes out
is this middleware's 413: it stands in for the app's own response from then on.

Starlette's own ``RequestBodyLimitMiddleware`` refuses only when the app reads the body,
and in its own words; this one answers first, in the API's ``{"error": ...}`` shape.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 4 * 1024 * 1024  # 1 MiB of playground text, even percent-encoded (3x)


class BodyTooLarge(HTTPException):
    """A request body passed the limit while the app was reading it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))
        self.limit = limit


def too_large(limit: int) -> str:
    """The reason given with a 413."""
    return (f"refused: the request body is larger than {limit} bytes "
            f"({limit / 1048576:g} MiB), the most this gateway accepts")


def refusal(limit: int) -> Response:
    """The 413 answer, with the reason as JSON."""
    return JSONResponse({"error": too_large(limit)}, status_code=413)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` as a number; None when absent or unreadable."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None
    return None


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body per HTTP request."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            await refusal(self.limit)(scope, receive, send)
            return
        received = 0
        refused = False  # the body passed the limit: the 413 is the answer
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit and not started:
                    refused = True
                    raise BodyTooLarge(self.limit)
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
                if refused:  # the app's answer to the unread body gives way to the 413
                    await refusal(self.limit)(scope, receive, send)
                    return
            elif refused:
                return
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not refused:
                raise
            if not started:
                started = True
                await refusal(self.limit)(scope, receive, send)


__all__ = ["MAX_BODY_BYTES", "BodyLimit", "BodyTooLarge"]
