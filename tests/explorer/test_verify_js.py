"""The explorer's JavaScript verifier (verify.js, proofs.js) in real Chromium, against known
answers and against the Python verifier.

- Known answers: the chain vectors (header fields, block ids, proposer signatures, commit
  vote digests and certificate votes of docs/formats.md §6) and every RFC 6962 inclusion
  proof of tests/vectors/merkle_proofs.json, recomputed by the page's code.
- Differential: real proofs from a running node (batch, transaction, state present and
  absent) and a few hundred one-field mutations of them (a flipped hex digit, an integer off
  by one, a missing, extra or upper-case field) are judged by ``chain.proof_verify`` and by
  the page; both must accept exactly the same documents.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.explorer.cdp import Chromium
from tests.node.support import NodeProcess, post_batches, request, statuses
from trusted_ledger.chain.certificate import Membership
from trusted_ledger.chain.proof_verify import verify_proof
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import ProofMalformed, ProofRejected
from trusted_ledger.processing.families import asset
from trusted_ledger.txn import Batch, SigningKey, TransactionBuilder, build_batch

pytestmark = pytest.mark.hsm

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
MUTATION_SEED = 7
MUTATIONS_PER_HEX_FIELD = 3


def _open_page(node: NodeProcess, browser: Chromium) -> None:
    browser.navigate(f"{node.url}/explorer/")
    browser.wait_for("!!(globalThis.TLProofs && globalThis.TLExplorer)", what="the page's code")


def test_chain_vectors_in_the_browser(node: NodeProcess, browser: Chromium) -> None:
    _open_page(node, browser)
    cases = json.loads((VECTORS / "chain" / "chain_vectors.json").read_text())["cases"]
    results = browser.evaluate(
        """(async (cases) => {
          const V = TLVerify, P = TLProofs;
          const out = [];
          for (const c of cases) {
            const headerBytes = V.hexToBytes(c.header);
            const h = await P.decodeHeader(headerBytes);
            const blockId = V.bytesToHex(await V.sha256(headerBytes));
            let proposer = "ok";
            try {
              await V.verifySignature(h.proposer.algorithm, h.proposer.spki,
                V.hexToBytes(c.proposer_signature), headerBytes);
            } catch (err) { proposer = err.message; }
            const cert = P.decodeCertificate(V.hexToBytes(c.certificate.certificate));
            const preimage = P.votePreimage(cert.chain_id, cert.height, cert.round, cert.block_id);
            const members = new Map();
            for (const spki of c.certificate.members_spki_der) {
              members.set(await V.fingerprint(V.hexToBytes(spki)), V.hexToBytes(spki));
            }
            const votes = [];
            for (const vote of cert.votes) {
              try {
                await V.verifySignature("ec-p256", members.get(vote.fingerprint), vote.signature,
                  preimage);
                votes.push("ok");
              } catch (err) { votes.push(err.message); }
            }
            out.push({
              fields: {chain_id: h.chain_id, number: h.number,
                previous_block_id: h.previous_block_id, state_root: V.bytesToHex(h.state_root),
                batch_root: V.bytesToHex(h.batch_root), timestamp_ms: h.timestamp_ms,
                consensus_round: h.consensus_round, batch_count: h.batch_count},
              algorithm: h.proposer.algorithm, spki: V.bytesToHex(h.proposer.spki),
              block_id: blockId, proposer, votes,
              vote_digest: V.bytesToHex(await V.sha256(preimage)),
              certified_block: V.bytesToHex(cert.block_id),
              quorum: P.quorum(c.certificate.members_spki_der.length),
            });
          }
          return out;
        })("""
        + json.dumps(cases)
        + ")"
    )
    assert len(results) == len(cases) >= 2
    for case, found in zip(cases, results, strict=True):
        assert found["fields"] == case["fields"], case["name"]
        assert found["algorithm"] == case["proposer_key_algorithm"]
        assert found["spki"] == case["proposer_spki_der"]
        assert found["block_id"] == case["block_id"] == found["certified_block"]
        assert found["proposer"] == "ok"
        assert found["vote_digest"] == case["certificate"]["vote_digest"]
        assert found["votes"] and set(found["votes"]) == {"ok"}
        assert len(found["votes"]) >= found["quorum"]


def test_merkle_vectors_in_the_browser(node: NodeProcess, browser: Chromium) -> None:
    _open_page(node, browser)
    vectors = json.loads((VECTORS / "merkle_proofs.json").read_text())
    found = browser.evaluate(
        """(async (v) => {
          const V = TLVerify;
          const leaves = v.leaves_hex.map((h) => V.hexToBytes(h));
          const roots = [];
          for (let n = 0; n <= leaves.length; n += 1) {
            roots.push(V.bytesToHex(await V.merkleRoot(leaves.slice(0, n))));
          }
          const paths = [];
          for (const p of v.sha256.inclusion) {
            const leaf = await V.merkleLeafHash(leaves[p.index]);
            const root = await V.rootFromInclusionPath(p.index, p.tree_size, leaf,
              p.path_hex.map((h) => V.hexToBytes(h)));
            let short = "accepted";
            try {  // one hash fewer than the algorithm consumes must be refused
              if (p.path_hex.length) {
                await V.rootFromInclusionPath(p.index, p.tree_size, leaf,
                  p.path_hex.slice(1).map((h) => V.hexToBytes(h)));
              } else { short = "refused"; }
            } catch (err) { short = "refused"; }
            paths.push([V.bytesToHex(root), short]);
          }
          return {roots, paths};
        })("""
        + json.dumps(vectors)
        + ")"
    )
    assert found["roots"] == vectors["sha256"]["roots_hex"]
    expected = [
        [vectors["sha256"]["roots_hex"][p["tree_size"]], "refused"]
        for p in vectors["sha256"]["inclusion"]
    ]
    assert found["paths"] == expected


# --- differential: the page's verifier against chain.proof_verify ---------------------------


def _asset_batch(key: SigningKey, operation: asset.AssetOperation) -> Batch:
    builder = TransactionBuilder(key, asset.FAMILY_NAME, asset.FAMILY_VERSION)
    return build_batch(
        key, [builder.build(operation.payload, inputs=operation.inputs, outputs=operation.outputs)]
    )


def _flip_digit(text: str, rng: random.Random) -> str:
    at = rng.randrange(len(text))
    return text[:at] + format(int(text[at], 16) ^ rng.randrange(1, 16), "x") + text[at + 1 :]


def _mutations(proof: dict[str, Any], rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """One-field changes of ``proof``, each labelled."""
    made: list[tuple[str, dict[str, Any]]] = []

    def variant(label: str, change: Any) -> None:
        copied = copy.deepcopy(proof)
        change(copied)
        made.append((label, copied))

    def labels(doc: dict[str, Any], prefix: str) -> list[str]:
        """Every leaf value's label: ``block.header``, ``path[2]``, ``index``."""
        found: list[str] = []
        for key, value in doc.items():
            if isinstance(value, dict):
                found += labels(value, f"{prefix}{key}.")
            elif isinstance(value, list):
                found += [f"{prefix}{key}[{i}]" for i in range(len(value))]
            else:
                found.append(f"{prefix}{key}")
        return found

    for label in labels(proof, ""):
        value = _lookup(proof, label)
        if isinstance(value, str) and value and all(c in "0123456789abcdef" for c in value):
            for n in range(MUTATIONS_PER_HEX_FIELD):
                variant(f"{label} digit {n}", _setter(label, lambda v: _flip_digit(v, rng)))
            variant(f"{label} upper-case", _setter(label, str.upper))
            variant(f"{label} truncated", _setter(label, lambda v: v[:-2]))
        elif isinstance(value, int) and not isinstance(value, bool):
            variant(f"{label} + 1", _setter(label, lambda v: v + 1))
            if value > 0:
                variant(f"{label} - 1", _setter(label, lambda v: v - 1))
    for key in proof:
        variant(f"without {key}", lambda p, k=key: p.pop(k))
    variant("unknown field", lambda p: p.update(note="trust me"))
    variant("unknown block field", lambda p: p["block"].update(note="trust me"))
    return made


def _lookup(doc: Any, label: str) -> Any:
    for part in label.replace("[", ".[").split("."):
        doc = doc[int(part[1:-1])] if part.startswith("[") else doc[part]
    return doc


def _setter(label: str, change: Any) -> Any:
    parts = label.replace("[", ".[").split(".")

    def apply(doc: Any) -> None:
        for part in parts[:-1]:
            doc = doc[int(part[1:-1])] if part.startswith("[") else doc[part]
        last = parts[-1]
        key: Any = int(last[1:-1]) if last.startswith("[") else last
        doc[key] = change(doc[key])

    return apply


def _python_accepts(proof: dict[str, Any], membership: Membership) -> bool:
    try:
        verify_proof(proof, membership)
    except (ProofMalformed, ProofRejected):
        return False
    return True


def test_page_and_python_verifiers_agree(node: NodeProcess, browser: Chromium) -> None:
    url = node.url
    issuer, alice = SigningKey.generate(), SigningKey.generate()
    batches = [
        _asset_batch(issuer, asset.create_operation("CHF", "currency", 2)),
        _asset_batch(issuer, asset.issue_operation("CHF", alice.public_key_hex, 500)),
        _asset_batch(issuer, asset.issue_operation("CHF", issuer.public_key_hex, 70)),
    ]
    status, body = post_batches(url, batches)
    assert status == 202, body
    final = statuses(url, [b.header_signature for b in batches], wait_s=30)
    assert {entry["status"] for entry in final.values()} == {"COMMITTED"}

    node_key = request(f"{url}/status")[1]["data"]["node"]["public_key"]
    membership = Membership([PublicKey.from_spki(bytes.fromhex(node_key))])
    absent = asset.holding_address("CHF", SigningKey.generate().public_key_hex)
    sources = {
        "verifyBatchProof": f"/proofs/batches/{batches[1].header_signature}",
        "verifyTransactionProof": (
            f"/proofs/transactions/{batches[2].transactions[0].header_signature}"
        ),
        "verifyStateProof": f"/proofs/state/{asset.holding_address('CHF', alice.public_key_hex)}",
        "verifyStateProof ": f"/proofs/state/{absent}",  # a proof of absence
    }
    _open_page(node, browser)
    rng = random.Random(MUTATION_SEED)
    checked = 0
    for verifier, path in sources.items():
        status, body = request(f"{url}{path}")
        assert status == 200, body
        original = body["data"]
        documents = [("as sent", original), *_mutations(original, rng)]
        python = [_python_accepts(doc, membership) for _, doc in documents]
        page = browser.evaluate(
            """(async (name, documents) => {
              const options = await TLExplorer.proofOptions(documents[0]);
              const out = [];
              for (const d of documents) out.push((await TLProofs[name](d, options)).ok);
              return out;
            })("""
            + f"{json.dumps(verifier.strip())}, {json.dumps([d for _, d in documents])})"
        )
        assert python[0] and page[0], (verifier, "the untouched proof must verify")
        disagreements = [
            (label, py, js)
            for (label, _), py, js in zip(documents, python, page, strict=True)
            if py != js
        ]
        assert disagreements == [], (verifier, disagreements[:5])
        assert python.count(True) < len(python) / 4  # nearly every mutation is caught
        checked += len(documents)
    assert checked > 200
    assert browser.problems() == []
