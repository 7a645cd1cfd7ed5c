"""``trusted-ledger proof ...`` against a real API server (its own loop in a thread), then
``proof verify`` on the saved files offline, untouched and tampered."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.api.support import ALICE, ApiChain, make_chain, usd_setup
from tests.unit.chain.support import SoftwareSigner
from tests.unit.custody.test_audit_proof import write_trail
from trusted_ledger.cli import main
from trusted_ledger.cli.proof import load_membership
from trusted_ledger.errors import ConfigurationError, InvalidInput
from trusted_ledger.node.members import Member, write_members
from trusted_ledger.processing.families import asset


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ApiChain, str, Any, list[Any]]]:
    audit_path = tmp_path / "key-usage.jsonl"
    node_key = write_trail(audit_path, 12)
    chain = make_chain(audit_path=audit_path)
    batches = usd_setup()
    chain.commit(*batches)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-loop", daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(chain.server.start("127.0.0.1", 0), loop).result(10)
    chain.server.set_ready(True)
    try:
        yield chain, f"http://127.0.0.1:{port}", node_key, batches
    finally:
        asyncio.run_coroutine_threadsafe(chain.server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_fetch_verify_save_and_tamper(
    served: tuple[ApiChain, str, Any, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain, url, node_key, (create, issue) = served
    members = tmp_path / "members.json"
    members.write_text(json.dumps([chain.signer.public_key.spki_der.hex()]))
    saved = tmp_path / "batch.json"
    batch_id = issue.header_signature
    args = ["--url", url, "--members", str(members)]
    assert main(["proof", "batch", batch_id, *args, "--out", str(saved)]) == 0
    out = capsys.readouterr().out
    assert f"PROVEN: batch {batch_id[:16]}... is batch 1 of block 1" in out
    assert "certified by a quorum (1) of 1 members" in out

    # Offline: the saved file verifies without the node; the JSON facts are exact.
    assert main(["proof", "verify", str(saved), "--members", str(members), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert (facts["batch_id"], facts["index"], facts["certified"]) == (batch_id, 1, True)

    # Without a membership: proven against its own header only, and said so.
    assert main(["proof", "verify", str(saved)]) == 0
    assert "NOT certified" in capsys.readouterr().err

    # Tampered: one path hash, then the header's timestamp byte; each fails naming the field.
    document = json.loads(saved.read_text())
    bad_path = dict(document, path=["00" * 32, *document["path"][1:]])
    (tmp_path / "bad.json").write_text(json.dumps(bad_path))
    assert main(["proof", "verify", str(tmp_path / "bad.json")]) == 1
    assert "error: path: the audit path does not lead" in capsys.readouterr().err
    header = bytearray.fromhex(document["block"]["header"])
    header[-10] ^= 1
    bad_header = dict(document, block=dict(document["block"], header=header.hex()))
    (tmp_path / "bad.json").write_text(json.dumps(bad_header))
    assert main(["proof", "verify", str(tmp_path / "bad.json")]) == 1
    assert "block.proposer_signature" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["proof", "verify", str(tmp_path / "bad.json")]) == 1
    assert "not JSON" in capsys.readouterr().err

    transaction_id = create.transactions[0].header_signature
    assert main(["proof", "transaction", transaction_id, *args]) == 0
    assert "(asset 1.0, signed by" in capsys.readouterr().out

    holding = asset.holding_address("USD", ALICE.public_key_hex)
    assert main(["proof", "state", holding, *args, "--block", "0"]) == 0
    assert f"address {holding} holds absent at block 0" in capsys.readouterr().out
    assert main(["proof", "state", holding, *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] is not None

    pem = tmp_path / "node.pem"
    pem.write_text(node_key.public.pem)
    assert main(["proof", "audit", "--url", url, "--public-key", str(pem)]) == 0
    assert "both signed by the trusted node key" in capsys.readouterr().out

    assert main(["proof", "batch", "ab" * 64, "--url", url]) == 1
    assert "is not committed" in capsys.readouterr().err


def test_members_from_the_consortium_file_or_a_json_list(tmp_path: Path) -> None:
    keys = [SoftwareSigner().public_key for _ in range(4)]
    toml = tmp_path / "members.toml"
    write_members(
        toml, [Member(f"bank-{i}", key, f"10.0.0.{i}:7000") for i, key in enumerate(keys)]
    )
    membership = load_membership(toml)
    assert (membership.size, membership.quorum) == (4, 3)
    assert all(key in membership for key in keys)
    listed = tmp_path / "members.json"
    listed.write_text(json.dumps([key.spki_der.hex() for key in keys[:2]]))
    assert load_membership(listed).size == 2
    listed.write_text('["not hex"]')
    with pytest.raises(InvalidInput, match="JSON list of hex DER public keys"):
        load_membership(listed)
    with pytest.raises(ConfigurationError, match="cannot read members file"):
        load_membership(tmp_path / "missing.toml")
