"""The explorer end to end: a real node process (embedded SoftHSM token, RocksDB), asset
transfers over HTTP, and Debian's Chromium loading ``/explorer/`` from the node.

What the page shows is compared with what the API answers (height, a block's batch ids, its
certificate's signers), the page's verify buttons are clicked and must report success for
committed data, and proofs tampered one byte at a time must be refused by the page's own
JavaScript verifier naming the step that broke. A screenshot is saved under the test's tmp
dir (and to docs/img/explorer.png with TL_EXPLORER_SCREENSHOT=1).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.explorer.cdp import Chromium
from tests.node.support import NodeProcess, post_batches, request, statuses
from trusted_ledger.custody import PublicKey
from trusted_ledger.processing.families import asset, settings
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    ChainMember,
    encode_members_setting,
)
from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.txn import Batch, SigningKey, TransactionBuilder, build_batch

pytestmark = pytest.mark.hsm

REPO = Path(__file__).resolve().parents[2]
SYNC_BOUND_S = 20
"""How long the page may take to show what the API shows (it polls every second)."""


def _asset_batch(key: SigningKey, operation: asset.AssetOperation) -> Batch:
    builder = TransactionBuilder(key, asset.FAMILY_NAME, asset.FAMILY_VERSION)
    transaction = builder.build(
        operation.payload, inputs=operation.inputs, outputs=operation.outputs
    )
    return build_batch(key, [transaction])


def _commit(url: str, batches: list[Batch]) -> dict[str, dict[str, Any]]:
    status, body = post_batches(url, batches)
    assert status == 202, body
    ids = [batch.header_signature for batch in batches]
    final = statuses(url, ids, wait_s=30)
    assert {entry["status"] for entry in final.values()} == {"COMMITTED"}, final
    return final


def _api(url: str, path: str) -> Any:
    status, body = request(f"{url}{path}")
    assert status == 200, (path, body)
    return body


def _text(browser: Chromium, element_id: str) -> str:
    value = browser.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")
    return str(value)


def _page_shows_api_height(browser: Chromium, url: str) -> int:
    """Wait until the page's height is the one /status answers at that moment."""
    deadline = time.monotonic() + SYNC_BOUND_S
    shown: str = ""
    while time.monotonic() < deadline:
        height = _api(url, "/status")["data"]["head"]["block_num"]
        shown = _text(browser, "height")
        if shown == str(height):
            return int(height)
        time.sleep(0.2)
    raise AssertionError(f"the page shows height {shown!r}, /status keeps moving or differs")


def _show(browser: Chromium, fragment: str) -> None:
    """Open a view by its URL fragment and wait until the page has drawn it."""
    container = "state-result" if fragment.startswith("state/") else "detail"
    browser.evaluate(f"location.hash = {json.dumps(fragment)}")
    browser.wait_for(
        f"document.getElementById('{container}').dataset.view === {json.dumps(fragment)}",
        what=f"view #{fragment}",
    )


def _click_verify(browser: Chromium, container: str) -> dict[str, Any]:
    """Click the verify button inside ``container`` and read the report it produces."""
    browser.evaluate(f"document.querySelector('{container} button.verify').click()")
    browser.wait_for(
        f"!!document.querySelector('{container} .report[data-outcome]')",
        what=f"a verification report in {container}",
    )
    report: dict[str, Any] = browser.evaluate(
        f"""(() => {{
          const report = document.querySelector('{container} .report[data-outcome]');
          return {{outcome: report.dataset.outcome, failed: report.dataset.failedStep,
                  text: report.textContent,
                  steps: [...report.querySelectorAll('li')].map((li) => li.className)}};
        }})()"""
    )
    return report


def _verify_tampered(browser: Chromium, proof_path: str, mutate_js: str, kind: str) -> Any:
    """Fetch a real proof in the page, apply ``mutate_js`` to it (``p`` is the proof), and
    run the page's exported verifier on it."""
    return browser.evaluate(
        f"""(async () => {{
          const answer = await fetch({json.dumps(proof_path)});
          const p = (await answer.json()).data;
          const flip = (hex, at) => hex.slice(0, at) +
            ((parseInt(hex[at], 16) ^ 1).toString(16)) + hex.slice(at + 1);
          {mutate_js};
          return await TLExplorer.{kind}(p);
        }})()"""
    )


def test_explorer_shows_the_live_chain_and_verifies_in_the_browser(
    node: NodeProcess, browser: Chromium, tmp_path: Path
) -> None:
    url = node.url
    issuer, alice, bob = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    _commit(
        url,
        [
            _asset_batch(issuer, asset.create_operation("EUR", "currency", 2)),
            _asset_batch(issuer, asset.issue_operation("EUR", alice.public_key_hex, 10_000)),
        ],
    )
    transfers = [
        _asset_batch(
            alice,
            asset.transfer_operation("EUR", alice.public_key_hex, bob.public_key_hex, amount),
        )
        for amount in (125, 250, 375, 500)
    ]
    committed = _commit(url, transfers)

    # The page loads from the node and shows the height /status shows.
    browser.navigate(f"{url}/explorer/")
    first_height = _page_shows_api_height(browser, url)
    assert _text(browser, "chain-id") == _api(url, "/status")["data"]["chain_id"]

    # It grows live: more transfers, a higher head, a new top row, without reloading.
    more = [
        _asset_batch(
            alice, asset.transfer_operation("EUR", alice.public_key_hex, bob.public_key_hex, 1)
        )
        for _ in range(2)
    ]
    grown = _commit(url, more)
    assert max(entry["block_num"] for entry in grown.values()) > first_height
    height = _page_shows_api_height(browser, url)
    assert height > first_height
    browser.wait_for(
        f"document.querySelector('#blocks-body tr').dataset.blockNum === '{height}'",
        what="the newest block on top",
    )
    assert browser.evaluate("location.pathname") == "/explorer/"  # no reload happened

    # A block's batch ids and certificate signers are the API's.
    block_of_batch = committed[transfers[0].header_signature]
    block_id = block_of_batch["block_id"]
    _show(browser, f"block/{block_id}")
    block = _api(url, f"/blocks/{block_id}")["data"]
    shown_ids = browser.evaluate(
        "[...document.querySelectorAll('#block-batches a')].map((a) => a.dataset.batchId)"
    )
    assert shown_ids == block["header"]["batch_ids"]
    assert transfers[0].header_signature in shown_ids
    signers = browser.evaluate(
        "[...document.querySelectorAll('#certificate-votes tbody tr td:nth-child(2) code')]"
        ".map((c) => c.title)"
    )
    assert signers == [vote["signer_fingerprint"] for vote in block["certificate"]["votes"]]
    report = _click_verify(browser, "#detail")
    assert report["outcome"] == "verified", report["text"]

    # "Verify" on a committed batch: the proof is checked in the browser, every step passes.
    batch_id = transfers[0].header_signature
    _show(browser, f"batch/{batch_id}")
    assert _text(browser, "batch-status") == "COMMITTED"
    report = _click_verify(browser, "#detail")
    assert report["outcome"] == "verified", report["text"]
    assert report["steps"] and set(report["steps"]) == {"pass"}
    assert "inclusion path" in report["text"] and "certificate signatures" in report["text"]

    # ... and on a transaction (secp256k1 signatures of transaction and batch, in JS).
    transaction_id = transfers[1].transactions[0].header_signature
    _show(browser, f"transaction/{transaction_id}")
    report = _click_verify(browser, "#detail")
    assert report["outcome"] == "verified", report["text"]

    # Data is shown as text: a transaction whose payload holds markup does not become markup.
    markup = "<b id=xss>!</b>"
    writer = SigningKey.generate()
    address = intkey_address(markup)
    hostile = TransactionBuilder(writer, "intkey", "1.0").build(
        intkey_payload("set", markup, 1), inputs=[address], outputs=[address]
    )
    _commit(url, [build_batch(writer, [hostile])])
    _show(browser, f"transaction/{hostile.header_signature}")
    assert browser.evaluate("document.getElementById('xss') === null")
    assert markup in browser.evaluate("document.getElementById('detail').textContent")

    # ... and on a state entry: Bob's EUR holding at the head.
    holding = asset.holding_address("EUR", bob.public_key_hex)
    _show(browser, f"state/{holding}")
    report = _click_verify(browser, "#state-result")
    assert report["outcome"] == "verified", report["text"]

    # The node anchors its key-usage trail on chain (tl_audit); the page lists the anchor
    # under the node's key and verifies it: state proof, then the checkpoint signature.
    node_fingerprint = _api(url, "/status")["data"]["node"]["fingerprint"]
    browser.wait_for(
        f"!!document.querySelector('#anchors-body tr[data-fingerprint=\"{node_fingerprint}\"]')",
        what="the node's trail anchor",
    )
    browser.evaluate(
        f'document.querySelector(\'#anchors-body tr[data-fingerprint="{node_fingerprint}"] '
        "button.verify').click()"
    )
    browser.wait_for(
        "!!document.querySelector('#anchors-report .report[data-outcome]')",
        what="the anchor's report",
    )
    outcome = browser.evaluate("document.querySelector('#anchors-report .report').dataset.outcome")
    anchor_text = browser.evaluate("document.querySelector('#anchors-report').textContent")
    assert outcome == "verified", anchor_text
    assert "checkpoint signature" in anchor_text
    _check_trail_consistency(browser, node, node_fingerprint)

    # Tampered proofs are refused by the page's verifier, naming the step that broke.
    batch_proof = f"/proofs/batches/{batch_id}"
    proof = _api(url, batch_proof)["data"]
    assert proof["path"], "the transfers' block must hold more than one batch"
    path_flip = _verify_tampered(
        browser, batch_proof, "p.path[0] = flip(p.path[0], 10)", "verifyBatchProof"
    )
    assert path_flip["ok"] is False
    assert path_flip["failed_step"] == "inclusion path → batch_root"
    assert [s["ok"] for s in path_flip["steps"]][-1] is None  # later steps were not run
    signature_flip = _verify_tampered(
        browser,
        batch_proof,
        "p.block.certificate = flip(p.block.certificate, p.block.certificate.length - 3)",
        "verifyBatchProof",
    )
    assert signature_flip["failed_step"] == "certificate signatures (quorum)", signature_flip
    header_flip = _verify_tampered(  # a timestamp byte: same batch root, another block id
        browser,
        batch_proof,
        "p.block.header = flip(p.block.header, p.block.header.length - 30)",
        "verifyBatchProof",
    )
    assert header_flip["failed_step"] == "proposer signature", header_flip
    transaction_flip = _verify_tampered(
        browser,
        f"/proofs/transactions/{transaction_id}",
        "p.transaction_header = flip(p.transaction_header, 40)",
        "verifyTransactionProof",
    )
    assert transaction_flip["failed_step"] == "transaction signed and listed in its batch"
    state_flip = _verify_tampered(
        browser,
        f"/proofs/state/{holding}",
        "p.nodes[p.nodes.length - 1] = flip(p.nodes[p.nodes.length - 1], 12)",
        "verifyStateProof",
    )
    assert state_flip["failed_step"] == "state path → state_root", state_flip

    assert browser.problems() == []
    _screenshot(browser, url, height, tmp_path)


def _trail_report(browser: Chromium, button_id: str) -> dict[str, Any]:
    """Click a button of the trail consistency form and read the report it produces."""
    browser.evaluate("document.getElementById('audit-report').replaceChildren()")
    browser.evaluate(f"document.getElementById({json.dumps(button_id)}).click()")
    browser.wait_for(
        "!!document.querySelector('#audit-report .report[data-outcome]')",
        what="the trail consistency report",
    )
    report: dict[str, Any] = browser.evaluate(
        """(() => {
          const report = document.querySelector('#audit-report .report[data-outcome]');
          return {outcome: report.dataset.outcome, failed: report.dataset.failedStep,
                  text: report.textContent};
        })()"""
    )
    return report


def _check_trail_consistency(browser: Chromium, node: NodeProcess, fingerprint: str) -> None:
    """The key-usage trail from the checkpoint the ledger anchored to the node's newest one
    (GET /proofs/audit), checked in the browser; then two checkpoints given by number."""
    anchored_head = browser.evaluate(
        f'document.querySelector(\'#anchors-body tr[data-fingerprint="{fingerprint}"] '
        "td:nth-child(3)').textContent"
    )
    report = _trail_report(browser, "verify-audit-anchored")
    assert report["outcome"] == "verified", report["text"]
    assert "every step passed" in report["text"], report["text"]
    for step in ("record chain", "final head = to.head", "anchored in the ledger"):
        assert step in report["text"], (step, report["text"])
    assert f"{fingerprint}: the member key of this node" in report["text"]
    assert browser.evaluate("document.getElementById('audit-from').value") == str(
        int(anchored_head) + 2  # the checkpoint record follows its head and its use record
    )
    trail = node.directory / "audit" / "key-usage.jsonl"
    checkpoints = [
        record["seq"]
        for record in map(json.loads, trail.read_bytes().split(b"\n")[:-1])
        if record["kind"] == "checkpoint"
    ]
    assert len(checkpoints) >= 2, "conftest makes the node checkpoint every few signatures"
    browser.evaluate(
        f"document.getElementById('audit-from').value = '{checkpoints[0]}';"
        f"document.getElementById('audit-to').value = '{checkpoints[-1]}'"
    )
    report = _trail_report(browser, "verify-audit")
    assert report["outcome"] == "verified", report["text"]
    assert f"record {checkpoints[0]} → record {checkpoints[-1]}" in report["text"]
    # Backwards: the node refuses (400) and the page says so instead of verifying anything.
    browser.evaluate(
        f"document.getElementById('audit-from').value = '{checkpoints[-1]}';"
        f"document.getElementById('audit-to').value = '{checkpoints[0]}'"
    )
    report = _trail_report(browser, "verify-audit")
    assert (report["outcome"], report["failed"]) == ("failed", "fetch"), report
    assert "HTTP 400" in report["text"]
    # A record edited in the proof: the page's verifier names the step that broke.
    tampered = browser.evaluate(
        f"""(async () => {{
          const p = (await (await fetch('/proofs/audit?from_seq={checkpoints[0]}&to_seq=' +
            '{checkpoints[-1]}')).json()).data;
          p.records[0].latency_us += 1;  // the use record of from's signature
          return await TLExplorer.verifyAuditProof(p);
        }})()"""
    )
    assert (tampered["ok"], tampered["failed_step"]) == (False, "record chain"), tampered


def _screenshot(browser: Chromium, url: str, height: int, tmp_path: Path) -> None:
    """The page at a block with batches and a verified batch, as a person would see it."""
    browser.navigate(f"{url}/explorer/")
    _page_shows_api_height(browser, url)
    first_block = browser.evaluate("document.querySelector('#blocks-body tr').dataset.blockId")
    _show(browser, f"block/{first_block}")
    browser.evaluate("document.getElementById('verify-block').click()")
    browser.wait_for("!!document.querySelector('#detail .report')", what="a block report")
    browser.wait_for("!!document.querySelector('#anchors-body button.verify')", what="anchors")
    browser.evaluate("document.querySelector('#anchors-body button.verify').click()")
    browser.wait_for("!!document.querySelector('#anchors-report .report')", what="an anchor report")
    path = tmp_path / "explorer.png"
    data = browser.screenshot(path)
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert height >= 2
    if os.environ.get("TL_EXPLORER_SCREENSHOT") == "1":
        target = REPO / "docs" / "img" / "explorer.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, target)


def test_members_panel_follows_the_on_chain_membership(
    node: NodeProcess, browser: Chromium
) -> None:
    """An admin writes ``tl.consensus.members`` (the node's own key, named): the page
    switches its Members panel to the on-chain list and checks certificates against it."""
    url = node.url
    admin = SigningKey.from_hex((node.directory / "keys" / "admin.priv").read_text().strip())
    node_key = _api(url, "/status")["data"]["node"]
    value = encode_members_setting(
        [ChainMember("bank-explorer", PublicKey.from_spki(bytes.fromhex(node_key["public_key"])))]
    )
    inputs, outputs = settings.settings_addresses(MEMBERS_SETTING)
    proposal = TransactionBuilder(admin, settings.FAMILY_NAME, settings.FAMILY_VERSION).build(
        settings.propose_payload(MEMBERS_SETTING, value, "explorer-test"),
        inputs=inputs,
        outputs=outputs,
    )
    _commit(url, [build_batch(admin, [proposal])])
    # The membership takes effect from the next block: commit one more on top of it.
    later = _asset_batch(SigningKey.generate(), asset.create_operation("GBP", "currency", 2))
    found = _commit(url, [later])

    browser.navigate(f"{url}/explorer/")
    browser.wait_for(
        "document.getElementById('members-source').textContent.includes('on chain')",
        what="the on-chain membership",
    )
    names = browser.evaluate(
        "[...document.querySelectorAll('#members-body tr')].map((r) => "
        "[r.querySelector('th').textContent, r.dataset.fingerprint])"
    )
    assert names == [["bank-explorer", node_key["fingerprint"]]]
    _show(browser, f"batch/{later.header_signature}")
    report = _click_verify(browser, "#detail")
    assert report["outcome"] == "verified", report["text"]
    assert "bank-explorer" in report["text"] and "tl.consensus.members" in report["text"]
    assert found[later.header_signature]["block_num"] > 0
    assert browser.problems() == []
