"""Dead-letter records: the original key, value and headers plus why delivery failed."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from connectors.errors import ConnectorError

DLQ_PREFIX = "dlq_"
MAX_MESSAGE = 1024


def redact_url(url: str) -> str:
    """``url`` without credentials, query or fragment (API keys sometimes hide there)."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def dead_letter_headers(original: Iterable[tuple[str, bytes]], *, topic: str, partition: int,
                        offset: int, error: ConnectorError, attempts: int,
                        status: int | None, target: str) -> list[tuple[str, bytes]]:
    """The original headers (minus earlier ``dlq_*`` ones) followed by the error headers.

    The message is the connector error's own text, never the target's response body, which
    might echo PHI back.
    """
    headers = [(name, value) for name, value in original if not name.startswith(DLQ_PREFIX)]
    fields = {
        "topic": topic,
        "partition": str(partition),
        "offset": str(offset),
        "error_class": type(error).__name__,
        "error_message": str(error)[:MAX_MESSAGE],
        "attempts": str(attempts),
        "target": redact_url(target),
    }
    if status is not None:
        fields["http_status"] = str(status)
    headers.extend((DLQ_PREFIX + name, value.encode("utf-8")) for name, value in fields.items())
    return headers
