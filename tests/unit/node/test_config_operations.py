"""``[api]`` TLS keys of node.toml, loopback defaults, and the log context (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.api.tls_support import AUDITOR_SUBJECT, make_pki
from trusted_ledger.errors import ConfigurationError
from trusted_ledger.node.config import NodeConfig, load_config, render_config
from trusted_ledger.node.operations import api_security, exposed_binds, warn_exposed_binds
from trusted_ledger.observability.logging import (
    bind_node_context,
    clear_node_context,
    configure_logging,
    get_logger,
)

BASE = '[custody]\npin_env = "TL_PIN"\n'


def _load(tmp_path: Path, text: str) -> NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(BASE + text, encoding="utf-8")
    return load_config(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        _load(tmp_path, text)
    return caught.value.message + " | " + (caught.value.hint or "")


def test_defaults_bind_loopback_only(tmp_path: Path) -> None:
    config = _load(tmp_path, '[consensus]\nmode = "bft"\nmembers_file = "members.toml"\n')
    assert config.api.host == "127.0.0.1"
    assert config.processors.bind.startswith("tcp://127.0.0.1:")
    assert config.network.host == "127.0.0.1"
    assert exposed_binds(config) == []
    assert api_security(config).scheme == "http"


def test_binds_beyond_loopback_are_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _load(
        tmp_path,
        '[api]\nbind = "0.0.0.0:8008"\n[processors]\nbind = "tcp://10.0.0.5:4004"\n'
        '[consensus]\nmode = "bft"\nmembers_file = "m.toml"\n[network]\nbind = "[::]:7000"\n',
    )
    assert exposed_binds(config) == [
        ("api.bind", "0.0.0.0:8008"),
        ("processors.bind", "tcp://10.0.0.5:4004"),
        ("network.bind", "[::]:7000"),
    ]
    configure_logging(json=True, level="info")
    capsys.readouterr()
    warn_exposed_binds(config)
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["event"], r["key"], r["level"]) for r in records] == [
        ("config.bind_beyond_loopback", "api.bind", "warning"),
        ("config.bind_beyond_loopback", "processors.bind", "warning"),
        ("config.bind_beyond_loopback", "network.bind", "warning"),
    ]
    assert "plain HTTP" in records[0]["advice"]


def test_tls_keys_load_and_render(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "tls")
    text = (
        "[api]\n"
        'bind = "10.1.0.10:8443"\n'
        'tls_cert_file = "tls/server.crt"\n'
        'tls_key_file = "tls/server.key"\n'
        'client_ca_file = "tls/consortium-ca.crt"\n'
        f'write_clients = ["{pki.teller.fingerprint}"]\n'
        f'read_clients = ["{AUDITOR_SUBJECT}"]\n'
    )
    config = _load(tmp_path, text)
    assert config.api.write_clients == (pki.teller.fingerprint,)
    assert config.api.read_clients == (AUDITOR_SUBJECT,)
    security = api_security(config)
    assert security.scheme == "https"
    assert security.access.write_clients[0].fingerprint == pki.teller.fingerprint[7:]
    # render_config writes what load_config reads, lists included.
    (tmp_path / "again.toml").write_text(render_config(config), encoding="utf-8")
    assert load_config(tmp_path / "again.toml").api == config.api


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[api]\ntls_cert_file = "a.crt"\n', "api.tls_cert_file/tls_key_file"),
        ('[api]\ntls_cert_file = "no.crt"\ntls_key_file = "no.key"\n', "api.tls_cert_file"),
        ('[api]\nwrite_clients = "sha256:00"\n', "api.write_clients must be a list of strings"),
        ("[api]\nread_clients = [1]\n", "api.read_clients must be a list of strings"),
        ('[api]\nwrite_clients = ["CN=x"]\n', "api.write_clients needs client certificates"),
        ('[api]\ntls_ciphers = "x"\n', "unknown key api.tls_ciphers"),
    ],
)
def test_bad_api_keys_are_named(tmp_path: Path, text: str, named: str) -> None:
    assert named in _error(tmp_path, text)


def test_bad_client_entries_are_named_by_index(tmp_path: Path) -> None:
    make_pki(tmp_path / "tls")
    tls = (
        '[api]\ntls_cert_file = "tls/server.crt"\ntls_key_file = "tls/server.key"\n'
        'client_ca_file = "tls/consortium-ca.crt"\n'
    )
    message = _error(tmp_path, tls + 'write_clients = ["CN=ok", "sha256:12ab"]\n')
    assert "api.write_clients[1]" in message
    assert "SHA-256 fingerprint" in message
    assert "api.client_ca_file needs TLS" in _error(
        tmp_path, '[api]\nclient_ca_file = "tls/consortium-ca.crt"\n'
    )


def test_log_records_carry_node_height_and_round(capsys: pytest.CaptureFixture[str]) -> None:
    position = [7, 2]
    configure_logging(json=True, level="info")
    bind_node_context("bank-a", lambda: (position[0], position[1]))
    try:
        capsys.readouterr()
        log = get_logger("test")
        log.info("one")
        position[:] = [8, 0]
        log.info("two", height=5)  # a record's own field wins
        log.info("three", pin="1234")
    finally:
        clear_node_context()
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["node"], r["height"], r["round"]) for r in records] == [
        ("bank-a", 7, 2),
        ("bank-a", 5, 0),
        ("bank-a", 8, 0),
    ]
    assert records[2]["pin"] == "[redacted]"
