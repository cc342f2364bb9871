"""Encryption keys for the spool and the intake journal at rest (docs/encryption.md).

Every received HL7 message is PHI; the spool keeps it on local disk. Records are sealed
with AES-256-GCM under a keyring (:mod:`gateway.keys.keyring`) whose keys come from a
provider (:mod:`gateway.keys.providers`): a 0600 key file, an environment variable, or
data keys wrapped by AWS KMS. ``hl7gw keys init|rotate|list`` manage them
(:mod:`gateway.keys.manage`).

This package's ``__init__`` imports nothing: ``gateway.config`` imports
:mod:`gateway.keys.settings`, and loading a config should not load the cipher library.
"""
