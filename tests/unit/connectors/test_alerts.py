"""The remote-monitoring alert processor with hand-made vital-sign Bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connectors.cloud import (
    HttpAlertSink,
    MemoryAlertSink,
    VitalSignAlerts,
    create_app,
    load_thresholds,
    thresholds_from,
)
from connectors.cloud.alerts import ALERT_TYPE, AlertSinkError
from connectors.errors import SettingsFileError
from connectors.events import Event


def quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": code}


def observation(obs_id: str, loinc: str, value: float | None, unit: str = "/min",
                ucum: str = "/min", **extra: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": obs_id, "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/pat-7f3a"},
        "effectiveDateTime": "2024-05-01T10:00:00+02:00",
    }
    if value is not None:
        obs["valueQuantity"] = quantity(value, unit, ucum)
    obs.update(extra)
    return obs


def bp_panel(obs_id: str, systolic: float, diastolic: float) -> dict[str, Any]:
    def component(code: str, value: float) -> dict[str, Any]:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": quantity(value, "mmHg", "mm[Hg]")}
    return observation(obs_id, "85354-9", None,
                       component=[component("8480-6", systolic), component("8462-4", diastolic)])


def bundle(*observations: dict[str, Any]) -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": "pat-7f3a",
               "name": [{"family": "Doe", "given": ["Jane"]}]}
    resources = [patient, *observations]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources]}


def source_event(data: dict[str, Any], event_id: str = "evt-oru-1") -> Event:
    return Event(id=event_id, source="urn:hl7gw:test", type="hl7gw.fhir.oru.r01",
                 subject="Patient/pat-7f3a", time="2024-05-01T10:00:01Z", key=b"pat-7f3a",
                 data=orjson.dumps(data))


async def run(data: dict[str, Any], **kwargs: Any) -> list[Event]:
    sink = MemoryAlertSink()
    await VitalSignAlerts(sink, **kwargs).process(source_event(data), data)
    return sink.alerts


async def test_values_inside_thresholds_raise_nothing() -> None:
    data = bundle(observation("hr", "8867-4", 72), observation("rr", "9279-1", 16),
                  observation("spo2", "59408-5", 97, "%", "%"),
                  observation("temp", "8310-5", 36.8, "Cel", "Cel"), bp_panel("bp", 120, 80))
    assert await run(data) == []


async def test_high_heart_rate_alert_event() -> None:
    [alert] = await run(bundle(observation("hr-1", "8867-4", 142)))
    assert alert.type == ALERT_TYPE
    assert alert.subject == "Patient/pat-7f3a"
    assert alert.content_type == "application/json"
    assert orjson.loads(alert.data) == {
        "code": "8867-4", "system": "http://loinc.org", "value": 142.0, "unit": "/min",
        "threshold": {"side": "high", "value": 130.0}, "observation": "hr-1",
        "sourceevent": "evt-oru-1"}
    assert b"Doe" not in alert.data and b"Jane" not in alert.data


async def test_every_vital_sign_code_is_checked() -> None:
    data = bundle(observation("rr", "9279-1", 30), observation("spo2", "59408-5", 85, "%", "%"),
                  observation("sao2", "2708-6", 88, "%", "%"),
                  observation("temp", "8310-5", 34.2, "Cel", "Cel"),
                  observation("hr", "8867-4", 35))
    alerts = [orjson.loads(a.data) for a in await run(data)]
    assert [(a["code"], a["threshold"]["side"]) for a in alerts] == [
        ("9279-1", "high"), ("59408-5", "low"), ("2708-6", "low"), ("8310-5", "low"),
        ("8867-4", "low")]


async def test_blood_pressure_panel_components() -> None:
    alerts = await run(bundle(bp_panel("bp-1", 195, 80), bp_panel("bp-2", 120, 45)))
    found = [orjson.loads(a.data) for a in alerts]
    assert [(a["observation"], a["code"], a["value"], a["unit"]) for a in found] == [
        ("bp-1", "8480-6", 195.0, "mm[Hg]"), ("bp-2", "8462-4", 45.0, "mm[Hg]")]


async def test_unknown_codes_missing_values_and_errors_are_ignored() -> None:
    data = bundle(observation("glu", "2339-0", 400, "mg/dL", "mg/dL"),
                  observation("hr-none", "8867-4", None),
                  observation("hr-err", "8867-4", 200, status="entered-in-error"))
    assert await run(data) == []


async def test_configured_thresholds_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.yaml"
    path.write_text('"8867-4": {low: 50, high: 100}\n', encoding="utf-8")
    alerts = await run(bundle(observation("hr", "8867-4", 110)),
                       thresholds=load_thresholds(path))
    assert orjson.loads(alerts[0].data)["threshold"] == {"side": "high", "value": 100.0}
    assert thresholds_from({})["8310-5"].high == 38.5  # the defaults stay for other codes


@pytest.mark.parametrize("data", [{"8867-4": {"low": 100, "high": 50}},
                                  {"8867-4": {"min": 1}}, {"8867-4": 5},
                                  {"8867-4": {"low": "fifty"}}, {"8867-4": {"high": True}},
                                  {"8867-4": {"high": [1]}}])
def test_bad_thresholds_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="8867-4"):
        thresholds_from(data)


@pytest.mark.parametrize(("text", "line", "says"), [
    ('"8310-5": {high: 39}\n"8867-4": {low: fifty}\n', 2, "low must be a finite number"),
    ('"8867-4": {low: 60}\n"9279-1": {min: 5}\n', 2, "mapping with low and/or high"),
    ('"8867-4": {low: 60\n', 2, "not valid YAML"),
    ("- 8867-4\n", 1, "mapping of LOINC code"),
])
def test_a_bad_thresholds_file_names_its_line(tmp_path: Path, text: str, line: int,
                                              says: str) -> None:
    # Before, a bad value was a bare ValueError (or a TypeError / YAML traceback) without
    # the file or the line, and the function failed to start with no hint where to look.
    path = tmp_path / "thresholds.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsFileError) as refused:
        load_thresholds(path)
    assert str(refused.value).startswith(f"{path}:{line}: ")
    assert says in str(refused.value)


async def test_alert_id_is_stable_across_replays() -> None:
    data = bundle(observation("hr", "8867-4", 150))
    first, again = await run(data), await run(data)
    assert first[0].id == again[0].id
    other = MemoryAlertSink()
    await VitalSignAlerts(other).process(source_event(data, "evt-oru-2"), data)
    assert other.alerts[0].id != first[0].id


async def test_http_sink_posts_the_cloudevent() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202 if len(seen) == 1 else 503)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    sink = HttpAlertSink("https://alerts.example/events", client=client)
    processor = VitalSignAlerts(sink)
    data = bundle(observation("hr", "8867-4", 150))
    try:
        await processor.process(source_event(data), data)
        assert seen[0].headers["ce-type"] == ALERT_TYPE
        assert seen[0].headers["ce-subject"] == "Patient/pat-7f3a"
        assert seen[0].headers["idempotency-key"] == seen[0].headers["ce-id"]
        assert orjson.loads(seen[0].content)["code"] == "8867-4"
        with pytest.raises(AlertSinkError, match="503"):
            await processor.process(source_event(data), data)
    finally:
        await processor.aclose()
    assert client.is_closed


async def test_sink_failure_makes_the_function_answer_500() -> None:
    class Down:
        async def send(self, alert: Event) -> None:
            raise AlertSinkError("alert sink answered HTTP 503")

    app = create_app(VitalSignAlerts(Down()))
    data = bundle(observation("hr", "8867-4", 150))
    e = source_event(data)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://fn") as client:
        response = await client.post("/events", content=e.data, headers=e.http_headers())
    assert response.status_code == 500
