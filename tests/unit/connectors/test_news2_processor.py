"""The NEWS2 processor: readings merged per patient, stale and missing ones reported,
deterministic result ids, the DynamoDB store (with a fake client) and HL7GW_PROCESSOR."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from connectors.cloud import processor_from_env
from connectors.cloud.news2_processor import NEWS2_TOTAL, News2Processor
from connectors.cloud.news2_state import (
    DynamoDbVitalsStore,
    MemoryVitalsStore,
    VitalsStore,
    VitalsStoreError,
)
from connectors.cloud.news2_vitals import NEWS2_SYSTEM, Reading, find_vitals
from connectors.events import Event
from gateway.prepare import convert, prepare
from mappers.profiles import ProfileSet
from tests.support import PROFILES, SAMPLES

LOINC = "http://loinc.org"
PATIENT = "pat-1"
T0 = "2024-03-12T09:00:00-04:00"


def at(hours: float) -> str:
    """T0 plus ``hours`` (whole minutes), with T0's offset."""
    minutes = round(hours * 60)
    return f"2024-03-12T{9 + (minutes // 60):02d}:{minutes % 60:02d}:00-04:00"


def obs(obs_id: str, code: str, *, value: float | None = None, unit: str | None = None,
        time: str = T0, system: str = LOINC, status: str = "final",
        **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": obs_id, "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT}"}, "effectiveDateTime": time, **extra}
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": unit,
                                     "system": "http://unitsofmeasure.org", "code": unit}
    return resource


def acvpu(obs_id: str, letter: str, time: str = T0) -> dict[str, Any]:
    return obs(obs_id, "67775-7", time=time,
               valueCodeableConcept={"coding": [{"code": letter}]})


def full_set(time: str = T0, prefix: str = "") -> list[dict[str, Any]]:
    """RR 22: 2, SpO2 95: 1, O2 2 L/min: 2, SBP 118: 0, HR 88: 0, A: 0, 38.4: 1 -> 6."""
    return [obs(f"{prefix}rr", "9279-1", value=22, unit="/min", time=time),
            obs(f"{prefix}spo2", "59408-5", value=95, unit="%", time=time),
            obs(f"{prefix}o2", "3151-8", value=2, unit="L/min", time=time),
            obs(f"{prefix}sbp", "8480-6", value=118, unit="mm[Hg]", time=time),
            obs(f"{prefix}hr", "8867-4", value=88, unit="/min", time=time),
            acvpu(f"{prefix}acvpu", "A", time),
            obs(f"{prefix}temp", "8310-5", value=38.4, unit="Cel", time=time)]


def bundle(*observations: dict[str, Any]) -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": PATIENT,
               "identifier": [{"system": "urn:id:RIVERSIDE", "value": "7712345"}]}
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:{PATIENT}", "resource": patient},
                      *({"fullUrl": f"urn:uuid:{o['id']}", "resource": o}
                        for o in observations)]}


def event(event_id: str = "evt-1") -> Event:
    """The event as the bridge delivers it, every time alike (a retry repeats ``time``)."""
    return Event(id=event_id, source="urn:hl7gw:test", type="hl7gw.fhir.oru.r01",
                 subject=f"Patient/{PATIENT}", time="2024-03-12T13:15:02.117Z",
                 key=PATIENT.encode(), data=b"{}")


def resource(result: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    assert result is not None
    found: list[dict[str, Any]] = [e["resource"] for e in result["entry"]
                                   if e["resource"]["resourceType"] == kind]
    assert len(found) == 1
    return found[0]


def components(score_obs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]["coding"][0]["code"]: c for c in score_obs["component"]}


RR, SPO2_1, SPO2_2, O2, SBP, HR, ACVPU, TEMP = (
    "1104301000000104", "1104311000000102", "1104321000000108", "1104331000000105",
    "1104341000000101", "1104351000000103", "1104361000000100", "1104371000000107")


# -- the result ---------------------------------------------------------------------------

async def test_the_sample_message_scores_6_medium_with_the_ward_profile() -> None:
    prepared = prepare((SAMPLES / "oru_r01_vitals.hl7").read_bytes(),
                       profiles=ProfileSet.load(PROFILES))
    inbound = convert(prepared).bundle
    result = await News2Processor().process(event(), inbound)
    assert result is not None and result["type"] == "collection"
    assert [e["resource"]["resourceType"] for e in result["entry"]] == [
        "Patient", "Observation", "RiskAssessment"]
    patient = next(e for e in inbound["entry"] if e["resource"]["resourceType"] == "Patient")
    assert result["entry"][0] == {"fullUrl": patient["fullUrl"],
                                  "resource": patient["resource"]}
    score_obs, risk = resource(result, "Observation"), resource(result, "RiskAssessment")
    assert score_obs["valueInteger"] == 6 and score_obs["status"] == "final"
    assert score_obs["code"]["coding"][0]["code"] == NEWS2_TOTAL
    assert [c.get("valueInteger") for c in score_obs["component"]] == [2, 1, 2, 0, 0, 0, 1]
    vitals = {f"Observation/{e['resource']['id']}" for e in inbound["entry"]
              if e["resource"]["resourceType"] == "Observation"}
    assert {r["reference"] for r in score_obs["derivedFrom"]} == vitals
    assert {r["reference"] for r in risk["basis"]} == vitals | {
        f"Observation/{score_obs['id']}"}
    assert risk["status"] == "final"
    assert risk["subject"] == {"reference": f"Patient/{patient['resource']['id']}"}
    assert risk["occurrenceDateTime"] == "2024-03-12T09:12:00-04:00"
    codings = risk["prediction"][0]["qualitativeRisk"]["coding"]
    assert [(c["system"], c["code"]) for c in codings] == [
        (NEWS2_SYSTEM, "medium"),
        ("http://terminology.hl7.org/CodeSystem/risk-probability", "moderate")]


async def test_a_single_red_score_is_low_medium() -> None:
    readings = [*full_set()[:5], acvpu("acvpu", "C"),
                obs("temp", "8310-5", value=37.0, unit="Cel")]
    readings[0] = obs("rr", "9279-1", value=16, unit="/min")
    readings[1] = obs("spo2", "59408-5", value=97, unit="%")
    readings[2] = obs("o2", "3151-8", value=0, unit="L/min")  # 0 L/min: air
    result = await News2Processor().process(event(), bundle(*readings))
    assert resource(result, "Observation")["valueInteger"] == 3
    risk = resource(result, "RiskAssessment")
    assert risk["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == "low-medium"
    assert any("Red score (3) in: consciousness" in n["text"] for n in risk["note"])


async def test_bundles_without_news2_readings_get_none() -> None:
    lab = obs("glu", "2345-7", value=112, unit="mg/dL")
    assert await News2Processor().process(event(), bundle(lab)) is None
    assert await News2Processor().process(event(), bundle()) is None
    assert await News2Processor().process(event(), {"resourceType": "Patient"}) is None


async def test_readings_for_a_patient_not_in_the_bundle_are_not_answered() -> None:
    inbound = bundle(*full_set())
    inbound["entry"] = inbound["entry"][1:]  # the Patient left out
    assert await News2Processor().process(event(), inbound) is None


async def test_ids_are_deterministic_per_event() -> None:
    first = await News2Processor().process(event("evt-1"), bundle(*full_set()))
    again = await News2Processor().process(event("evt-1"), bundle(*full_set()))
    other = await News2Processor().process(event("evt-2"), bundle(*full_set()))
    assert first is not None and again is not None and other is not None
    assert first == again and first["timestamp"] == "2024-03-12T13:15:02.117Z"
    ids = [e["resource"]["id"] for e in first["entry"][1:]] + [first["id"]]
    other_ids = [e["resource"]["id"] for e in other["entry"][1:]] + [other["id"]]
    assert len(set(ids)) == 3 and not set(ids) & set(other_ids)
    assert [e["fullUrl"] for e in first["entry"][1:]] == [
        f"urn:uuid:{i}" for i in ids[:2]]


async def test_a_retried_event_gives_the_same_result() -> None:
    processor = News2Processor()
    first = await processor.process(event(), bundle(*full_set()))
    assert await processor.process(event(), bundle(*full_set())) == first


# -- merging readings across events --------------------------------------------------------

async def test_a_newer_reading_replaces_and_an_older_one_does_not() -> None:
    processor = News2Processor()
    await processor.process(event("e1"), bundle(*full_set()))
    faster = obs("hr-new", "8867-4", value=135, unit="/min", time=at(1))  # 3
    result = await processor.process(event("e2"), bundle(faster))
    score_obs = resource(result, "Observation")
    assert components(score_obs)[HR]["valueInteger"] == 3
    assert score_obs["valueInteger"] == 9
    assert {"reference": "Observation/hr-new"} in score_obs["derivedFrom"]
    assert {"reference": "Observation/hr"} not in score_obs["derivedFrom"]
    assert score_obs["effectiveDateTime"] == at(1)

    late = obs("hr-old", "8867-4", value=45, unit="/min", time=at(0.5))  # older: ignored
    result = await processor.process(event("e3"), bundle(late))
    score_obs = resource(result, "Observation")
    assert components(score_obs)[HR]["valueInteger"] == 3
    assert {"reference": "Observation/hr-old"} not in score_obs["derivedFrom"]
    latest = await processor.store.latest(PATIENT)
    assert latest["pulse"].observation_id == "hr-new"


async def test_within_one_bundle_the_newest_reading_of_a_parameter_wins() -> None:
    readings = [*full_set(), obs("hr-2", "8867-4", value=120, unit="/min", time=at(0.25))]
    result = await News2Processor().process(event(), bundle(*reversed(readings)))
    assert components(resource(result, "Observation"))[HR]["valueInteger"] == 2


async def test_stale_parameters_are_reported_and_not_scored() -> None:
    processor = News2Processor()
    await processor.process(event("e1"), bundle(*full_set()))
    exactly_4h = await processor.process(
        event("e2"), bundle(obs("rr-4h", "9279-1", value=16, unit="/min", time=at(4))))
    assert resource(exactly_4h, "Observation")["valueInteger"] == 4  # 6 - 2 for RR: fresh

    result = await processor.process(
        event("e3"), bundle(obs("rr-5h", "9279-1", value=16, unit="/min", time=at(5))))
    score_obs, risk = resource(result, "Observation"), resource(result, "RiskAssessment")
    assert "valueInteger" not in score_obs and score_obs["status"] == "preliminary"
    assert risk["status"] == "preliminary" and "prediction" not in risk
    absent = score_obs["dataAbsentReason"]
    assert absent["coding"][0]["code"] == "unknown"
    assert "stale (older than 4 h) SpO2, air or oxygen, systolic BP, pulse, consciousness," \
           " temperature" in absent["text"]
    by_code = components(score_obs)
    assert by_code[RR]["valueInteger"] == 0
    assert "stale" in by_code[TEMP]["dataAbsentReason"]["text"]
    assert score_obs["derivedFrom"] == [{"reference": "Observation/rr-5h"}]
    assert any(n["text"].startswith("No aggregate score") for n in risk["note"])


async def test_missing_parameters_are_reported_and_red_scores_stay_visible() -> None:
    readings = [obs("rr", "9279-1", value=30, unit="/min"),  # 3
                obs("hr", "8867-4", value=80, unit="/min")]
    result = await News2Processor().process(event(), bundle(*readings))
    score_obs = resource(result, "Observation")
    assert "valueInteger" not in score_obs
    assert "missing SpO2, air or oxygen, systolic BP, consciousness, temperature" in \
        score_obs["dataAbsentReason"]["text"]
    by_code = components(score_obs)
    assert by_code[RR]["valueInteger"] == 3 and by_code[HR]["valueInteger"] == 0
    assert by_code[SBP]["dataAbsentReason"]["text"] == "systolic BP: missing"
    assert len(by_code) == 7
    notes = [n["text"] for n in score_obs["note"]]
    assert "Red score (3) in: respiration rate" in notes


async def test_an_observation_entered_in_error_withdraws_its_reading() -> None:
    processor = News2Processor()
    await processor.process(event("e1"), bundle(*full_set()))
    retraction = obs("temp", "8310-5", value=38.4, unit="Cel", status="entered-in-error")
    result = await processor.process(event("e2"), bundle(retraction))
    score_obs = resource(result, "Observation")
    assert "valueInteger" not in score_obs
    assert components(score_obs)[TEMP]["dataAbsentReason"]["text"] == "temperature: missing"
    assert "temperature" not in await processor.store.latest(PATIENT)


# -- reading the Observations ------------------------------------------------------------

async def test_units_are_checked_and_fahrenheit_is_converted() -> None:
    readings = full_set()
    readings[6] = obs("temp", "8310-5", value=101.3, unit="[degF]")  # 38.5 degC: 1
    readings[4] = obs("hr", "8867-4", value=1.5, unit="Hz")           # not /min: unusable
    result = await News2Processor().process(event(), bundle(*readings))
    score_obs = resource(result, "Observation")
    by_code = components(score_obs)
    assert by_code[TEMP]["valueInteger"] == 1
    assert "dataAbsentReason" in by_code[HR]
    assert any("Not used: pulse: Observation/hr: unit 'Hz'" in n["text"]
               for n in score_obs["note"])


def test_a_bp_panel_component_gives_the_systolic_pressure() -> None:
    panel = obs("bp", "85354-9", component=[
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
         "valueQuantity": {"value": 98, "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
         "valueQuantity": {"value": 60, "code": "mm[Hg]"}}])
    found = find_vitals(bundle(panel))
    assert found.readings[PATIENT]["systolic-bp"] == Reading(98.0, T0, "bp")


@pytest.mark.parametrize(("value", "expected"), [
    ({"valueCodeableConcept": {"coding": [{"code": "V", "display": "Voice"}]}}, "V"),
    ({"valueCodeableConcept": {"text": "New confusion"}}, "C"),
    ({"valueString": "unresponsive"}, "U"),
    ({"valueCodeableConcept": {"coding": [{"code": "A"}], "text": "Pain"}}, None),  # two
    ({"valueCodeableConcept": {"text": "drowsy"}}, None),
])
def test_consciousness_values(value: dict[str, Any], expected: str | None) -> None:
    found = find_vitals(bundle(obs("c", "80288-4", **value)))
    if expected is None:
        assert PATIENT not in found.readings and len(found.problems[PATIENT]) == 1
    else:
        assert found.readings[PATIENT]["consciousness"].value == expected


@pytest.mark.parametrize(("observation", "on_oxygen"), [
    (obs("o", "3151-8", value=0, unit="L/min"), False),
    (obs("o", "3151-8", value=0.5, unit="L/min"), True),
    (obs("o", "3150-0", value=21, unit="%"), False),
    (obs("o", "3150-0", value=28, unit="%"), True),
    (obs("o", "on-oxygen", system=NEWS2_SYSTEM, valueBoolean=True), True),
    (obs("o", "on-oxygen", system=NEWS2_SYSTEM,
         valueCodeableConcept={"text": "Room air"}), False),
])
def test_air_or_oxygen_values(observation: dict[str, Any], on_oxygen: bool) -> None:
    assert find_vitals(bundle(observation)).readings[PATIENT]["air-or-oxygen"].value \
        is on_oxygen


async def test_the_scale_2_prescription_scores_spo2_on_scale_2() -> None:
    readings = full_set()
    readings[1] = obs("spo2", "59408-5", value=97, unit="%")  # on oxygen: scale 2 -> 3
    marker = obs("scale", "spo2-scale", system=NEWS2_SYSTEM, valueInteger=2,
                 time="2024-03-11T09:00:00-04:00")  # a day old: a prescription, not stale
    result = await News2Processor().process(event(), bundle(*readings, marker))
    score_obs = resource(result, "Observation")
    by_code = components(score_obs)
    assert SPO2_1 not in by_code and by_code[SPO2_2]["valueInteger"] == 3
    assert score_obs["valueInteger"] == 8
    assert "SpO2 scale 2 (prescribed)" in [n["text"] for n in score_obs["note"]]
    # without the prescription: scale 1, SpO2 97 scores 0
    plain = await News2Processor().process(event(), bundle(*readings))
    assert resource(plain, "Observation")["valueInteger"] == 5


@pytest.mark.parametrize("time", ["2024-03-12", "2024-03-12T09:00:00"])
def test_a_reading_without_time_of_day_and_offset_is_not_used(time: str) -> None:
    found = find_vitals(bundle(obs("rr", "9279-1", value=16, unit="/min", time=time)))
    assert PATIENT not in found.readings
    assert "time of day and an offset" in found.problems[PATIENT][0]


def test_comparators_and_cancelled_observations_are_not_readings() -> None:
    capped = obs("spo2", "59408-5", value=99, unit="%")
    capped["valueQuantity"]["comparator"] = ">"
    cancelled = obs("rr", "9279-1", value=16, unit="/min", status="cancelled")
    found = find_vitals(bundle(capped, cancelled))
    assert PATIENT not in found.readings
    assert "comparator" in found.problems[PATIENT][0] and len(found.problems[PATIENT]) == 1


# -- stores --------------------------------------------------------------------------------

async def test_the_memory_store_forgets_the_least_recently_updated_patient() -> None:
    store = MemoryVitalsStore(capacity=2)
    reading = {"pulse": Reading(80.0, T0, "hr")}
    for patient in ("a", "b", "c"):
        await store.update(patient, reading)
    assert await store.latest("a") == {}
    assert await store.latest("c") == reading
    assert isinstance(store, VitalsStore)


class ConditionFailed(Exception):
    """What botocore raises for a failed condition (a ClientError), as far as we read it."""

    response: ClassVar[dict[str, Any]] = {
        "Error": {"Code": "ConditionalCheckFailedException",
                  "Message": "The conditional request failed"}}


class Throttled(Exception):
    response: ClassVar[dict[str, Any]] = {
        "Error": {"Code": "ProvisionedThroughputExceededException"}}


class FakeDynamoDb:
    """The two calls of a boto3 DynamoDB client the store makes, with their conditions."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.puts = 0
        self.before_put: list[Callable[[FakeDynamoDb], None]] = []
        self.fail_with: Exception | None = None

    def get_item(self, *, TableName: str, Key: dict[str, Any],  # boto3's names
                 ConsistentRead: bool) -> dict[str, Any]:
        assert TableName == "news2-vitals" and ConsistentRead is True
        item = self.items.get(Key["patient_id"]["S"])
        return {"Item": copy.deepcopy(item)} if item is not None else {}

    def put_item(self, *, TableName: str, Item: dict[str, Any],
                 ConditionExpression: str,
                 ExpressionAttributeNames: dict[str, str] | None = None,
                 ExpressionAttributeValues: dict[str, Any] | None = None,
                 ) -> dict[str, Any]:
        self.puts += 1
        if self.fail_with is not None:
            raise self.fail_with
        if self.before_put:
            self.before_put.pop(0)(self)  # a concurrent invocation writes first
        key = Item["patient_id"]["S"]
        current = self.items.get(key)
        if ConditionExpression == "attribute_not_exists(patient_id)":
            allowed = current is None
        else:
            assert ConditionExpression == "#v = :read"
            assert ExpressionAttributeNames == {"#v": "version"}
            assert ExpressionAttributeValues is not None
            allowed = current is not None and \
                current["version"] == ExpressionAttributeValues[":read"]
        if not allowed:
            raise ConditionFailed("The conditional request failed")
        self.items[key] = copy.deepcopy(Item)
        return {}


def dynamo(client: FakeDynamoDb, **options: Any) -> DynamoDbVitalsStore:
    return DynamoDbVitalsStore("news2-vitals", client=client, clock=lambda: 1_700_000_000.0,
                               **options)


async def test_dynamodb_store_writes_one_versioned_item_per_patient_with_a_ttl() -> None:
    client = FakeDynamoDb()
    store = dynamo(client)
    first = {"pulse": Reading(80.0, T0, "hr"), "consciousness": Reading("A", T0, "c")}
    assert await store.update(PATIENT, first) == first
    item = client.items[PATIENT]
    assert item["version"] == {"N": "1"}
    assert item["expires_at"] == {"N": str(1_700_000_000 + 24 * 3600)}
    assert await store.latest(PATIENT) == first
    newer = {"pulse": Reading(95.0, at(1), "hr2")}
    older = {"consciousness": Reading("V", at(-1), "c0")}
    merged = await store.update(PATIENT, {**newer, **older})
    assert merged == {"pulse": newer["pulse"], "consciousness": first["consciousness"]}
    assert client.items[PATIENT]["version"] == {"N": "2"}
    assert await store.latest("nobody") == {}


async def test_dynamodb_store_retries_a_conditional_write_it_lost() -> None:
    client = FakeDynamoDb()
    store = dynamo(client)
    await store.update(PATIENT, {"pulse": Reading(80.0, T0, "hr")})
    rival = dynamo(client)

    def concurrent_write(fake: FakeDynamoDb) -> None:  # another invocation, in between
        fake.before_put.clear()
        current = fake.items[PATIENT]
        readings = {"temperature": Reading(37.0, T0, "t").to_json(),
                    "pulse": Reading(80.0, T0, "hr").to_json()}
        fake.items[PATIENT] = {**current, "version": {"N": "2"},
                               "readings": {"S": json.dumps(readings)}}

    client.before_put.append(concurrent_write)
    merged = await store.update(PATIENT, {"systolic-bp": Reading(120.0, T0, "sbp")})
    assert client.puts == 3  # the first update, the lost write, the retried one
    assert set(merged) == {"pulse", "temperature", "systolic-bp"}  # nothing lost
    assert client.items[PATIENT]["version"] == {"N": "3"}
    assert set(await rival.latest(PATIENT)) == {"pulse", "temperature", "systolic-bp"}


async def test_dynamodb_store_gives_up_with_a_retriable_error() -> None:
    client = FakeDynamoDb()
    store = dynamo(client, attempts=3)
    client.fail_with = ConditionFailed("The conditional request failed")
    with pytest.raises(VitalsStoreError, match="3 concurrent updates") as err:
        await store.update(PATIENT, {"pulse": Reading(80.0, T0, "hr")})
    assert err.value.retriable and client.puts == 3
    client.fail_with = Throttled("slow down")  # other errors are not swallowed
    with pytest.raises(Throttled):
        await store.update(PATIENT, {"pulse": Reading(80.0, T0, "hr")})


async def test_the_processor_runs_on_the_dynamodb_store() -> None:
    client = FakeDynamoDb()
    processor = News2Processor(dynamo(client))
    await processor.process(event("e1"), bundle(*full_set()[:4]))
    result = await processor.process(event("e2"), bundle(*full_set()[4:]))
    assert resource(result, "Observation")["valueInteger"] == 6


def test_dynamodb_store_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 raises ImportError
    with pytest.raises(VitalsStoreError, match=r"hl7gw\[aws\]") as err:
        DynamoDbVitalsStore("news2-vitals")
    assert not err.value.retriable


# -- HL7GW_PROCESSOR=news2 -----------------------------------------------------------------

class FakeBoto3:
    def __init__(self) -> None:
        self.clients: list[str] = []

    def client(self, service: str) -> FakeDynamoDb:
        self.clients.append(service)
        return FakeDynamoDb()


def test_select_news2_with_the_memory_store_by_default() -> None:
    processor = processor_from_env({"HL7GW_PROCESSOR": "news2"})
    assert isinstance(processor, News2Processor)
    assert isinstance(processor.store, MemoryVitalsStore)
    explicit = processor_from_env({"HL7GW_PROCESSOR": "news2", "HL7GW_NEWS2_STORE": "memory"})
    assert isinstance(explicit, News2Processor)


def test_select_news2_on_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"HL7GW_PROCESSOR": "news2", "HL7GW_NEWS2_STORE": "dynamodb"}
    with pytest.raises(ValueError, match="HL7GW_NEWS2_TABLE must be set"):
        processor_from_env(env)
    boto3 = FakeBoto3()
    monkeypatch.setitem(sys.modules, "boto3", boto3)
    processor = processor_from_env({**env, "HL7GW_NEWS2_TABLE": "news2-vitals"})
    assert isinstance(processor, News2Processor)
    assert isinstance(processor.store, DynamoDbVitalsStore)
    assert boto3.clients == ["dynamodb"]


def test_select_refuses_an_unknown_news2_store() -> None:
    with pytest.raises(ValueError, match="HL7GW_NEWS2_STORE='redis': choose one of memory,"
                                         " dynamodb"):
        processor_from_env({"HL7GW_PROCESSOR": "news2", "HL7GW_NEWS2_STORE": "redis"})


def test_the_sample_profile_maps_every_ward_code_to_loinc() -> None:
    prepared = prepare((SAMPLES / "oru_r01_vitals.hl7").read_bytes(),
                       profiles=ProfileSet.load(PROFILES))
    assert prepared.profile is not None and prepared.profile.name == "wardvitals"
    inbound = convert(prepared).bundle
    codes = [e["resource"]["code"]["coding"][0] for e in inbound["entry"]
             if e["resource"]["resourceType"] == "Observation"]
    assert [(c["system"], c["code"]) for c in codes] == [
        (LOINC, "9279-1"), (LOINC, "59408-5"), (LOINC, "3151-8"), (LOINC, "8480-6"),
        (LOINC, "8867-4"), (LOINC, "67775-7"), (LOINC, "8310-5")]
