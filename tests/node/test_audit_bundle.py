"""The compliance bundle from a real consortium (issue #7): ``net`` with four member
processes on SoftHSM and RocksDB, intkey writes, every member anchoring its trail every
2 s, and a rotation of bank-d's key through the CLI. bank-a's operator exports the bundle
while bank-a keeps running (its database opened read-only beside it), with the trails
bank-b and bank-d handed over; an auditor verifies it offline: clean, the rotation
re-derived at its height, every anchor of the three trails matched. A changed byte in the
exported file is then found."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.node.support import (
    NET_NAMES,
    IntkeyWriter,
    RunningNet,
    assert_committed,
    cli,
    init_net,
    request,
    stop_net,
    submit,
)
from trusted_ledger.node.members import load_members
from trusted_ledger.processing.families.audit_anchor import (
    audit_anchor_address,
    decode_anchor_record,
)

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(300)]
NEW_LABEL = "node-signing-2"
WAIT_S = 90  # only stops a hung test


def _cli(*args: str) -> Any:
    env = {"SOFTHSM2_CONF": ""} if "SOFTHSM2_CONF" in os.environ else None
    return cli(*args, env=env)


def _anchors(url: str, fingerprint: str) -> int:
    status, body = request(f"{url}/state/{audit_anchor_address(fingerprint)}")
    if status == 404:
        return 0
    assert status == 200, body
    return decode_anchor_record(base64.b64decode(body["data"])).anchors


def _wait_anchors(url: str, fingerprint: str, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while _anchors(url, fingerprint) < count:
        assert time.monotonic() < deadline, f"{fingerprint[:16]}: fewer than {count} anchors"
        time.sleep(0.2)


def _rotate_bank_d(net: RunningNet) -> tuple[int, str]:
    """``node new-key`` on bank-d's token, restart, ``members propose --rotate``: the height
    the rotation was approved in, and bank-d's new fingerprint."""
    config = net.directory / "bank-d" / "node.toml"
    net.down("bank-d")
    done = _cli("node", "new-key", "--config", str(config), "--label", NEW_LABEL, "--write-config")
    assert done.returncode == 0, done.stderr
    spki = re.search(r"public key\s+([0-9a-f]+)", done.stdout)
    assert spki is not None, done.stdout
    net.up("bank-d")
    admin = str(net.directory / "keys" / "admin.priv")
    done = _cli(
        "members", "propose", "--rotate", f"bank-d={spki.group(1)}", "--key", admin,
        "--url", net.urls["bank-c"],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    approved = re.search(r"COMMITTED in block (\d+)", done.stdout)
    assert approved is not None, done.stdout
    return int(approved.group(1)), hashlib.sha256(bytes.fromhex(spki.group(1))).hexdigest()


def test_bundle_exported_from_a_running_member_verifies_offline(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    init_net(directory)
    members = {m.name: m for m in load_members(directory / "members.toml")}
    for name in NET_NAMES:
        config = directory / name / "node.toml"
        text = config.read_text()
        assert "\nanchor_every_s = 300\n" in text
        config.write_text(text.replace("\nanchor_every_s = 300\n", "\nanchor_every_s = 2\n"))
    net = RunningNet(directory)
    bundle = tmp_path / "bundle.tar"
    try:
        net.start()
        writer = IntkeyWriter("bundle-")
        assert_committed(net, "bank-a", submit(net, "bank-a", writer, 3))
        rotated_at, new_d = _rotate_bank_d(net)
        for _ in range(3):
            assert_committed(net, "bank-b", submit(net, "bank-b", writer, 1))
        url = net.urls["bank-a"]
        for name in ("bank-a", "bank-b"):
            _wait_anchors(url, members[name].fingerprint, 2)
        # bank-d keeps checkpointing with custody.key_label (its old key): one anchor more
        # after the rotation, which the verifier must recognise as bank-d's retired key.
        old_d = members["bank-d"].fingerprint
        _wait_anchors(url, old_d, _anchors(url, old_d) + 1)
        # bank-b and bank-d hand over their trails (whole files: their nodes are stopped);
        # bank-a exports while it runs.
        net.down("bank-b", "bank-d")
        trails = [f"--trail={name}={directory / name / 'audit' / 'key-usage.jsonl'}"
                  for name in ("bank-b", "bank-d")]  # fmt: skip
        done = cli(
            "audit", "export", "--config", str(directory / "bank-a" / "node.toml"),
            "--out", str(bundle), *trails, "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        exported = json.loads(done.stdout)
        assert exported["trails"] == ["bank-a", "bank-b", "bank-d"]
        assert exported["membership_proofs"] >= 2  # genesis and the rotation
        assert net.status("bank-a") is not None  # still running
        genesis = net.block_id("bank-a", 0)
    finally:
        stop_net(directory)

    done = cli("audit", "verify-bundle", str(bundle), "--trusted-genesis", genesis, "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, report["findings"]
    assert report["ok"] and report["findings"] == []
    assert report["from_height"] == 0 and report["to_height"] == exported["to_height"]
    assert report["certificates_verified"] == report["to_height"] + 1
    assert report["membership_changes"] == [rotated_at + 1]
    assert set(report["trails"]) == {"bank-a", "bank-b", "bank-d"}
    assert report["anchors_matched"] >= 5
    # bank-c's trail was not handed over: its anchors are checked against the ledger only.
    assert any("bank-c" in note for note in report["notes"])
    assert any("bank-d anchored with its retired key" in n for n in report["notes"])
    assert new_d not in json.dumps(report["findings"])

    data = bytearray(bundle.read_bytes())
    position = data.rindex(b'"kind":"use"')  # inside the last trail's records
    data[position + 2] ^= 0x01
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(bytes(data))
    done = cli("audit", "verify-bundle", str(tampered), "--json")
    assert done.returncode == 1
    findings = json.loads(done.stdout)["findings"]
    assert {f["part"] for f in findings} == {"trails/bank-d.jsonl"}
