"""The Lambda handler with real-shaped events: API Gateway, function URL, ALB and Kafka."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

import connectors.cloud
from connectors.cloud import MemoryStore, decode_record, is_kafka_event
from connectors.events import Event

BUNDLE = {"resourceType": "Bundle", "type": "transaction",
          "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}]}


def cloud_event(event_id: str, key: bytes = b"p1") -> Event:
    return Event(id=event_id, source="urn:hl7gw:test", type="org.hl7gw.adt.a01",
                 subject="Patient/p1", time="2024-05-01T10:00:00Z", key=key,
                 data=orjson.dumps(BUNDLE))


class Context:
    """The parts of a Lambda context object the handler may touch."""

    function_name = "hl7gw-function"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


def http_api_v2(method: str, path: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"", domain: str = "abc123.execute-api.us-east-1.amazonaws.com",
                route_key: str | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event; function URLs use the same shape."""
    return {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": domain, "user-agent": "curl/8.5.0", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012", "apiId": domain.split(".")[0],
            "domainName": domain, "domainPrefix": domain.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.10", "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": route_key or f"{method} {path}",
            "stage": "$default", "time": "01/May/2024:10:00:00 +0000",
            "timeEpoch": 1714557600000,
        },
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def rest_api_v1(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """An API Gateway REST API (payload 1.0) proxy event."""
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": method,
                           "path": f"/prod{path}", "stage": "prod",
                           "accountId": "123456789012", "requestId": "c6af9ac6",
                           "identity": {"sourceIp": "192.0.2.10"}},
        "body": body.decode(), "isBase64Encoded": False,
    }


def alb(method: str, path: str) -> dict[str, Any]:
    """An Application Load Balancer target event."""
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:"
                                   "123456789012:targetgroup/fn/6d0ecf831eec9f09"}},
        "httpMethod": method, "path": path, "queryStringParameters": {},
        "headers": {"host": "fn.example", "user-agent": "ELB-HealthChecker/2.0"},
        "body": "", "isBase64Encoded": False,
    }


def kafka_record(topic: str, partition: int, offset: int, e: Event | None,
                 value: bytes | None = None) -> dict[str, Any]:
    """One record as Lambda's Kafka event source sends it (headers as signed Java bytes)."""
    headers = [] if e is None else [
        {name: [b - 256 if b > 127 else b for b in raw]} for name, raw in e.kafka_headers()]
    data = value if value is not None else (e.data if e else b"")
    return {"topic": topic, "partition": partition, "offset": offset,
            "timestamp": 1714557600000, "timestampType": "CREATE_TIME",
            "key": base64.b64encode(e.key or b"").decode() if e else None,
            "value": base64.b64encode(data).decode(), "headers": headers}


def msk_event(records: dict[str, list[dict[str, Any]]],
              source: str = "aws:kafka") -> dict[str, Any]:
    """An Amazon MSK (or self-managed Kafka) event-source invocation."""
    event: dict[str, Any] = {
        "eventSource": source,
        "bootstrapServers": "b-1.demo.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
        "records": records,
    }
    if source == "aws:kafka":
        event["eventSourceArn"] = ("arn:aws:kafka:us-east-1:123456789012:cluster/demo/"
                                   "751d2973-a626-431c-9d4e-d7975eb44dd7-2")
    return event


def test_http_api_v2_post_event(handler: Any, store: MemoryStore) -> None:
    e = cloud_event("evt-gw")
    response = handler(http_api_v2("POST", "/events", headers=e.http_headers(), body=e.data),
                       Context())
    assert response["statusCode"] == 202
    assert json.loads(response["body"]) == {"status": "accepted", "id": "evt-gw"}
    assert [s["id"] for s in store.list_events()] == ["evt-gw"]
    again = handler(http_api_v2("POST", "/events", headers=e.http_headers(), body=e.data),
                    Context())
    assert again["statusCode"] == 200


def test_function_url_get(handler: Any) -> None:
    event = http_api_v2("GET", "/healthz", route_key="$default",
                        domain="a1b2c3d4e5.lambda-url.us-east-1.on.aws")
    response = handler(event, Context())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


def test_http_api_v2_bad_request(handler: Any) -> None:
    response = handler(http_api_v2("POST", "/events", body=b"{}",
                                   headers={"content-type": "application/fhir+json"}),
                       Context())
    assert response["statusCode"] == 400
    assert "ce-specversion" in json.loads(response["body"])["detail"]


def test_rest_api_v1_post_event(handler: Any, store: MemoryStore) -> None:
    e = cloud_event("evt-rest")
    response = handler(rest_api_v1("POST", "/events", e.http_headers(), e.data), Context())
    assert response["statusCode"] == 202
    assert store.get_event("evt-rest") is not None


def test_alb_health_check(handler: Any) -> None:
    response = handler(alb("GET", "/healthz"), Context())
    assert response["statusCode"] == 200


def test_module_level_handler_serves_http() -> None:
    response = connectors.cloud.handler(http_api_v2("GET", "/healthz"), Context())
    assert response["statusCode"] == 200


@pytest.mark.parametrize("source", ["aws:kafka", "SelfManagedKafka", "aws:SelfManagedKafka"])
def test_kafka_batch_all_good(handler: Any, store: MemoryStore, source: str) -> None:
    event = msk_event({
        "hl7.fhir-0": [kafka_record("hl7.fhir", 0, 15, cloud_event("a1")),
                       kafka_record("hl7.fhir", 0, 16, cloud_event("a2"))],
        "hl7.fhir-1": [kafka_record("hl7.fhir", 1, 7, cloud_event("b1", key=b"p2"))],
    }, source)
    assert is_kafka_event(event)
    assert handler(event, Context()) == {"batchItemFailures": []}
    assert [s["id"] for s in store.list_events()] == ["a1", "a2", "b1"]
    assert handler(event, Context()) == {"batchItemFailures": []}  # replay: duplicates
    assert len(store.list_events()) == 3


def test_kafka_batch_reports_failure_and_the_rest_of_its_partition(
        handler: Any, store: MemoryStore) -> None:
    event = msk_event({
        "hl7.fhir-0": [kafka_record("hl7.fhir", 0, 15, cloud_event("a1")),
                       kafka_record("hl7.fhir", 0, 16, cloud_event("a2"), value=b"not json"),
                       kafka_record("hl7.fhir", 0, 17, cloud_event("a3"))],
        "hl7.fhir-1": [kafka_record("hl7.fhir", 1, 7, None, value=b"{}"),  # no ce_ headers
                       kafka_record("hl7.fhir", 1, 8, cloud_event("b2"))],
        "hl7.fhir-2": [kafka_record("hl7.fhir", 2, 3, cloud_event("c1"))],
    })
    response = handler(event, Context())
    assert response == {"batchItemFailures": [
        {"itemIdentifier": {"topic-partition": "hl7.fhir-0", "offset": 16}},
        {"itemIdentifier": {"topic-partition": "hl7.fhir-0", "offset": 17}},
        {"itemIdentifier": {"topic-partition": "hl7.fhir-1", "offset": 7}},
        {"itemIdentifier": {"topic-partition": "hl7.fhir-1", "offset": 8}},
    ]}
    assert [s["id"] for s in store.list_events()] == ["a1", "c1"]


def test_decode_record_masks_signed_header_bytes() -> None:
    e = Event(id="id-é", source="urn:s", type="t", subject="Patient/ü", time=None, key=b"k",
              data=b"{}")
    assert decode_record(kafka_record("t", 0, 0, e)) == e


def test_non_kafka_events_are_not_kafka() -> None:
    assert not is_kafka_event(http_api_v2("GET", "/healthz"))
    assert not is_kafka_event({"eventSource": "aws:sqs", "Records": []})
