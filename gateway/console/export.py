"""Export a selection of spooled messages as one file, streamed as it is read.

Two formats:

- ``hl7``: the raw messages as received (decoded with each row's charset, written as
  UTF-8), without MLLP framing; each segment ends with a carriage return and each message
  with a newline, the layout most HL7 tools read as a batch of messages.
- ``ndjson``: one FHIR Bundle per line, as the mapper makes it *now* (the profiles live at
  this moment, the row's charset and time zone). A message that cannot be mapped now is
  written as an ``OperationOutcome`` naming the row and the reason, so every line is a
  FHIR resource and no row is silently left out.

Rows are read a chunk at a time (bodies through the spool, which opens sealed values) and
mapped in a worker thread, so a 10,000-message export holds one chunk in memory and never
blocks the event loop that MLLP intake shares.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from gateway.console.bulk_select import infos
from gateway.console.core import Console
from gateway.spool import MessageInfo

Format = Literal["hl7", "ndjson"]
CHUNK = 50
MEDIA = {"hl7": "x-application/hl7-v2+er7; charset=utf-8",
         "ndjson": "application/x-ndjson; charset=utf-8"}
SUFFIX = {"hl7": "hl7", "ndjson": "ndjson"}


def hl7_text(raw: bytes, charset: str) -> str:
    """One message as a file entry: segments ending in CR, the message in a newline."""
    text = raw.decode(charset, "replace").replace("\r\n", "\r").replace("\n", "\r")
    segments = [s for s in text.split("\r") if s.strip()]
    return "".join(f"{s}\r" for s in segments) + "\n"


def outcome_line(row_id: int, reason: str) -> dict[str, object]:
    """What stands in for a Bundle the mapper cannot make now."""
    return {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "processing",
        "diagnostics": f"spool row {row_id}: not mapped now: {reason}"}]}


def _ndjson_lines(console: Console, rows: Sequence[tuple[MessageInfo, bytes]]) -> str:
    lines: list[str] = []
    for info, raw in rows:
        _, _, view = console.map_row(raw, info.listener, info.charset, info.timezone)
        resource = view.bundle if view.bundle is not None else \
            outcome_line(info.id, view.error or "no Bundle")
        lines.append(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")
    return "".join(lines)


async def stream(console: Console, ids: Sequence[int], fmt: Format) -> AsyncIterator[bytes]:
    """The export file of ``ids`` (oldest first), a chunk of messages at a time."""
    ordered = sorted(ids)
    spool = console.runtime.spool
    for start in range(0, len(ordered), CHUNK):
        part = ordered[start:start + CHUNK]
        found = sorted(await infos(console, part), key=lambda r: r.id)
        rows: list[tuple[MessageInfo, bytes]] = []
        for info in found:
            stored = await spool.body(info.id)
            if stored is not None:  # pruned since the preview: nothing to write
                rows.append((info, stored.raw))
        if fmt == "hl7":
            yield "".join(hl7_text(raw, info.charset) for info, raw in rows).encode()
        else:
            yield (await asyncio.to_thread(_ndjson_lines, console, rows)).encode()


def filename(fmt: Format, count: int) -> str:
    """``messages-3.hl7``: what the browser saves the export as."""
    return f"messages-{count}.{SUFFIX[fmt]}"
