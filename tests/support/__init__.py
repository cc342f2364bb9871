"""Helpers shared by the test suites: where the repository's samples are, and message edits.

Paths come from this file's place in the repository, never from the working directory, so
``pytest /path/to/repo/tests`` passes from any directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[2]
SAMPLES: Final = REPO / "samples"  # the one samples folder: the demo's ADT messages on top
MESSAGES: Final = SAMPLES / "messages"  # one sample per other supported message type
EXPECTED: Final = SAMPLES / "expected"  # the golden Bundle of every sample
PROFILES: Final = SAMPLES / "profiles"


def sample_path(name: str) -> Path:
    """``samples/<name>.hl7`` or ``samples/messages/<name>.hl7`` (``name`` without suffix)."""
    for folder in (SAMPLES, MESSAGES):
        path = folder / f"{name}.hl7"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no sample {name}.hl7 in {SAMPLES} or {MESSAGES}")


def sample_text(name: str) -> str:
    """A sample message as text (the samples are UTF-8, segments separated by CR)."""
    return sample_path(name).read_bytes().decode()


def with_control_id(message: bytes, control_id: str) -> bytes:
    """``message`` with MSH-10 (the message control id) replaced."""
    first, rest = message.split(b"\r", 1)
    fields = first.split(b"|")
    fields[9] = control_id.encode()
    return b"|".join(fields) + b"\r" + rest


def with_msh(message: bytes, **fields: str) -> bytes:
    """``message`` with MSH fields replaced, e.g. ``with_msh(m, f15="AL")`` for MSH-15."""
    first, rest = message.split(b"\r", 1)
    parts = first.split(b"|")
    for key, value in fields.items():
        n = int(key[1:])
        while len(parts) < n:
            parts.append(b"")
        parts[n - 1] = value.encode()
    return b"|".join(parts) + b"\r" + rest


def without(segment: str, text: str) -> str:
    """``text`` without any ``segment`` line."""
    return "\r".join(s for s in text.split("\r") if not s.startswith(segment + "|"))


def of_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The resources of one type in a Bundle, in entry order."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]
