"""Proofs of batches, transactions and state values, built from a real chain store and
checked by the node-free verifier; every altered field must make verification fail.

Known answers come from outside the code under test: the batch root is recomputed with the
pure-Python RFC 6962 reference, the block id and state root with hashlib."""

from __future__ import annotations

import ast
import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.chain.conftest import GENESIS_MS, GENESIS_STATE, Node
from tests.unit.chain.support import BatchFactory, SoftwareSigner, kv_address
from trusted_ledger.chain import Block, Membership
from trusted_ledger.chain.proof_verify import verify_proof
from trusted_ledger.chain.proofs import batch_proof, state_proof, transaction_proof
from trusted_ledger.errors import ProofMalformed, ProofRejected
from trusted_ledger.hashing import reference

ROOT = Path(__file__).resolve().parents[3]


def _commit(node: Node, *batches: Any, at_ms: int) -> Block:
    for batch in batches:
        node.pool.add(batch, GENESIS_MS)
    block = node.publisher.publish(at_ms)
    assert block is not None and len(block.batches) == len(batches)
    return block


@pytest.fixture
def chain(node: Node, factory: BatchFactory) -> tuple[Node, list[Block]]:
    """Blocks of 1, 3 and 5 batches (tree sizes with odd splits), several transactions."""
    blocks = [
        _commit(node, factory.batch("set a 1", "set b 2"), at_ms=GENESIS_MS + 1),
        _commit(
            node, *(factory.batch(f"set k{i} {i}", f"incr k{i}") for i in range(3)),
            at_ms=GENESIS_MS + 2,
        ),
        _commit(node, *(factory.batch(f"set m{i} {i}") for i in range(5)), at_ms=GENESIS_MS + 3),
    ]  # fmt: skip
    return node, blocks


def test_every_batch_and_transaction_proves_its_place(chain: tuple[Node, list[Block]]) -> None:
    node, blocks = chain
    for block in blocks:
        leaves = [bytes.fromhex(batch_id) for batch_id in block.batch_ids]
        assert reference.merkle_root(leaves) == block.header.batch_root
        for index, batch in enumerate(block.batches):
            proof = batch_proof(node.store, batch.header_signature)
            assert proof is not None
            assert hashlib.sha256(bytes.fromhex(proof["block"]["header"])).digest() == block.id
            hashes = [reference.leaf_hash(leaf) for leaf in leaves]
            assert proof["path"] == [p.hex() for p in reference.inclusion_proof(hashes, index)]
            result = verify_proof(proof, node.membership)
            assert result.facts["index"] == index
            assert (result.facts["block_num"], result.facts["block_id"]) == (
                block.number,
                block.id.hex(),
            )
            assert result.block is not None and result.block.certified
            for position, transaction in enumerate(batch.transactions):
                tproof = transaction_proof(node.store, transaction.header_signature)
                assert tproof is not None
                facts = verify_proof(tproof, node.membership).facts
                assert facts["transaction_index"] == position
                assert facts["batch_index"] == index
                assert facts["family_name"] == "kv"
                assert facts["payload_sha512"] == hashlib.sha512(transaction.payload).hexdigest()
    assert batch_proof(node.store, "00" * 64) is None
    assert transaction_proof(node.store, "00" * 64) is None


def test_state_proofs_at_each_block(chain: tuple[Node, list[Block]]) -> None:
    node, _blocks = chain
    present = state_proof(node.store, kv_address("k1"))
    assert present is not None
    result = verify_proof(present, node.membership)
    assert bytes.fromhex(result.facts["value"]) == b"2"  # set 1 then incr
    assert result.facts["block_num"] == 3
    # At block 1, k1 did not exist yet; at block 0 only genesis state.
    earlier = state_proof(node.store, kv_address("k1"), 1)
    assert earlier is not None and verify_proof(earlier).facts["value"] is None
    genesis = state_proof(node.store, kv_address("genesis"), 0)
    assert genesis is not None
    assert verify_proof(genesis).facts["value"] == GENESIS_STATE[kv_address("genesis")].hex()
    assert state_proof(node.store, kv_address("k1"), 99) is None
    # Claiming another value, or a value for an absent address, is refused.
    lying = dict(present, value=b"3".hex())
    with pytest.raises(ProofRejected, match="value"):
        verify_proof(lying)
    with pytest.raises(ProofRejected, match="value"):
        verify_proof(dict(earlier, value="00"))


def _variants(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every single-field alteration of ``document``: each hex byte's low bit flipped, each
    integer moved by one, each key removed, null turned into a value."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _variants(value, (*path, key))
            yield f"remove {'.'.join(map(str, (*path, key)))}", ("remove", (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _variants(value, (*path, index))
    elif isinstance(document, bool) or document is None:
        yield f"set {path}", ("set", path, "00")
    elif isinstance(document, int):
        for delta in (1, -1):
            yield f"{path} {delta:+d}", ("set", path, document + delta)
    elif isinstance(document, str) and path[-1] not in ("type",):
        raw = bytes.fromhex(document) if len(document) % 2 == 0 else b""
        for offset in range(len(raw)):
            flipped = bytearray(raw)
            flipped[offset] ^= 1
            yield f"{path} byte {offset}", ("set", path, flipped.hex())
        yield f"{path} truncated", ("set", path, document[:-2])


def _apply(document: dict[str, Any], change: Any) -> dict[str, Any]:
    altered = copy.deepcopy(document)
    target: Any = altered
    path = change[1]
    for key in path[:-1]:
        target = target[key]
    if change[0] == "remove":
        del target[path[-1]]
    else:
        target[path[-1]] = change[2]
    return altered


def _assert_every_alteration_fails(proof: dict[str, Any], node: Node) -> int:
    """Every alteration fails, except one that still states a truth: an absence proof stays
    valid for another absent address whose walk stops at the same node (checked against the
    store's own view)."""
    verify_proof(proof, node.membership)
    count = 0
    for name, change in _variants(proof):
        altered = _apply(proof, change)
        try:
            result = verify_proof(altered, node.membership)
        except (ProofRejected, ProofMalformed):
            count += 1
            continue
        assert change[1] == ("address",) and proof["value"] is None, f"verified after: {name}"
        head = node.store.head
        assert head is not None
        assert node.store.state.view(head.state_root).get(result.facts["address"]) is None
    return count


def test_every_alteration_of_every_proof_type_fails(chain: tuple[Node, list[Block]]) -> None:
    node, blocks = chain
    batch = blocks[1].batches[2]
    proofs = [
        batch_proof(node.store, batch.header_signature),
        transaction_proof(node.store, batch.transactions[1].header_signature),
        state_proof(node.store, kv_address("m3")),
        state_proof(node.store, kv_address("absent")),
    ]
    total = 0
    for proof in proofs:
        assert proof is not None
        total += _assert_every_alteration_fails(proof, node)
    assert total > 1000  # every byte of headers, certificates, paths and nodes was tried


def test_membership_decides_what_is_certified(chain: tuple[Node, list[Block]]) -> None:
    node, blocks = chain
    proof = batch_proof(node.store, blocks[0].batch_ids[0])
    assert proof is not None
    unchecked = verify_proof(proof)
    assert unchecked.block is not None and not unchecked.block.certified
    stranger = Membership([SoftwareSigner().public_key])
    with pytest.raises(ProofRejected, match="not a member"):
        verify_proof(proof, stranger)
    # Two members, one vote: below the quorum of 2.
    pair = Membership([node.signer.public_key, SoftwareSigner().public_key])
    with pytest.raises(ProofRejected, match="quorum"):
        verify_proof(proof, pair)
    without = copy.deepcopy(proof)
    without["block"]["certificate"] = None
    verify_proof(without)  # consistent with its header, but nothing vouches for the header
    with pytest.raises(ProofRejected, match="no commit certificate"):
        verify_proof(without, node.membership)


def test_proof_documents_are_plain_json(chain: tuple[Node, list[Block]]) -> None:
    node, blocks = chain
    proof = transaction_proof(node.store, blocks[2].batches[4].transactions[0].header_signature)
    text = json.dumps(proof, sort_keys=True)
    assert verify_proof(json.loads(text), node.membership).facts["batch_index"] == 4
    for name in ("version", "type", "block", "batch_id", "index", "tree_size", "path"):
        assert name in json.loads(text)
    with pytest.raises(ProofMalformed, match="version"):
        verify_proof(dict(json.loads(text), version=2))
    with pytest.raises(ProofMalformed, match="type"):
        verify_proof(dict(json.loads(text), type="receipt"))


def test_verifier_imports_no_store_database_or_node() -> None:
    """The verifier reads documents only: it must not reach storage or anything above."""
    allowed = (
        "trusted_ledger.chain.block", "trusted_ledger.chain.certificate",
        "trusted_ledger.custody.audit", "trusted_ledger.custody.keyspec",
        "trusted_ledger.errors", "trusted_ledger.hashing", "trusted_ledger.state.proofs",
        "trusted_ledger.state.encoding", "trusted_ledger.state.addresses",
        "trusted_ledger.txn", "trusted_ledger.custody.audit_proof",
    )  # fmt: skip
    for relative in (
        "chain/proof_verify.py", "state/proofs.py", "custody/audit_proof.py",
    ):  # fmt: skip
        source = (ROOT / "src/trusted_ledger" / relative).read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.col_offset == 0:
                module = node.module
                if module.startswith("trusted_ledger"):
                    assert module.startswith(allowed), (relative, module)
