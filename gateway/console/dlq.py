"""The dead-letter page (events the bridge gave up on, redrive) and the alert rules' page."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console.core import Console


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    return APIRouter()
