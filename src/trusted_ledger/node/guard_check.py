"""The node's signing guards, cross-checked against what its keys are known to have signed.

A guard refuses to sign at or below its watermark, so it is only as good as its file. Put
back an older, genuine copy of that file (a restore from backup, which is what a missing
guard's own error message suggests; a reverted VM snapshot; a careless copy) and the
watermark is lower than positions the key has already signed: the key could sign there
again, with another digest. The guard cannot see that by itself (docs/roadmap-custody.md
item 1); two other records of this node can:

- the key-usage trail, which holds every guarded signature with its position and digest
  (``custody.newest_signed_positions`` reads its last few MiB);
- the chain, whose blocks carry the proposer's signature at (height, round, propose) and
  whose commit certificates carry commit votes at (height, round, precommit).

``check_at_start`` raises each guard of the node's key ring to the newest position the
trail shows for its key, and to the newest of its signatures in the chain's last blocks;
``GuardCheck.committed`` repeats the chain check for every block committed afterwards, by
consensus or by catch-up, so a node restored whole from an old snapshot (chain, trail and
guard all old) raises its guard from the certificates as it catches up, before it reaches
the height at which it signs again.

Evidence from the trail raises the guard to exactly that position and digest (so the same
message may still be re-signed, as after a crash). Evidence from the chain *seals* the
height: a committed height is never signed at again (the node signs only above its head),
so the guard goes to (height, last round, last step). Raising only ever refuses more; it
cannot cause a signature. Each raise is logged at error level (``guard.raised``: a guard
behind its key's own signatures means something put back an old file) and counted in
``tl_custody_guard_raised_total{source}``.

What stays out of reach: a signature that is in neither record, such as a vote of the last
height before a whole-node snapshot revert that never made it into a certificate. The
operator's rule (docs/operations.md §8) stays: never restore a guard file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trusted_ledger.chain.block import Block
from trusted_ledger.chain.certificate import CommitCertificate
from trusted_ledger.chain.signing import STEP_COMMIT_VOTE, STEP_PROPOSE, ChainSigner
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.custody import (
    Position,
    SigningGuard,
    Watermark,
    newest_signed_positions,
)
from trusted_ledger.custody.guard import DIGEST_BYTES, ROUND_MAX, STEP_MAX
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import CUSTODY_GUARD_RAISED_TOTAL

log = get_logger("node.guard_check")

start_blocks_checked = 64
"""How many of the newest blocks the start-up check reads for the keys' signatures."""


@dataclass(frozen=True)
class GuardedKey:
    fingerprint: str
    guard: SigningGuard


def guarded_keys(signers: Sequence[ChainSigner]) -> list[GuardedKey]:
    """The keys of a node key ring (``NodeKeyRing.signers``) that have a guard."""
    found = []
    for signer in signers:
        guard = getattr(signer, "guard", None)
        if isinstance(guard, SigningGuard):
            found.append(GuardedKey(signer.public_key.fingerprint, guard))
    return found


@dataclass(frozen=True)
class StartCheck:
    raised: int
    """Guards raised."""
    trail_height: int
    """The highest height at which the trail shows a key of this node signed (-1: none).
    A single node whose chain ends more than one height below it lost blocks it made and
    committed: node/runtime.py refuses to start rather than sign a different block at a
    height it signed already (one height below is a block signed but not committed when the
    node stopped, which the publisher signs again in a later round)."""


class GuardCheck:
    """Raises the node's guards on evidence; see the module's docstring."""

    def __init__(self, keys: Sequence[GuardedKey]) -> None:
        self._keys = {key.fingerprint: key for key in keys}

    def check_at_start(self, store: ChainStore, trail_path: Path) -> StartCheck:
        """The trail's tail and the chain's newest blocks: guards raised, and the highest
        height at which the trail shows one of the keys signed."""
        raised = 0
        trail_height = -1
        trail = newest_signed_positions(trail_path, list(self._keys))
        for fingerprint, (position, digest_hex) in trail.items():
            try:
                watermark = Watermark(Position(*position), bytes.fromhex(digest_hex))
            except ValueError:
                continue  # not hex, or a position out of range: not evidence
            if len(watermark.digest) == DIGEST_BYTES:
                raised += self._raise(fingerprint, watermark, watermark.position, "trail")
                trail_height = max(trail_height, watermark.position.height)
        head = store.head
        if head is not None:
            low = max(0, head.number - start_blocks_checked + 1)
            for number in range(head.number, low - 1, -1):
                block = store.block_at(number)
                if block is None:
                    break
                raised += self.committed(block, store.certificate(block.id))
        return StartCheck(raised, trail_height)

    def committed(self, block: Block, certificate: CommitCertificate | None) -> int:
        """Raise a guard whose key signed ``block`` (as proposer or in its certificate)
        above its watermark; the number raised."""
        evidence: dict[str, Position] = {}
        proposer = block.header.proposer.fingerprint
        if proposer in self._keys:
            evidence[proposer] = Position(block.number, block.header.consensus_round, STEP_PROPOSE)
        if certificate is not None and certificate.height == block.number:
            for vote in certificate.votes:
                voter = vote.member_fingerprint.hex()
                if voter in self._keys:
                    vote_position = Position(
                        block.number, certificate.consensus_round, STEP_COMMIT_VOTE
                    )
                    evidence[voter] = max(evidence.get(voter, vote_position), vote_position)
        sealed = Watermark(Position(block.number, ROUND_MAX, STEP_MAX), bytes(DIGEST_BYTES))
        return sum(
            self._raise(fingerprint, sealed, position, "chain")
            for fingerprint, position in evidence.items()
        )

    def _raise(self, fingerprint: str, to: Watermark, signed: Position, source: str) -> int:
        guard = self._keys[fingerprint].guard
        current = guard.watermark
        if current is not None and signed <= current.position:
            return 0  # the guard knows of this signature (the normal case)
        if not guard.raise_to(to):
            return 0
        CUSTODY_GUARD_RAISED_TOTAL.labels(source=source).inc()
        log.error(
            "guard.raised",
            key=fingerprint[:16],
            source=source,
            signed=signed.as_list(),
            watermark_was=None if current is None else current.position.as_list(),
            watermark=to.position.as_list(),
            hint="the guard file is older than the key's own signatures: find out what put "
            "it back; it has been raised, nothing was signed",
        )
        return 1
