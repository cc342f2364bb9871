"""Where the NEWS2 processor keeps each patient's latest readings between events.

A ward monitor sends its parameters in several messages (a blood pressure now, a
temperature later), so scoring needs the latest reading of each parameter per patient.
A :class:`VitalsStore` keeps them, keyed by the Patient resource id of the gateway's
Bundles (an opaque id, never an MRN):

- :class:`MemoryVitalsStore`: in the process (tests, demos, one long-running container
  that accepts losing the readings on a restart);
- :class:`DynamoDbVitalsStore`: AWS DynamoDB, for serverless functions, where concurrent
  invocations for the same patient may run at once and no memory survives. One item per
  patient; every write is conditional on the version it read, so two invocations never
  lose each other's readings (the loser reads again, merges again and writes again).

``update`` merges (``news2_vitals.merge``): a reading as new or newer than the stored one
replaces it, an older one never does, so events may arrive in any order.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import orjson

from connectors.cloud.news2_vitals import Reading, merge
from connectors.errors import ConnectorError

AWS_EXTRA = "pip install 'hl7gw[aws]' (or pip install boto3)"


class VitalsStoreError(ConnectorError):
    """The vitals store could not keep the readings; the event should be retried."""

    retriable = True


@runtime_checkable
class VitalsStore(Protocol):
    """Each patient's latest reading per NEWS2 parameter (and the SpO2 scale)."""

    async def latest(self, patient_id: str) -> dict[str, Reading]:
        """The stored readings by slot (``news2.Parameter`` value or ``spo2-scale``)."""

    async def update(self, patient_id: str, readings: Mapping[str, Reading],
                     retracted: Collection[str] = ()) -> dict[str, Reading]:
        """Merge newer ``readings`` in (after dropping those of ``retracted``
        Observation ids) and return what is stored now."""


class MemoryVitalsStore:
    """In-process store for the latest ``capacity`` patients (least recently updated go)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._patients: OrderedDict[str, dict[str, Reading]] = OrderedDict()

    async def latest(self, patient_id: str) -> dict[str, Reading]:
        """A copy of the patient's readings (empty when none)."""
        return dict(self._patients.get(patient_id, {}))

    async def update(self, patient_id: str, readings: Mapping[str, Reading],
                     retracted: Collection[str] = ()) -> dict[str, Reading]:
        """Merge and keep; no await in between, so concurrent tasks cannot interleave."""
        merged = merge(self._patients.get(patient_id, {}), readings, retracted)
        self._patients[patient_id] = merged
        self._patients.move_to_end(patient_id)
        while len(self._patients) > self._capacity:
            self._patients.popitem(last=False)
        return dict(merged)


class DynamoDbVitalsStore:
    """One DynamoDB item per patient, written with optimistic concurrency.

    Item: ``patient_id`` (S, the partition key), ``readings`` (S, JSON of the readings),
    ``version`` (N, +1 per write), ``expires_at`` (N, epoch seconds; enable the table's
    TTL on it so patients no longer monitored are deleted). ``client`` is a boto3
    DynamoDB client (``boto3.client("dynamodb")``, made here when not given); its calls
    run in a worker thread so the event loop is not blocked.
    """

    def __init__(self, table: str, *, client: Any | None = None,
                 ttl: timedelta = timedelta(hours=24), attempts: int = 5,
                 clock: Callable[[], float] = time.time) -> None:
        if not table:
            raise ValueError("the DynamoDB vitals store needs a table name")
        self._table = table
        self._client = client if client is not None else _boto3_client()
        self._ttl_s = int(ttl.total_seconds())
        self._attempts = attempts
        self._clock = clock

    async def latest(self, patient_id: str) -> dict[str, Reading]:
        """The stored readings (a strongly consistent read)."""
        item = await asyncio.to_thread(self._get, patient_id)
        return _readings(item) if item is not None else {}

    async def update(self, patient_id: str, readings: Mapping[str, Reading],
                     retracted: Collection[str] = ()) -> dict[str, Reading]:
        """Read, merge, write if the version is unchanged; on a conflict, again.

        Raises :class:`VitalsStoreError` (retriable) when ``attempts`` writes in a row
        lost to concurrent ones.
        """
        for _ in range(self._attempts):
            item = await asyncio.to_thread(self._get, patient_id)
            current = _readings(item) if item is not None else {}
            version = int(item["version"]["N"]) if item is not None else None
            merged = merge(current, readings, retracted)
            if await asyncio.to_thread(self._put, patient_id, merged, version):
                return merged
        raise VitalsStoreError(
            f"DynamoDB table {self._table}: {self._attempts} concurrent updates of one"
            " patient in a row; the event will be retried")

    def _get(self, patient_id: str) -> dict[str, Any] | None:
        answer = self._client.get_item(TableName=self._table,
                                       Key={"patient_id": {"S": patient_id}},
                                       ConsistentRead=True)
        item = answer.get("Item")
        return item if isinstance(item, dict) else None

    def _put(self, patient_id: str, readings: Mapping[str, Reading],
             version: int | None) -> bool:
        """Write if nobody wrote since ``version`` was read; False when somebody did."""
        body = orjson.dumps({slot: r.to_json() for slot, r in sorted(readings.items())})
        item = {"patient_id": {"S": patient_id}, "readings": {"S": body.decode()},
                "version": {"N": str((version or 0) + 1)},
                "expires_at": {"N": str(int(self._clock()) + self._ttl_s)}}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(patient_id)"} if version is None
            else {"ConditionExpression": "#v = :read",
                  "ExpressionAttributeNames": {"#v": "version"},
                  "ExpressionAttributeValues": {":read": {"N": str(version)}}})
        try:
            self._client.put_item(TableName=self._table, Item=item, **condition)
        except Exception as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _readings(item: Mapping[str, Any]) -> dict[str, Reading]:
    data = orjson.loads(item["readings"]["S"])
    return {str(slot): Reading.from_json(value) for slot, value in data.items()}


def _error_code(exc: BaseException) -> str | None:
    """botocore's ``ClientError.response["Error"]["Code"]``, read without importing it."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _boto3_client() -> Any:
    try:
        boto3 = importlib.import_module("boto3")
    except ImportError:
        raise VitalsStoreError(
            f"HL7GW_NEWS2_STORE=dynamodb needs boto3, which is not installed: {AWS_EXTRA}",
            retriable=False) from None
    return boto3.client("dynamodb")
