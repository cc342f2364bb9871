"""Working on many messages at once: replay or reprocess a selection, export it as HL7 or NDJSON;
the raw view and the Bundle diff.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console.core import Console


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    return APIRouter()
