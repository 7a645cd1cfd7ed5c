"""Operations on a real node process (issue 7): probes, safe logs, HTTPS with client
certificates. ``node init`` makes an embedded SoftHSM token whose user PIN the node reads
from a mode-600 file (``custody.pin_file``), as a production node reads its HSM PIN."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.node.support import (
    NET_NAMES,
    IntkeyWriter,
    NodeProcess,
    RunningNet,
    init_net,
    init_node,
    post_batches,
    request,
    statuses,
    stop_net,
    submit,
)
from tests.unit.api.tls_support import make_pki
from trusted_ledger.client.http import LedgerClient, client_tls_context
from trusted_ledger.errors import RequestRejected

pytestmark = pytest.mark.hsm


def _set(config: Path, replacements: dict[str, str]) -> None:
    """Replace whole lines of node.toml (``node init`` writes every key out)."""
    text = config.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert text.count(f"\n{old}\n") == 1, old
        text = text.replace(f"\n{old}\n", f"\n{new}\n")
    config.write_text(text, encoding="utf-8")


def _secrets(node_dir: Path) -> dict[str, str]:
    """Every secret of the node directory, as text that must never reach a log."""
    found = {
        "user PIN": (node_dir / "secrets" / "user.pin").read_text().strip(),
        "SO PIN": (node_dir / "secrets" / "so.pin").read_text().strip(),
    }
    admin = (node_dir / "keys" / "admin.priv").read_text().strip()
    found["admin private key"] = admin
    assert all(len(value) >= 16 for value in found.values()), "a secret too short to search"
    return found


def test_logs_carry_context_and_never_a_secret(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir)
    config = node_dir / "node.toml"
    assert 'pin_file = "secrets/user.pin"' in config.read_text()
    _set(config, {'level = "info"': 'level = "debug"'})
    log_path = tmp_path / "node.log"
    node = NodeProcess(node_dir, log_path)
    try:
        assert request(f"{node.url}/healthz") == (
            200,
            {"data": {"alive": True}, "link": f"{node.url}/healthz"},
        )
        status, body = request(f"{node.url}/readyz")
        assert status == 200, body
        checks = {check["name"]: check["ok"] for check in body["data"]["checks"]}
        assert checks == {"api": True, "chain": True, "custody": True, "publisher": True}
        writer = IntkeyWriter("ops")
        made = [writer.batch() for _ in range(5)]
        assert post_batches(node.url, [batch for batch, _, _ in made])[0] == 202
        ids = [batch.header_signature for batch, _, _ in made]
        assert {e["status"] for e in statuses(node.url, ids, wait_s=30).values()} == {"COMMITTED"}
        status, _ = request(
            f"{node.url}/batches", body=b"\x00junk", content_type="application/octet-stream"
        )
        assert status == 400
        # Every transaction committed since start, counted once: what the blocks hold
        # (ours, and any the node added itself, such as audit anchors).
        assert _committed_counter_matches_blocks(node.url) >= 5
        metrics = request_text(f"{node.url}/metrics")
        assert 'tl_node_ready{check="custody"} 1.0' in metrics
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()
    text = log_path.read_text()
    for what, secret in _secrets(node_dir).items():
        assert secret not in text, f"the {what} is in the node's log"
        assert secret.upper() not in text.upper(), f"the {what} is in the node's log"
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records, text[:500]
    assert all(r.get("node", "").startswith("node-") for r in records), records[0]
    committed = [r for r in records if r["event"] == "block.committed"]
    assert committed and all("round" in r and "height" in r for r in committed)
    ready = next(r for r in records if r["event"] == "node.ready")
    assert ready["height"] == 0  # the record's own field: the head at start
    later = records[records.index(ready) + 1 :]
    assert later and all("height" in r for r in later)


def _committed_counter_matches_blocks(url: str) -> int:
    """tl_chain_committed_transactions_total against the blocks after genesis (read between
    two equal readings of the counter, so a block committed meanwhile cannot skew it)."""
    pattern = re.compile(r"^tl_chain_committed_transactions_total (\S+)$", re.MULTILINE)
    for _ in range(10):
        before = pattern.findall(request_text(f"{url}/metrics"))
        blocks = request(f"{url}/blocks?limit=1000")[1]["data"]
        after = pattern.findall(request_text(f"{url}/metrics"))
        if before == after:
            assert blocks[-1]["header"]["block_num"] == 0
            counted = sum(len(b["transactions"]) for k in blocks[:-1] for b in k["batches"])
            assert after == [f"{counted}.0"]
            return counted
    raise AssertionError("the chain kept growing while it was read")


def request_text(url: str) -> str:
    import urllib.request  # noqa: PLC0415 - only this helper needs it

    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def test_node_serves_https_and_admits_listed_writers(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    init_node(node_dir)
    pki = make_pki(node_dir / "tls")
    _set(
        node_dir / "node.toml",
        {
            'tls_cert_file = ""': 'tls_cert_file = "tls/server.crt"',
            'tls_key_file = ""': 'tls_key_file = "tls/server.key"',
            'client_ca_file = ""': 'client_ca_file = "tls/consortium-ca.crt"',
            "write_clients = []": f'write_clients = ["{pki.teller.fingerprint}"]',
        },
    )
    node = NodeProcess(node_dir, tmp_path / "node.log")
    try:
        assert node.url.startswith("https://127.0.0.1:")
        batch, _, _ = IntkeyWriter("tls").batch()
        anonymous = client_tls_context(str(pki.ca.cert_file))
        with LedgerClient(node.url, 30, ssl_context=anonymous) as client:
            assert client.status().chain_id == "trusted-ledger-dev"
            with pytest.raises(RequestRejected) as caught:
                client.submit([batch])
            assert caught.value.status == 403
        teller = client_tls_context(
            str(pki.ca.cert_file), str(pki.teller.cert_file), str(pki.teller.key_file)
        )
        with LedgerClient(node.url, 30, ssl_context=teller) as client:
            [batch_id] = client.submit([batch])
            [report] = client.batch_statuses([batch_id], wait_s=30)
            assert report.status == "COMMITTED"
        # Plain HTTP on the HTTPS port gets no answer.
        with pytest.raises((OSError, http.client.HTTPException)):
            request_text(node.url.replace("https://", "http://") + "/status")
        assert node.terminate() == 0
    finally:
        if node.process.poll() is None:
            node.kill()


def _readyz_until(url: str, wanted: Callable[[int, dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll ``/readyz`` until ``wanted(status, data)``: peers connect and drop asynchronously."""
    deadline = time.monotonic() + 60
    seen: tuple[int, Any] = (0, None)
    while time.monotonic() < deadline:
        status, body = request(f"{url}/readyz", timeout=5)
        seen = (status, body)
        if wanted(status, body["data"]):
            return dict(body["data"])
        time.sleep(0.2)
    raise AssertionError(f"/readyz never became what was wanted: {seen}")


@pytest.mark.timeout(180)
def test_consortium_readiness_follows_the_quorum(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    init_net(directory)
    net = RunningNet(directory)
    try:
        net.start()
        submit(net, "bank-a", IntkeyWriter("ready-"), 3)
        net.wait_height(NET_NAMES, 1)
        data = _readyz_until(net.urls["bank-a"], lambda status, _: status == 200)
        names = [check["name"] for check in data["checks"]]
        assert names == ["api", "chain", "custody", "consensus", "peers"]
        # Two of four members away: bank-a is alive but cannot reach a quorum.
        net.down("bank-c", "bank-d")
        data = _readyz_until(
            net.urls["bank-a"], lambda status, d: status == 503 and "peers" in d["failing"]
        )
        [peers] = [check for check in data["checks"] if check["name"] == "peers"]
        assert peers["detail"] == "1 of 3 peers connected; a quorum needs 2"
        assert request(f"{net.urls['bank-a']}/healthz")[0] == 200
        net.up("bank-c", "bank-d")
        _readyz_until(net.urls["bank-a"], lambda status, _: status == 200)
    finally:
        stop_net(directory)
    records = [
        json.loads(line)
        for line in (directory / "bank-a" / "node.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert {r["node"] for r in records if "node" in r} == {"bank-a"}
    assert [r for r in records if r["event"] == "bft.committed"], "bank-a logged no commit"
    # The peer layer knows nothing of heights; its records carry them from the context
    # (while the driver runs: not during shutdown, when it has stopped first).
    dropped = [r for r in records if r["event"] == "peer_disconnected" and "height" in r]
    assert len(dropped) >= 2, "bank-c and bank-d went away"
    assert all(isinstance(r["height"], int) and isinstance(r["round"], int) for r in dropped)
