"""The toy application the simulated consortium agrees on.

Consensus does not care what a block holds, only that every honest node can check it and
ends up with the same state; so the simulated block is the least that still exercises the
contract: (chain id, height, round, parent id, proposer, payload), identified by the
SHA-256 of a canonical encoding that includes the chain id, height and round (two blocks
with the same payload at two heights must have two ids). The "state" is a hash chain of
payloads: state root(h) = SHA-256(state root(h - 1) || payload(h)), so honest nodes' roots
agree exactly when they executed the same blocks in the same order.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from trusted_ledger.chain.certificate import CommitCertificate

BLOCK_ID_BYTES = 32
GENESIS_ID = bytes(BLOCK_ID_BYTES)
"""Parent id of the block at height 1."""
GENESIS_STATE_ROOT = bytes(32)
payload_bytes_max = 256
"""Largest toy payload: big enough to tell blocks apart, small enough to gossip freely."""

_MAGIC = b"TLSIMBLK"
_FIXED = struct.Struct(">8sB")


@dataclass(frozen=True, slots=True)
class SimBlock:
    chain_id: str
    height: int
    round: int
    parent_id: bytes
    proposer: bytes
    payload: bytes

    def encode(self) -> bytes:
        """Canonical bytes: every variable-length field is length-prefixed, so no two blocks
        share an encoding."""
        chain = self.chain_id.encode("ascii")
        return b"".join(
            (
                _FIXED.pack(_MAGIC, len(chain)),
                chain,
                struct.pack(">QI", self.height, self.round),
                self.parent_id,
                struct.pack(">B", len(self.proposer)),
                self.proposer,
                struct.pack(">H", len(self.payload)),
                self.payload,
            )
        )

    @property
    def block_id(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


def next_state_root(previous_root: bytes, payload: bytes) -> bytes:
    return hashlib.sha256(previous_root + payload).digest()


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    """What a node's disk holds per height: the block, its certificate, the state after it."""

    block: SimBlock
    certificate: CommitCertificate
    state_root: bytes

    @property
    def height(self) -> int:
        return self.block.height
