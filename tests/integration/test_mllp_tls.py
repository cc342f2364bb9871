"""TLS and mutual TLS on a listener, with certificates made at test time."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.ack import ack_code_of
from gateway.cli import main as cli
from gateway.config import GatewaySettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.mllp.settings import TlsSettings, client_context
from gateway.service import GatewayService
from tests.integration.mllp_helpers import (
    Listening,
    closed_by_listener,
    listening,
    peer,
    roundtrip,
    wait_for_metric,
)
from tests.support import SAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
REFUSED = "hl7gw_connections_refused_total"


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA with a server and a client cert, and a second CA with its own client."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
           server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate | None = None,
           key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


def make_pki(folder: Path) -> Pki:
    """Two CAs, a server cert for 127.0.0.1/localhost, and one client cert from each CA."""
    files: dict[str, Path] = {}
    for prefix in ("", "other_"):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _issue(f"{prefix}test ca", ca_key, _name(f"{prefix}test ca"), ca_key, ca=True)
        files[f"{prefix}ca"] = _write(folder / f"{prefix}ca.pem", ca_cert)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(f"{prefix}sender", key, ca_cert.subject, ca_key)
        files[f"{prefix}client_cert"] = _write(folder / f"{prefix}client.pem", cert)
        files[f"{prefix}client_key"] = _write(folder / f"{prefix}client.key", key=key)
        if not prefix:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _issue("localhost", key, ca_cert.subject, ca_key, server=True)
            files["server_cert"] = _write(folder / "server.pem", cert)
            files["server_key"] = _write(folder / "server.key", key=key)
    return Pki(**files)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_tls(pki: Pki, *, mutual: bool = False) -> TlsSettings:
    return TlsSettings(certfile=pki.server_cert, keyfile=pki.server_key,
                       cafile=pki.ca if mutual else None, require_client_cert=mutual)


async def still_serves_tls(running: Listening, context: ssl.SSLContext) -> None:
    ack = await roundtrip(running.port, b"MSH|GOOD", context)
    assert ack_code_of(ack.decode()) == "AA"


async def test_tls_happy_path(pki: Pki) -> None:
    async with listening(tls=server_tls(pki)) as running:
        ack = await roundtrip(running.port, b"MSH|over tls", client_context(cafile=pki.ca))
        assert ack_code_of(ack.decode()) == "AA"
        assert running.seen == [b"MSH|over tls"]


async def test_mutual_tls_with_a_good_client_certificate(pki: Pki) -> None:
    context = client_context(cafile=pki.ca, certfile=pki.client_cert, keyfile=pki.client_key)
    async with listening(tls=server_tls(pki, mutual=True)) as running:
        await still_serves_tls(running, context)
        assert running.sample(REFUSED, reason="tls_handshake") == 0


@pytest.mark.parametrize("client_cert", ["none", "other_ca"])
async def test_mutual_tls_refuses_a_missing_or_foreign_certificate(pki: Pki,
                                                                   client_cert: str) -> None:
    if client_cert == "none":
        context = client_context(cafile=pki.ca)
    else:
        context = client_context(cafile=pki.ca, certfile=pki.other_client_cert,
                                 keyfile=pki.other_client_key)
    async with listening(tls=server_tls(pki, mutual=True)) as running:
        try:  # TLS 1.3: the client may finish its side before the server refuses
            async with peer(running.port, context) as (reader, writer):
                writer.write(b"\x0bMSH|x\x1c\r")
                assert await closed_by_listener(reader) == b""
        except (ssl.SSLError, ConnectionError):
            pass
        await wait_for_metric(running, REFUSED, reason="tls_handshake")
        assert running.seen == []
        good = client_context(cafile=pki.ca, certfile=pki.client_cert, keyfile=pki.client_key)
        await still_serves_tls(running, good)


async def test_plain_mllp_on_a_tls_port_is_refused(pki: Pki) -> None:
    async with listening(tls=server_tls(pki), frame_timeout_s=1) as running:
        async with peer(running.port) as (reader, writer):
            writer.write(b"\x0bMSH|plain\x1c\r")
            received = await closed_by_listener(reader)
            assert b"MSA" not in received  # a TLS alert at most, never an ACK
        await wait_for_metric(running, REFUSED, reason="tls_handshake")
        await still_serves_tls(running, client_context(cafile=pki.ca))


async def test_tls_handshake_that_never_starts_times_out(pki: Pki) -> None:
    async with listening(tls=server_tls(pki), frame_timeout_s=0.3) as running:
        async with peer(running.port) as (reader, _):
            assert await closed_by_listener(reader, within=3) == b""
        await wait_for_metric(running, REFUSED, reason="tls_handshake")


async def test_client_refuses_a_server_its_ca_did_not_sign(pki: Pki) -> None:
    async with listening(tls=server_tls(pki)) as running:
        client = MllpClient("127.0.0.1", running.port, timeout=5,
                            tls=client_context(cafile=pki.other_ca))
        with pytest.raises(Exception, match="cannot connect"):
            await client.connect()
        insecure = client_context(insecure=True)  # test certificates only
        await still_serves_tls(running, insecure)


async def test_send_command_over_mutual_tls(pki: Pki, tmp_path: Path) -> None:
    file = tmp_path / "one.hl7"
    file.write_bytes(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|TLS1|P|2.5\r")
    async with listening(tls=server_tls(pki, mutual=True)) as running:
        result = await asyncio.to_thread(CliRunner().invoke, cli, [
            "send", "--port", str(running.port), "--tls", "--cafile", str(pki.ca),
            "--certfile", str(pki.client_cert), "--keyfile", str(pki.client_key), str(file)])
        assert result.exit_code == 0, result.output
        assert result.stdout.split()[0] == "AA"
        assert "1 sent, 1 accepted, 0 refused" in result.stderr


def test_tls_settings_refuse_a_key_that_does_not_match(pki: Pki) -> None:
    with pytest.raises(ValueError, match="cannot load certificate"):
        TlsSettings(certfile=pki.server_cert, keyfile=pki.client_key)


A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


async def test_gateway_over_mutual_tls(pki: Pki, gateway_settings: GatewaySettings) -> None:
    a01 = A01
    listener = gateway_settings.listeners[0].model_copy(
        update={"tls": server_tls(pki, mutual=True)})
    settings = gateway_settings.model_copy(update={"listeners": [listener]})
    context = client_context(cafile=pki.ca, certfile=pki.client_cert, keyfile=pki.client_key)
    async with GatewayService(settings, http=False) as gateway:
        port = gateway.listeners[0].port
        async with MllpClient("127.0.0.1", port, timeout=10, tls=context) as client:
            assert ack_code_of((await client.send(a01)).decode()) in ("AA", "CA")
        with pytest.raises(Exception, match=r"cannot connect|connection lost|closed"):
            async with MllpClient("127.0.0.1", port, timeout=5,
                                  tls=client_context(cafile=pki.ca)) as client:
                await client.send(a01)
