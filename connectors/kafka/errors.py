"""The one boundary where aiokafka's errors become the connectors' errors.

Every call into aiokafka runs inside :func:`kafka_errors` (as httpx runs httpcore inside
``map_httpcore_exceptions``): what leaves it is a :class:`KafkaPublishError` (sends) or a
:class:`KafkaClientError` (consumer, metadata) whose policy is data: ``retriable`` (the
same call may succeed later), ``client_broken`` (replace the producer first) and ``cause``
(the aiokafka class name, for logs and metrics). Callers read those attributes; nobody
outside this module matches aiokafka classes.

Every aiokafka error class has an explicit decision below; a test fails when an aiokafka
upgrade adds a class without one, so nobody inherits a retry policy by accident.

- ``RETRY``: transient; the same record can be sent again on the same producer.
- ``RECREATE``: the producer's own state is broken (idempotence sequence, epoch, a dead
  sender task); the producer is replaced, then the record can be sent again. aiokafka can
  wedge an idempotent producer on ``OutOfOrderSequenceNumber`` after a broker blip.
- ``FAIL``: sending the same record with the same configuration will fail again (too
  large, not authorised, misconfigured). Classes only a consumer or admin client raises
  are listed here too: if one ever reaches a send, it is not a transient condition.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator

import aiokafka.errors as aiokafka_errors

from connectors.errors import ConnectorError, PublishError


class Decision(enum.Enum):
    """What to do after a failed send."""

    RETRY = "retry"
    RECREATE = "recreate"
    FAIL = "fail"


_RETRY = frozenset({
    "BrokerNotAvailableError", "Cancelled", "ConcurrentTransactions",
    "CoordinatorLoadInProgressError", "CoordinatorNotAvailableError", "CorrelationIdError",
    "CorruptRecordException", "FetchSessionIdNotFound", "GroupCoordinatorNotAvailableError",
    "GroupLoadInProgressError", "InvalidFetchSessionEpoch", "KafkaConnectionError",
    "KafkaProtocolError", "KafkaStorageError", "KafkaTimeoutError", "KafkaUnavailableError",
    "LeaderNotAvailableError", "ListenerNotFound", "MetadataEmptyBrokerList",
    "NoBrokersAvailable", "NodeNotReadyError", "NotControllerError", "NotCoordinatorError",
    "NotCoordinatorForGroupError", "NotEnoughReplicasAfterAppendError",
    "NotEnoughReplicasError", "NotLeaderForPartitionError", "OperationNotAttempted",
    "QuotaViolationError", "ReassignmentInProgress", "RebalanceInProgressError",
    "ReplicaNotAvailableError", "RequestTimedOutError", "StaleControllerEpochError",
    "StaleLeaderEpochCodeError", "StaleMetadata", "TooManyInFlightRequests",
    "UnknownTopicOrPartitionError",
})

_RECREATE = frozenset({
    "DuplicateSequenceNumber", "IllegalStateError", "InvalidProducerEpoch",
    "InvalidProducerIdMapping", "InvalidTxnState", "KafkaError", "OutOfOrderSequenceNumber",
    "ProducerClosed", "ProducerFenced", "TransactionCoordinatorFenced", "UnknownProducerId",
})

_FAIL = frozenset({
    # authentication and authorisation
    "AuthenticationFailedError", "AuthenticationMethodNotSupported",
    "ClusterAuthorizationFailedError", "DelegationTokenAuthDisabled",
    "DelegationTokenAuthorizationFailed", "DelegationTokenExpired", "DelegationTokenNotFound",
    "DelegationTokenOwnerMismatch", "DelegationTokenRequestNotAllowed",
    "GroupAuthorizationFailedError", "IllegalSaslStateError", "InvalidPrincipalType",
    "SaslAuthenticationFailed", "SecurityDisabled", "TopicAuthorizationFailedError",
    "TransactionalIdAuthorizationFailed", "UnsupportedSaslMechanismError",
    # the record or the configuration is wrong
    "IllegalArgumentError", "IncompatibleBrokerVersion", "InvalidConfigurationError",
    "InvalidMessageError", "InvalidRequestError", "InvalidRequiredAcksError",
    "InvalidTimestampError", "InvalidTopicError", "InvalidTransactionTimeout",
    "KafkaConfigurationError", "MessageSizeTooLargeError", "PolicyViolationError",
    "RecordListTooLargeError", "RecordTooLargeError", "UnknownError",
    "UnrecognizedBrokerVersion", "UnsupportedCodecError", "UnsupportedForMessageFormatError",
    "UnsupportedVersionError",
    # raised by consumers and admin clients, never expected from a send
    "BrokerResponseError", "CommitFailedError", "ConsumerStoppedError", "GroupIdNotFound",
    "IllegalGenerationError", "IllegalOperation", "InconsistentGroupProtocolError",
    "InvalidCommitOffsetSizeError", "InvalidFetchRequestError", "InvalidGroupIdError",
    "InvalidPartitionsError", "InvalidReplicationAssignmentError",
    "InvalidReplicationFactorError", "InvalidSessionTimeoutError", "LogDirNotFound",
    "MemberIdRequired", "NoError", "NoOffsetForPartitionError", "NonEmptyGroup",
    "OffsetMetadataTooLargeError", "OffsetOutOfRangeError", "TopicAlreadyExistsError",
    "UnknownMemberIdError",
})


def _table() -> dict[type[BaseException], Decision]:
    table: dict[type[BaseException], Decision] = {}
    for names, decision in ((_FAIL, Decision.FAIL), (_RETRY, Decision.RETRY),
                            (_RECREATE, Decision.RECREATE)):
        for name in names:
            cls = getattr(aiokafka_errors, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                table[cls] = decision
    return table


DECISIONS: dict[type[BaseException], Decision] = _table()


def decide(exc: BaseException) -> Decision:
    """The decision for an aiokafka error: its own class's, else its nearest ancestor's."""
    for cls in type(exc).__mro__:
        if cls in DECISIONS:
            return DECISIONS[cls]
    return Decision.RETRY if getattr(exc, "retriable", False) else Decision.FAIL


def is_kafka_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from aiokafka (and so belongs to this boundary)."""
    return type(exc).__module__.startswith("aiokafka")


class KafkaClientError(ConnectorError):
    """An aiokafka call failed; ``cause`` names the aiokafka class, the rest is policy."""

    def __init__(self, message: str, *, retriable: bool, cause: str,
                 client_broken: bool = False) -> None:
        super().__init__(message, retriable=retriable)
        self.cause = cause
        self.client_broken = client_broken  # the client must be replaced before a retry


class KafkaPublishError(PublishError):
    """Kafka did not take a record; ``client_broken``: replace the producer, then retry."""

    def __init__(self, message: str, *, retriable: bool, cause: str,
                 client_broken: bool = False) -> None:
        super().__init__(message, retriable=retriable, cause=cause)
        self.client_broken = client_broken


def translate(exc: BaseException, doing: str,
              kind: type[KafkaClientError] | type[KafkaPublishError] = KafkaPublishError,
              ) -> KafkaClientError | KafkaPublishError:
    """The connectors' error for an aiokafka error raised while ``doing`` something."""
    decision = decide(exc)
    detail = _describe(exc)
    return kind(f"Kafka failed {doing}: {detail}", retriable=decision is not Decision.FAIL,
                cause=type(exc).__name__, client_broken=decision is Decision.RECREATE)


def _describe(exc: BaseException) -> str:
    """``str(exc)``, or the class name: some aiokafka errors fail to print (no ``errno``)."""
    try:
        return str(exc) or type(exc).__name__
    except Exception:  # noqa: BLE001 - a message is not worth losing the error for
        return type(exc).__name__


@contextlib.contextmanager
def kafka_errors(doing: str,
                 kind: type[KafkaClientError] | type[KafkaPublishError] = KafkaPublishError,
                 ) -> Iterator[None]:
    """Run a block that calls aiokafka; its errors leave translated to ``kind``.

    ``doing`` completes "Kafka failed ..." (e.g. ``"sending to 'hl7.fhir'"``). Errors that
    are not aiokafka's (bugs, cancellation) pass through untouched.
    """
    try:
        yield
    except Exception as exc:
        if not is_kafka_error(exc):
            raise
        raise translate(exc, doing, kind) from exc

