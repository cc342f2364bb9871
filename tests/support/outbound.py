"""FHIR results as a function returns them, for the return path's tests."""

from __future__ import annotations

from typing import Any

from connectors.events import Event


def cause(n: int, patient: str = "pat-1") -> Event:
    """An inbound event as the gateway publishes it (only id, key and subject matter)."""
    return Event(id=f"cause-{n}", source="urn:hl7gw:test", type="hl7gw.fhir.oru.r01",
                 subject=f"Patient/{patient}", time="2026-12-03T10:00:00Z",
                 key=patient.encode(), data=b"{}")


def result(n: int, patient: str = "pat-1") -> dict[str, Any]:
    """A function's answer: the Patient and one Observation, as a collection Bundle."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": f"Patient/{patient}", "resource": {
            "resourceType": "Patient", "id": patient,
            "identifier": [{"system": "urn:oid:1.2.3.4", "value": f"MRN-{patient}"}],
            "name": [{"family": "Doe", "given": ["Jane"]}], "gender": "female",
            "birthDate": "1960-01-02"}},
        {"fullUrl": f"Observation/obs-{n}", "resource": {
            "resourceType": "Observation", "id": f"obs-{n}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                                 "display": "Heart rate"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2026-12-03T10:00:00+01:00",
            "valueQuantity": {"value": 60 + n, "unit": "/min",
                              "system": "http://unitsofmeasure.org", "code": "/min"}}}]}
