"""Trying a changed profile on recent messages before it goes live, then applying or discarding it.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console.core import Console


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    return APIRouter()
