"""Real X.509 certificates for the TLS tests, made with ``cryptography``: a consortium CA, a
server certificate for 127.0.0.1, client certificates it issued, and a rogue CA's client."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate and key written as PEM files."""

    cert_file: Path
    key_file: Path
    der: bytes

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.der).hexdigest()


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return Issued(cert_file, key_file, cert.public_bytes(serialization.Encoding.DER))


class Authority:
    """A CA that issues server and client certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name, name)
        cert = (
            self._builder(self.name, self.key.public_key(), days=3650)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        self.issued = _write(directory, name, cert, self.key)

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(getattr(self, "name", subject))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(minutes=5))
            .not_valid_after(_NOW + datetime.timedelta(days=days))
        )

    def issue(self, stem: str, common_name: str, organization: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(_name(common_name, organization), key.public_key(), days=30)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
            )
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        return _write(self.directory, stem, builder.sign(self.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    teller: Issued
    """Listed in write_clients by fingerprint."""
    auditor: Issued
    """Listed in read_clients by subject."""
    stranger: Issued
    """Issued by the consortium CA, listed nowhere."""
    rogue: Issued
    """Issued by another CA."""


AUDITOR_SUBJECT = "CN=auditor-1,O=Bank B,C=DE"


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = Authority(directory, "consortium-ca")
    rogue_ca = Authority(directory, "rogue-ca")
    return Pki(
        ca=ca.issued,
        server=ca.issue("server", "node-a.bank-a.example", "Bank A", server=True),
        teller=ca.issue("teller", "teller-1", "Bank A", server=False),
        auditor=ca.issue("auditor", "auditor-1", "Bank B", server=False),
        stranger=ca.issue("stranger", "stranger", "Bank C", server=False),
        rogue=rogue_ca.issue("rogue", "teller-1", "Bank A", server=False),
    )
