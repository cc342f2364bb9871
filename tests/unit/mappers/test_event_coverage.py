"""The trigger events a hospital's feeds send that ``hl7gw map`` must take: the checklist.

Each event resolves to a message spec (no ``UnsupportedEvent``) and has a realistic sample
(``samples/*.hl7`` or ``samples/messages/*.hl7``, MSH-9 naming the event) with its golden
Bundle in ``samples/expected/``. A failure lists every event still missing and why.
"""

from __future__ import annotations

import re
from pathlib import Path

from mappers.conversion import default_specs
from tests.support import SAMPLES


def _span(prefix: str, first: int, last: int, width: int = 2) -> list[str]:
    return [f"{prefix}{n:0{width}d}" for n in range(first, last + 1)]


EVENTS: dict[str, list[str]] = {
    "ADT": [*_span("A", 1, 17), *_span("A", 20, 31), "A37", "A38", *_span("A", 40, 47),
            "A50", "A51", "A60", "A61", "A62"],
    "BAR": ["P01", "P02", "P05", "P06", "P12"],
    "DFT": ["P03", "P11"],
    "MDM": _span("T", 1, 11),
    "OML": ["O21", "O33", "O35"],
    "ORM": ["O01"],
    "OMG": ["O19"],
    "OMP": ["O09"],
    "ORU": ["R01", "R30"],
    "OUL": ["R22", "R23", "R24"],
    "RDE": ["O11", "O25"],
    "RDS": ["O13"],
    "RAS": ["O17"],
    "RGV": ["O15"],
    "REF": ["I12", "I14"],
    "SIU": _span("S", 12, 26),
    "VXU": ["V04"],
    "PPR": ["PC1", "PC2", "PC3"],
}
ALL = [f"{code}^{event}" for code, events in EVENTS.items() for event in events]


def test_the_checklist_is_the_issue_list() -> None:
    assert len(ALL) == len(set(ALL)) == 99
    assert EVENTS["ADT"][16] == "A17" and "A18" not in EVENTS["ADT"]


def _sample_events() -> dict[str, list[Path]]:
    """``ADT^A01`` -> the sample files holding such a message (every MSH in the file)."""
    found: dict[str, list[Path]] = {}
    for path in sorted([*SAMPLES.glob("*.hl7"), *SAMPLES.glob("messages/*.hl7")]):
        text = path.read_bytes().decode("utf-8", "replace").lstrip("\ufeff")
        for segment in re.split(r"\r\n|\r|\n", text):
            if not segment.startswith("MSH") or len(segment) < 8:
                continue
            fields = segment.split(segment[3])
            if len(fields) > 8:
                kind = fields[8].split(fields[1][:1])
                if len(kind) > 1:
                    found.setdefault(f"{kind[0]}^{kind[1]}", []).append(path)
    return found


def test_every_event_maps_and_has_a_sample_with_a_golden() -> None:
    specs = default_specs().messages
    samples = _sample_events()
    missing: list[str] = []
    for name in ALL:
        code, event = name.split("^")
        why = []
        if (code, event) not in specs:
            why.append("no message spec (UnsupportedEvent)")
        files = samples.get(name, [])
        if not files:
            why.append("no sample")
        elif not any((SAMPLES / "expected" / f"{p.stem}.json").is_file() for p in files):
            why.append(f"no golden for {', '.join(p.name for p in files)}")
        if why:
            missing.append(f"{name}: {'; '.join(why)}")
    assert not missing, (f"{len(missing)} of {len(ALL)} trigger events not done:\n"
                         + "\n".join(missing))
