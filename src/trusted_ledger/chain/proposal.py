"""Building and signing blocks: proposals at a guarded position, and the genesis block.

A proposal is signed at (height, round, propose step). After a crash between signing and
committing, the guard holds a watermark at that height; a fresh proposal there (a new
timestamp, other batches) is a different block, which the guard refuses in the same round.
The proposer then moves to the next round - exactly what BFT consensus does after a failed
round - so a restarted single node never needs its guard file edited.
"""

from __future__ import annotations

from collections.abc import Sequence

from trusted_ledger.chain.block import GENESIS_PREVIOUS_ID, Block, BlockHeader, batch_root
from trusted_ledger.chain.certificate import CommitCertificate, sign_commit_vote
from trusted_ledger.chain.signing import PURPOSE_BLOCK, ChainSigner, proposal_position
from trusted_ledger.errors import ProposalRefused, SigningRefused
from trusted_ledger.hashing import sha256
from trusted_ledger.state import StateUpdate
from trusted_ledger.txn import Batch

proposal_rounds_max = 64
"""Rounds tried at one height before giving up: each crash mid-proposal costs one round."""


def sign_proposal(
    signer: ChainSigner,
    *,
    chain_id: str,
    number: int,
    previous_block_id: bytes,
    state_root: bytes,
    batches: Sequence[Batch],
    timestamp_ms: int,
    first_round: int = 0,
) -> Block:
    """A block signed by ``signer`` in the first round (from ``first_round``) the guard allows."""
    root = batch_root(batches)
    refusal: SigningRefused | None = None
    for consensus_round in range(first_round, first_round + proposal_rounds_max):
        header = BlockHeader(
            chain_id=chain_id,
            number=number,
            previous_block_id=previous_block_id,
            state_root=state_root,
            batch_root=root,
            proposer=signer.public_key,
            timestamp_ms=timestamp_ms,
            consensus_round=consensus_round,
            batch_count=len(batches),
        )
        header_bytes = header.encode()
        block_id = sha256(header_bytes)
        try:
            signature = signer.sign(
                block_id, purpose=PURPOSE_BLOCK, position=proposal_position(number, consensus_round)
            )
        except SigningRefused as exc:
            refusal = exc
            continue
        return Block(header, header_bytes, signature.raw, tuple(batches))
    raise ProposalRefused(
        f"the signing guard refused a proposal at height {number} in rounds {first_round}.."
        f"{first_round + proposal_rounds_max - 1} (last: {refusal})",
        hint="inspect the guard watermark; this node may be running twice",
    )


def single_node_certificate(signer: ChainSigner, block: Block) -> CommitCertificate:
    """The commit certificate of a membership of one: this node's own vote."""
    header = block.header
    vote = sign_commit_vote(
        signer, header.chain_id, header.number, header.consensus_round, block.id
    )
    return CommitCertificate.from_votes(
        header.chain_id, header.number, header.consensus_round, block.id, [vote]
    )


def build_genesis(
    signer: ChainSigner, chain_id: str, initial_state: StateUpdate, timestamp_ms: int
) -> tuple[Block, CommitCertificate]:
    """Block 0 over ``initial_state`` (no batches), certified by ``signer`` alone.

    A consortium's genesis carries the founding members' votes instead; single-node mode
    is the membership of one.
    """
    block = sign_proposal(
        signer,
        chain_id=chain_id,
        number=0,
        previous_block_id=GENESIS_PREVIOUS_ID,
        state_root=initial_state.root,
        batches=(),
        timestamp_ms=timestamp_ms,
    )
    return block, single_node_certificate(signer, block)
