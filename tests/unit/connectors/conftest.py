"""Fixtures for the function package's tests: a Lambda handler over a fresh MemoryStore."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.cloud import MemoryStore, create_app, make_handler


@pytest.fixture
def store() -> MemoryStore:
    """The sample processor, empty, so a test can read back what the handler kept."""
    return MemoryStore()


@pytest.fixture
def handler(store: MemoryStore) -> Any:
    """``handler(event, context)`` as AWS Lambda would call it, over ``store``."""
    return make_handler(create_app(store))
