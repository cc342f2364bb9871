"""``mappers.patient_key``: the id ``convert`` gives the Patient, without building the Bundle.

Scale-out mode keys raw messages by it (gateway/publisher.py), so that a patient's messages
share a partition; it must equal the key of the FHIR events the mapper later makes.
"""

from __future__ import annotations

import pytest

from mappers import UnsupportedEvent, convert, patient_key
from mappers.profiles import ProfileSet
from tests.support import MESSAGES, PROFILES, SAMPLES

SAMPLE_FILES = sorted([*SAMPLES.glob("*.hl7"), *MESSAGES.glob("*.hl7")])


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_patient_key_is_the_key_convert_gives(path: object) -> None:
    text = path.read_bytes().decode()  # type: ignore[attr-defined]
    assert patient_key(text, default_tz="Europe/Berlin") == \
        convert(text, default_tz="Europe/Berlin").patient_key


def test_patient_key_follows_the_sender_profile() -> None:
    """A profile choosing another identifier as the patient's key changes both alike."""
    profile = ProfileSet.load(PROFILES).get("sunlab")
    assert profile.overlay is not None and profile.overlay.key_authority is not None
    changed = 0
    for path in SAMPLE_FILES:
        text = path.read_bytes().decode()
        keyed = patient_key(text, profile=profile)
        assert keyed == convert(text, profile=profile).patient_key, path.stem
        changed += keyed != patient_key(text)
    assert changed  # the profile's choice of identifier did make a difference somewhere


def test_patient_key_refuses_what_convert_refuses() -> None:
    text = (SAMPLES / "adt_a01.hl7").read_bytes().decode().replace("ADT^A01", "ADT^A99", 1)
    with pytest.raises(UnsupportedEvent):
        patient_key(text)
