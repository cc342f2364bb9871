"""Settings for the MLLP connection layer: TLS and who may connect.

These models are nested in ``gateway.config.ListenerSettings``; a ``ValueError`` raised
here comes out of the config loader as ``file:line: field: message``.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _existing_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


def _parse_cidrs(values: list[str]) -> list[str]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(str(value).strip(), strict=True)))
        except ValueError as exc:
            raise ValueError(f"not a CIDR network: {value!r} ({exc})") from None
    return out


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
CidrList = Annotated[list[str], AfterValidator(_parse_cidrs)]
"""CIDR networks (``10.0.0.0/8``, ``127.0.0.1`` = ``/32``, IPv6 too); empty = everyone."""


class TlsSettings(BaseModel):
    """Server certificate for a listener, and optionally the CA that client certs must chain to.

    With ``cafile`` and ``require_client_cert`` the listener does mutual TLS: a client
    without a certificate signed by that CA fails the handshake.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    certfile: ExistingFile
    keyfile: ExistingFile
    cafile: ExistingFile | None = None
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _loadable(self) -> TlsSettings:
        if self.require_client_cert and self.cafile is None:
            raise ValueError("require_client_cert needs cafile (the CA client certs chain to)")
        server_context(self)  # a key that does not match the certificate fails here, at load
        return self


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """An SSL context for a listener: TLS 1.2+, client certs checked when configured."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.certfile, tls.keyfile)
        if tls.cafile is not None:
            context.load_verify_locations(cafile=tls.cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot load certificate, key or CA: {exc}") from None
    if tls.require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.cafile is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def client_context(*, cafile: Path | None = None, certfile: Path | None = None,
                   keyfile: Path | None = None, insecure: bool = False) -> ssl.SSLContext:
    """An SSL context for a sender: the server checked against ``cafile`` (else the system
    CAs) unless ``insecure``; a client certificate when ``certfile`` is given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    return context


def peer_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The peer's IP, with an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) unwrapped."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def allowed(address: str, networks: list[IpNetwork]) -> bool:
    """True when ``networks`` is empty or holds the peer's IP."""
    if not networks:
        return True
    try:
        ip = peer_ip(address)
    except ValueError:
        return False  # not an IP peer (e.g. a Unix socket): refuse when a list is set
    return any(ip in net for net in networks)
