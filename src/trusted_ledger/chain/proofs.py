"""Proof generation from the chain store: batch and transaction inclusion, state values.

Each builder returns the JSON document of docs/formats.md §8 (``proof_verify`` checks it):
the block's header bytes, the proposer's signature over the block id and the commit
certificate, plus the type's own fields. Every hash and signature is lowercase hex.
``None`` from a builder means the thing asked for is not committed on this chain.
"""

from __future__ import annotations

from typing import Any

from trusted_ledger.chain.block import Block, batch_id_bytes
from trusted_ledger.chain.proof_verify import (
    BATCH_PROOF_TYPE,
    PROOF_VERSION,
    STATE_PROOF_TYPE,
    TRANSACTION_PROOF_TYPE,
)
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.errors import ChainCorrupted
from trusted_ledger.hashing import MerkleTree
from trusted_ledger.state.proofs import prove_address

Proof = dict[str, Any]


def block_part(store: ChainStore, block: Block) -> dict[str, Any]:
    """The ``block`` object of a proof."""
    certificate = store.certificate(block.id)
    return {
        "header": block.header_bytes.hex(),
        "proposer_signature": block.proposer_signature.hex(),
        "certificate": None if certificate is None else certificate.encode().hex(),
    }


def _inclusion(block: Block, batch_id: str) -> dict[str, Any]:
    ids = block.batch_ids
    index = ids.index(batch_id)
    tree = MerkleTree.from_leaves([batch_id_bytes(batch) for batch in block.batches])
    proof = tree.inclusion_proof(index)
    return {
        "batch_id": batch_id,
        "index": index,
        "tree_size": tree.size,
        "path": [node.hex() for node in proof.path],
    }


def _committed_block(store: ChainStore, block_id: bytes | None, what: str) -> Block | None:
    if block_id is None:
        return None
    block = store.block(block_id)
    if block is None:  # the index row and the block are written in one batch
        raise ChainCorrupted(f"{what} is indexed to block {block_id.hex()}, which is missing")
    return block


def batch_proof(store: ChainStore, batch_id: str) -> Proof | None:
    """Proof that committed batch ``batch_id`` is in its block; None if not committed."""
    block = _committed_block(store, store.block_id_of_batch(batch_id), f"batch {batch_id}")
    if block is None:
        return None
    return {
        "version": PROOF_VERSION,
        "type": BATCH_PROOF_TYPE,
        "block": block_part(store, block),
        **_inclusion(block, batch_id),
    }


def transaction_proof(store: ChainStore, transaction_id: str) -> Proof | None:
    """Proof that committed transaction ``transaction_id`` is in its batch and block."""
    block = _committed_block(
        store, store.block_id_of_transaction(transaction_id), f"transaction {transaction_id}"
    )
    if block is None:
        return None
    for batch in block.batches:
        ids = batch.header.transaction_ids
        if transaction_id in ids:
            position = ids.index(transaction_id)
            transaction = batch.transactions[position]
            return {
                "version": PROOF_VERSION,
                "type": TRANSACTION_PROOF_TYPE,
                "block": block_part(store, block),
                **_inclusion(block, batch.header_signature),
                "batch_header": batch.header_bytes.hex(),
                "transaction_id": transaction_id,
                "transaction_index": position,
                "transaction_header": transaction.header_bytes.hex(),
            }
    raise ChainCorrupted(f"transaction {transaction_id} is indexed to a block without it")


def state_proof(store: ChainStore, address: str, block_number: int | None = None) -> Proof | None:
    """Proof of the value at ``address`` (or its absence) as of block ``block_number``
    (default: the head); None when there is no such block."""
    if block_number is None:
        head = store.head
        block = None if head is None else store.block(head.block_id)
    else:
        block = store.block_at(block_number)
    if block is None:
        return None
    nodes = prove_address(store.state, block.header.state_root, address)
    value = store.state.view(block.header.state_root).get(address)
    return {
        "version": PROOF_VERSION,
        "type": STATE_PROOF_TYPE,
        "block": block_part(store, block),
        "address": address,
        "value": None if value is None else value.hex(),
        "nodes": [node.hex() for node in nodes],
    }
