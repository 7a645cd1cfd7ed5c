"""The REST API over TLS with client certificates, against a real server on loopback.

Real certificates (``tls_support``), the production ``server_ssl_context`` and
``ApiServer.start``, and the real client library (``LedgerClient`` with
``client_tls_context``) and a raw ``ssl`` socket: HTTPS answers, plain HTTP does not, a
server certificate is verified, TLS 1.3 is what a modern client gets, only listed clients
write, and ``read_clients`` keeps the ledger's data from everyone else.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.api.support import ApiChain, make_chain, usd_setup
from tests.unit.api.tls_support import AUDITOR_SUBJECT, Issued, Pki, make_pki
from trusted_ledger.api import ApiServer, NodeServices
from trusted_ledger.api.tls import (
    ApiTls,
    ClientAccess,
    parse_client_entries,
    parse_client_entry,
    server_ssl_context,
)
from trusted_ledger.cli import main
from trusted_ledger.client.http import LedgerClient, client_tls_context
from trusted_ledger.errors import (
    ConfigurationError,
    InvalidInput,
    NodeUnreachable,
    RequestRejected,
)
from trusted_ledger.processing.families import asset


class ServedApi:
    """``ApiServer`` over ``chain`` with TLS, on its own event loop thread."""

    def __init__(self, chain: ApiChain, pki: Pki, access: ClientAccess) -> None:
        services = NodeServices(
            store=chain.store,
            pool=chain.pool,
            node_public_key=chain.signer.public_key,
            scheduler_name="serial",
            wake_publisher=lambda: None,
        )
        self.server = ApiServer(services, access=access)
        context = server_ssl_context(
            ApiTls(pki.server.cert_file, pki.server.key_file, pki.ca.cert_file)
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = self.server.start("127.0.0.1", 0, ssl_context=context)
        self.port = asyncio.run_coroutine_threadsafe(start, self.loop).result(30)
        self.server.set_ready(True)
        self.pki = pki

    def client(self, who: Issued | None, *, scheme: str = "https") -> LedgerClient:
        context = client_tls_context(
            str(self.pki.ca.cert_file),
            None if who is None else str(who.cert_file),
            None if who is None else str(who.key_file),
        )
        return LedgerClient(f"{scheme}://127.0.0.1:{self.port}", 10, ssl_context=context)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def served(pki: Pki) -> Iterator[ServedApi]:
    access = ClientAccess(
        write_clients=parse_client_entries([pki.teller.fingerprint]),
        read_clients=parse_client_entries([AUDITOR_SUBJECT]),
    )
    api = ServedApi(make_chain(), pki, access)
    try:
        yield api
    finally:
        api.close()


USD_ADDRESS = asset.asset_class_address("USD")


def test_https_serves_and_plain_http_is_refused(served: ServedApi) -> None:
    with served.client(None) as client:
        assert client.status().chain_id == "api-test"
    with (
        LedgerClient(f"http://127.0.0.1:{served.port}", 10) as plain,
        pytest.raises(NodeUnreachable),
    ):
        plain.status()


def test_the_server_certificate_is_verified_and_tls13_negotiated(served: ServedApi) -> None:
    # No CA given: the system trust store does not know the consortium CA.
    with LedgerClient(f"https://127.0.0.1:{served.port}", 10) as client:
        with pytest.raises(NodeUnreachable) as caught:
            client.status()
        assert "--ca-file" in (caught.value.hint or "")
    context = ssl.create_default_context(cafile=str(served.pki.ca.cert_file))
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"
    # TLS 1.0 and 1.1 are off (a client limited to them would fail in its own library
    # first, so the server's setting is read rather than probed).
    context = server_ssl_context(ApiTls(served.pki.server.cert_file, served.pki.server.key_file))
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_only_listed_clients_write(served: ServedApi) -> None:
    create, _ = usd_setup()
    with served.client(None) as anonymous:
        with pytest.raises(RequestRejected) as caught:
            anonymous.submit([create])
        assert caught.value.status == 403
        assert "api.write_clients" in caught.value.message
        assert "none was presented" in caught.value.message
    with served.client(served.pki.stranger) as stranger:
        with pytest.raises(RequestRejected) as caught:
            stranger.submit([create])
        assert caught.value.status == 403
        assert served.pki.stranger.fingerprint in caught.value.message
    # Listed for reading is not listed for writing.
    with served.client(served.pki.auditor) as auditor, pytest.raises(RequestRejected):
        auditor.submit([create])
    assert len(served.server._handlers.services.pool) == 0
    with served.client(served.pki.teller) as teller:
        assert teller.submit([create]) == [create.header_signature]
    assert len(served.server._handlers.services.pool) == 1


def test_a_certificate_from_another_ca_is_refused_even_with_a_listed_subject(
    served: ServedApi,
) -> None:
    # The rogue certificate copies the teller's subject; its issuer is not the client CA.
    create, _ = usd_setup()
    with served.client(served.pki.rogue) as rogue, pytest.raises(NodeUnreachable):
        rogue.submit([create])


def test_read_clients_limit_the_ledger_data_not_the_probes(served: ServedApi) -> None:
    for who in (None, served.pki.stranger):
        with served.client(who) as client:
            with pytest.raises(RequestRejected) as caught:
                client.state(USD_ADDRESS)
            assert caught.value.status == 403
            assert "api.read_clients" in caught.value.message
            with pytest.raises(RequestRejected):
                client.blocks()
            assert client.status().chain_id == "api-test"  # operational routes stay open
    # The auditor (by subject) and the teller (a writer) read: nothing is stored there yet.
    for who in (served.pki.auditor, served.pki.teller):
        with served.client(who) as client:
            assert client.state(USD_ADDRESS) is None
            assert [block["header"]["block_num"] for block in client.blocks()] == [0]


def test_metrics_and_probes_need_no_client_certificate(served: ServedApi) -> None:
    context = client_tls_context(str(served.pki.ca.cert_file))
    with LedgerClient(f"https://127.0.0.1:{served.port}", 10, ssl_context=context) as client:
        for path in ("/healthz", "/readyz"):
            reply = client._request("GET", path)
            assert reply.status == 200, (path, reply.body)
        metrics = client._request("GET", "/metrics")
        assert b'tl_node_ready{check="chain"} 1.0' in metrics.body


def test_client_entries() -> None:
    fingerprint = "AB:" * 31 + "CD"
    assert parse_client_entry(f"sha256:{fingerprint}").fingerprint == "ab" * 31 + "cd"
    assert parse_client_entry("ab" * 32).fingerprint == "ab" * 32
    # Subjects are normalised the way certificates' subjects are rendered.
    assert parse_client_entry("CN=auditor-1, O=Bank B, C=DE").subject == AUDITOR_SUBJECT
    for bad in ("sha256:abcd", "", "not a subject"):
        with pytest.raises(InvalidInput):
            parse_client_entry(bad)


def test_unusable_files_name_their_keys(tmp_path: Path, pki: Pki) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError) as caught:
        server_ssl_context(ApiTls(junk, pki.server.key_file))
    assert "api.tls_cert_file" in caught.value.message
    # A certificate with the wrong key.
    with pytest.raises(ConfigurationError):
        server_ssl_context(ApiTls(pki.server.cert_file, pki.teller.key_file))
    with pytest.raises(ConfigurationError) as caught:
        server_ssl_context(ApiTls(pki.server.cert_file, pki.server.key_file, junk))
    assert "api.client_ca_file" in caught.value.message
    with pytest.raises(InvalidInput):
        client_tls_context(str(pki.ca.cert_file), str(junk), None)


def test_cli_speaks_https_with_options_or_environment(
    served: ServedApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://127.0.0.1:{served.port}"
    pki = served.pki
    assert main(["status", "--url", url, "--json"]) == 3  # the CA is unknown: unreachable
    capsys.readouterr()
    assert main(["status", "--url", url, "--ca-file", str(pki.ca.cert_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chain_id"] == "api-test"
    # A reader's certificate from the environment opens the state to it.
    monkeypatch.setenv("TL_URL", url)
    monkeypatch.setenv("TL_CA_FILE", str(pki.ca.cert_file))
    address = asset.asset_class_address("USD")
    assert main(["state", "get", address]) == 1  # 403: no certificate
    assert "api.read_clients" in capsys.readouterr().err
    monkeypatch.setenv("TL_CERT_FILE", str(pki.auditor.cert_file))
    monkeypatch.setenv("TL_KEY_FILE", str(pki.auditor.key_file))
    assert main(["state", "get", address]) == 1  # now a 404: nothing is stored there
    assert "no value at address" in capsys.readouterr().err
