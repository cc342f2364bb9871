"""Finding any message in the spool: by patient identifier, name, control id, order number or free
text, off the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console.core import Console


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    return APIRouter()
