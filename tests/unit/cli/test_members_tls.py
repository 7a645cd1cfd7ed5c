"""``members …`` speaks HTTPS with the same options as the other client commands: against
a real TLS API server, the consortium CA (``--ca-file``) and a reader's certificate
(``--cert-file``/``--key-file``, or their environment variables) are what get it through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.api.support import make_chain
from tests.unit.api.test_tls_access import ServedApi
from tests.unit.api.tls_support import AUDITOR_SUBJECT, Pki, make_pki
from trusted_ledger.api.tls import ClientAccess, parse_client_entries
from trusted_ledger.cli import main


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    pki: Pki = make_pki(tmp_path_factory.mktemp("pki"))
    access = ClientAccess(
        write_clients=parse_client_entries([pki.teller.fingerprint]),
        read_clients=parse_client_entries([AUDITOR_SUBJECT]),
    )
    api = ServedApi(make_chain(), pki, access)
    try:
        yield api
    finally:
        api.close()


def test_members_show_over_https(
    served: ServedApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://127.0.0.1:{served.port}"
    pki = served.pki
    assert main(["members", "show", "--url", url]) == 3  # the CA is unknown: unreachable
    capsys.readouterr()
    ca = ["--ca-file", str(pki.ca.cert_file)]
    assert main(["members", "show", "--url", url, *ca]) == 1  # TLS works; no reader cert
    assert "api.read_clients" in capsys.readouterr().err
    reader = ["--cert-file", str(pki.auditor.cert_file), "--key-file", str(pki.auditor.key_file)]
    status = main(["members", "show", "--url", url, *ca, *reader, "--json"])
    captured = capsys.readouterr()
    assert "api.read_clients" not in captured.err
    # Through TLS and the reader check to the state: this chain keeps no members on chain.
    assert status == 1 and "no tl.consensus.members on this chain" in captured.err, captured
    monkeypatch.setenv("TL_CA_FILE", str(pki.ca.cert_file))
    monkeypatch.setenv("TL_CERT_FILE", str(pki.auditor.cert_file))
    monkeypatch.setenv("TL_KEY_FILE", str(pki.auditor.key_file))
    assert main(["members", "show", "--url", url, "--json"]) == 1
    assert "no tl.consensus.members on this chain" in capsys.readouterr().err
