"""TLS for the REST API: the server's ``ssl.SSLContext``, and which clients may write or read.

The operator's certificate and key serve HTTPS (TLS 1.2 at least, 1.3 preferred: Python's
``PROTOCOL_TLS_SERVER`` negotiates the highest both sides speak). With a client CA the server
asks every client for a certificate and verifies any it is given against that CA; a client
may still connect without one (``CERT_OPTIONAL``), because who may do what is decided per
route by ``ClientAccess``, which answers 403 with a message that says what was missing:

- ``write_clients`` set: ``POST /batches`` only for a client whose certificate matches an entry.
- ``read_clients`` set: the ledger's data (state, blocks, batches, transactions, receipts,
  batch statuses) only for a client that matches an entry of ``read_clients`` or of
  ``write_clients`` (a transactor follows its own batches and reads the balances it spends).

The operational routes (``/healthz``, ``/readyz``, ``/status``, ``/metrics``,
``/openapi.json``) stay open to any client that completes the handshake, so probes and
Prometheus need no client certificate.

A client entry is a certificate's SHA-256 fingerprint (``sha256:`` and 64 hex digits, colons
between bytes allowed, as ``openssl x509 -fingerprint -sha256`` prints it) or its subject as
an RFC 4514 string (``CN=teller-1,O=Bank A,C=DE``; ``openssl x509 -noout -subject -nameopt
RFC2253`` prints it), compared exactly. docs/operations.md and docs/node.md describe them.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from trusted_ledger.errors import ClientNotAuthorized, ConfigurationError, InvalidInput

WRITE_ROUTES = frozenset({("POST", "/batches")})
"""Routes that change the ledger (governed by ``write_clients``)."""
OPERATIONAL_ROUTES = frozenset({"/healthz", "/readyz", "/status", "/metrics", "/openapi.json"})
"""Routes open to every client that completes the handshake (probes, scrapers)."""
client_entries_max = 1000
"""Entries in one client list: a consortium's transactors are tens to hundreds."""

_FINGERPRINT = re.compile(r"^(?:sha256:)?((?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2})$")
_RDN_SEPARATOR = re.compile(r"(?<!\\),\s+")
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""TLS 1.2 suites: forward secret, AEAD only. (TLS 1.3 suites are all of that already.)"""


@dataclass(frozen=True)
class ClientIdentity:
    """What a client's verified certificate says about it."""

    fingerprint: str
    """SHA-256 of the certificate's DER bytes, lowercase hex without colons."""
    subject: str
    """The subject as an RFC 4514 string."""

    def describe(self) -> str:
        return f"sha256:{self.fingerprint} ({self.subject or 'empty subject'})"


@dataclass(frozen=True)
class ClientEntry:
    """One entry of ``write_clients`` / ``read_clients``: a fingerprint or a subject."""

    fingerprint: str | None = None
    subject: str | None = None

    def matches(self, identity: ClientIdentity) -> bool:
        if self.fingerprint is not None:
            return self.fingerprint == identity.fingerprint
        return self.subject == identity.subject


def parse_client_entry(text: str) -> ClientEntry:
    """An entry from its configured text; ``InvalidInput`` says what is wrong with it."""
    stripped = text.strip()
    match = _FINGERPRINT.match(stripped)
    if match is not None:
        return ClientEntry(fingerprint=match.group(1).replace(":", "").lower())
    if stripped.lower().startswith("sha256:"):
        raise InvalidInput(
            f"{text!r} is not a SHA-256 fingerprint",
            hint="give sha256: and 64 hex digits (openssl x509 -noout -fingerprint -sha256)",
        )
    # Spaces after the separating commas are common in copied subjects; RFC 4514 has none.
    compact = _RDN_SEPARATOR.sub(",", stripped)
    try:
        name = x509.Name.from_rfc4514_string(compact)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is neither a SHA-256 fingerprint nor an RFC 4514 subject",
            hint="for example sha256:ab12...(64 hex digits) or CN=teller-1,O=Bank A,C=DE",
        ) from None
    if not stripped or len(name) == 0:
        raise InvalidInput(f"{text!r} is an empty subject", hint="for example CN=teller-1,O=Bank A")
    return ClientEntry(subject=name.rfc4514_string())


def parse_client_entries(texts: Sequence[str]) -> tuple[ClientEntry, ...]:
    if len(texts) > client_entries_max:
        raise InvalidInput(f"{len(texts)} entries, at most {client_entries_max}")
    return tuple(parse_client_entry(text) for text in texts)


def identity_of_certificate(der: bytes) -> ClientIdentity:
    """The identity of a DER certificate (already verified by the TLS handshake)."""
    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return ClientIdentity(hashlib.sha256(der).hexdigest(), subject)


@dataclass(frozen=True)
class ClientAccess:
    """Who may call which route; empty lists mean no restriction (the default)."""

    write_clients: tuple[ClientEntry, ...] = ()
    read_clients: tuple[ClientEntry, ...] = ()

    @property
    def restricts(self) -> bool:
        return bool(self.write_clients or self.read_clients)

    def check(self, method: str, route: str, identity: ClientIdentity | None) -> None:
        """Raise ``ClientNotAuthorized`` unless ``identity`` may call ``method route``."""
        if route in OPERATIONAL_ROUTES:
            return
        if (method, route) in WRITE_ROUTES:
            self._require(self.write_clients, "api.write_clients", method, route, identity)
        elif self.read_clients:
            allowed = self.read_clients + self.write_clients
            self._require(allowed, "api.read_clients", method, route, identity)

    @staticmethod
    def _require(
        entries: tuple[ClientEntry, ...],
        key: str,
        method: str,
        route: str,
        identity: ClientIdentity | None,
    ) -> None:
        if not entries:
            return
        if identity is None:
            raise ClientNotAuthorized(
                f"{method} {route} requires a client certificate of a client listed in {key}; "
                "none was presented (connect over HTTPS with --cert-file and --key-file, "
                "or $TL_CERT_FILE and $TL_KEY_FILE)"
            )
        if not any(entry.matches(identity) for entry in entries):
            raise ClientNotAuthorized(
                f"{method} {route}: the client certificate {identity.describe()} is not "
                f"listed in {key}; ask the node's operator to add its fingerprint or subject"
            )


@dataclass(frozen=True)
class ApiTls:
    """The files of the API's TLS set-up (paths already resolved)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


def server_ssl_context(tls: ApiTls) -> ssl.SSLContext:
    """The server context: TLS 1.2+ with AEAD suites, the operator's certificate chain, and
    (with a client CA) optional client certificates verified against that CA.

    ``ConfigurationError`` names the configuration key of a file that cannot be used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"api.tls_cert_file {tls.cert_file} / api.tls_key_file {tls.key_file}: "
            f"cannot load the certificate chain and key ({exc})",
            hint="tls_cert_file: PEM certificate (chain); tls_key_file: its unencrypted PEM "
            "private key, readable by the node's user only",
        ) from exc
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"api.client_ca_file {tls.client_ca_file}: cannot load CA certificates ({exc})",
                hint="give a PEM file of the CA certificate(s) that issue client certificates",
            ) from exc
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    lowered = host.strip("[]").lower()
    return lowered in {"localhost", "::1"} or lowered.startswith("127.")
