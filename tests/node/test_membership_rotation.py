"""Key rotation in a running 4-member ``net`` consortium, as an operator does it through the
CLI (issue #6): ``node new-key`` on bank-d's own token, a restart of bank-d so it holds both
keys, ``members propose --rotate`` by the admin, then blocks keep committing and every
certificate after the approval is the new membership's: bank-d's votes carry its new key,
never the old one."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

import pytest

from tests.node.support import (
    NET_NAMES,
    IntkeyWriter,
    RunningNet,
    assert_committed,
    cli,
    request,
    submit,
)

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(180)]

NEW_LABEL = "node-signing-2"


def _cli(*args: str) -> Any:
    # Each command finds its token through the node's configuration, not the test's.
    env = {"SOFTHSM2_CONF": ""} if "SOFTHSM2_CONF" in os.environ else None
    return cli(*args, env=env)


def _block(net: RunningNet, height: int) -> dict[str, Any]:
    status, body = request(f"{net.urls['bank-a']}/blocks/num/{height}", timeout=5)
    assert status == 200, body
    return dict(body["data"])


def _members_json(net: RunningNet) -> dict[str, Any]:
    done = _cli("members", "show", "--url", net.urls["bank-b"], "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_rotating_a_members_key_in_a_running_consortium(running_net: RunningNet) -> None:
    net = running_net
    writer = IntkeyWriter("rotate-")
    assert_committed(net, "bank-a", submit(net, "bank-a", writer, 2))
    before = {m["name"]: m["fingerprint"] for m in _members_json(net)["members"]}
    assert list(before) == list(NET_NAMES)  # net init wrote the founders' membership on chain

    # 1. bank-d's operator: a new key on bank-d's own token, then a restart with both keys.
    config = net.directory / "bank-d" / "node.toml"
    net.down("bank-d")
    done = _cli("node", "new-key", "--config", str(config), "--label", NEW_LABEL, "--write-config")
    assert done.returncode == 0, done.stderr
    spki = re.search(r"public key\s+([0-9a-f]+)", done.stdout)
    assert spki is not None, done.stdout
    new_fingerprint = hashlib.sha256(bytes.fromhex(spki.group(1))).hexdigest()
    assert f"--rotate bank-d={spki.group(1)}" in done.stdout  # the next step, spelled out
    assert (net.directory / "bank-d" / "guard" / f"{NEW_LABEL}.guard").is_file()
    # Finishing now is too early: the chain has not made the new key bank-d's.
    unchanged = config.read_text()
    done = _cli("node", "finish-rotation", "--config", str(config))
    assert done.returncode != 0 and "has not taken effect" in done.stderr, done.stderr
    assert config.read_text() == unchanged
    net.up("bank-d")

    # 2. The admin proposes the rotation (threshold 1: approved by the proposal).
    admin = str(net.directory / "keys" / "admin.priv")
    done = _cli(
        "members", "propose", "--rotate", f"bank-d={spki.group(1)}", "--key", admin,
        "--url", net.urls["bank-c"],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    approved = re.search(r"COMMITTED in block (\d+)", done.stdout)
    assert approved is not None, done.stdout
    height = int(approved.group(1))
    after = {m["name"]: m["fingerprint"] for m in _members_json(net)["members"]}
    assert after == {**before, "bank-d": new_fingerprint}

    # 3. Blocks keep committing, on every member, in several blocks after the change.
    for _ in range(6):
        assert_committed(net, "bank-b", submit(net, "bank-b", writer, 1))
    done_at = net.height("bank-b")
    assert done_at is not None and done_at >= height + 6
    net.wait_height(NET_NAMES, done_at)  # every member, bank-d (new key) included
    # bank-d's /status shows the key it signs with now, not the one it started with.
    status_d = net.status("bank-d")
    assert status_d is not None and status_d["node"]["fingerprint"] == new_fingerprint
    top = net.common_height()
    net.assert_same_chain(NET_NAMES, top)

    # 4. Certificates before the change never hold the new key; after it, never the old,
    # and bank-d took part with its new key.
    voters_after: set[str] = set()
    genesis_votes = _block(net, 0)["certificate"]["votes"]
    assert all(v["public_key"] is not None for v in genesis_votes)  # the founders, named
    for number in range(1, top + 1):
        block = _block(net, number)
        voters = {v["signer_fingerprint"] for v in block["certificate"]["votes"]}
        # Every vote is shown with its member's key, from that height's membership.
        for vote in block["certificate"]["votes"]:
            assert vote["public_key"] is not None, (number, vote)
            fingerprint = hashlib.sha256(bytes.fromhex(vote["public_key"])).hexdigest()
            assert fingerprint == vote["signer_fingerprint"], number
        proposer = block["header"]["proposer"]["fingerprint"]
        if number <= height:
            assert new_fingerprint not in voters | {proposer}, number
        else:
            assert before["bank-d"] not in voters | {proposer}, number
            assert voters <= set(after.values()), number
            voters_after |= voters | {proposer}
    assert new_fingerprint in voters_after

    # 5. The operator finishes the rotation: the new key becomes custody.key_label, so after
    # a restart the trail's checkpoints and their anchors in the ledger carry the new key
    # (before, the old key, no longer a member, kept signing them).
    def anchored_keys() -> set[str]:
        done = _cli("audit", "anchors", "--url", net.urls["bank-a"], "--json")
        assert done.returncode == 0, done.stderr
        return {row["fingerprint"] for row in json.loads(done.stdout)["anchors"]}

    assert before["bank-d"] in anchored_keys()  # the old key signed them so far
    assert new_fingerprint not in anchored_keys()
    done = _cli("node", "finish-rotation", "--config", str(config))
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    assert f'key_label = "{NEW_LABEL}"' in text and 'next_key_label = ""' in text
    net.down("bank-d")
    net.up("bank-d")  # anchors its trail at start-up, now with the new key
    status_d = net.status("bank-d")
    assert status_d is not None and status_d["node"]["fingerprint"] == new_fingerprint
    assert_committed(net, "bank-d", submit(net, "bank-d", writer, 1))
    deadline = time.monotonic() + 30
    while new_fingerprint not in anchored_keys():
        assert time.monotonic() < deadline, f"no anchor by the new key: {anchored_keys()}"
        time.sleep(0.5)
