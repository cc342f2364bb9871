"""Errors raised by the gateway package, rooted at :class:`hl7gw.errors.Hl7gwError`.

The tree (docs/errors.md has the whole project's)::

    GatewayError
    ├── ConfigError        a config file is invalid (file:line: field: message)
    ├── SpoolError         the spool cannot commit or read
    ├── SpoolFull
    │   └── SpoolAtCapacity   also a MessageError: AE/CE 207 past spool.max_pending
    ├── MissingTool        java or mvn missing for the local broker
    ├── BrokerUnavailable  the local broker could not start
    ├── ListenError        a port to listen on is taken or not on this host
    └── EncryptionError    spool keys cannot be loaded or made, or a record does not decrypt
"""

from __future__ import annotations

from hl7gw.errors import Hl7gwError, MessageError


class GatewayError(Hl7gwError):
    """Root of the errors raised on purpose by the gateway package."""


class MissingTool(GatewayError):
    """A program the gateway needs (``java``, ``mvn``) is not installed or not on PATH."""


class BrokerUnavailable(GatewayError):
    """The local Kafka broker could not be fetched, formatted, started or reached."""


class SpoolError(GatewayError):
    """The spool could not commit or read; intake answers with a NAK and keeps nothing half-done."""


class ConfigError(GatewayError):
    """A configuration file is invalid; the message names the file, the line and the field."""


class SpoolFull(GatewayError):
    """The spool reached its configured bound; intake stops ACKing until it drains."""


class SpoolAtCapacity(SpoolFull, MessageError):
    """The spool holds ``spool.max_pending`` unpublished rows: refuse (AE/CE) until it drains.

    A refusal the sender can act on (resend later) beats an ACK for a message we cannot keep.
    """

    ack_code = "AE"
    err_code = "207"


class ListenError(GatewayError):
    """A listening socket could not be opened: the port is taken, the address is not on
    this host, or the port needs privileges. The message names the address and the fix."""

    @classmethod
    def bind_failed(cls, what: str, host: str, port: int, exc: OSError,
                    setting: str) -> ListenError:
        """``cannot listen for MLLP on 127.0.0.1:2575: port in use ...`` from a bind error."""
        import errno

        reasons = {
            errno.EADDRINUSE: "the port is already in use (another gateway, or another "
                              f"program?): stop it, or choose another port with {setting}",
            errno.EADDRNOTAVAIL: f"{host} is not an address of this host: fix the host "
                                 "setting (0.0.0.0 listens on every address)",
            errno.EACCES: f"permission denied (ports below 1024 need privileges): choose "
                          f"another port with {setting}",
        }
        reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
        return cls(f"cannot listen for {what} on {host}:{port}: {reason}")


class EncryptionError(GatewayError):
    """The spool's encryption keys cannot be loaded, made or used.

    Raised when the key file, the ``HL7GW_SPOOL_KEYS`` variable or AWS KMS cannot give a
    usable keyring (the message says what to run or fix), and when a record does not
    decrypt: its key is not in the ring, or its tag fails (wrong key, tampered bytes, or
    the wrong record id). Messages name files and key ids, never key material or data.
    """
