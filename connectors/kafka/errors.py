"""The one boundary where aiokafka's errors become :class:`PublishError`.

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

import enum

import aiokafka.errors as kafka_errors

from connectors.errors import PublishError


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
            cls = getattr(kafka_errors, name, None)
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


def publish_error(exc: BaseException, topic: str) -> PublishError:
    """Translate an aiokafka error raised while sending to ``topic``."""
    decision = decide(exc)
    name = type(exc).__name__
    return PublishError(f"Kafka did not acknowledge a record for topic {topic!r}: {exc}",
                        retriable=decision is not Decision.FAIL, cause=name)
