"""node/guard_check.py at start-up: a guard behind what the trail or the chain shows its key
signed is raised, exactly to the trail's position and digest, or sealing a chain height;
a guard that knows better is left alone, and the evidence of other keys is ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.chain.conftest import GENESIS_MS, Node, make_node
from tests.unit.chain.support import BatchFactory
from trusted_ledger.custody import AuditLog, Position, SigningGuard, Watermark
from trusted_ledger.custody.guard import ROUND_MAX, STEP_MAX
from trusted_ledger.errors import SigningRefused
from trusted_ledger.node.guard_check import GuardCheck, GuardedKey
from trusted_ledger.observability.metrics import REGISTRY


def _raised(source: str) -> float:
    value = REGISTRY.get_sample_value("tl_custody_guard_raised_total", {"source": source})
    return value or 0.0


def _chain(blocks: int) -> Node:
    node = make_node()
    factory = BatchFactory()
    for i in range(blocks):
        node.pool.add(factory.batch(f"set k{i} {i}"), GENESIS_MS)
        assert node.publisher.publish(GENESIS_MS + 1000 * (i + 1)) is not None
    return node


def _trail(path: Path, key: str, positions: list[list[int]]) -> list[bytes]:
    log = AuditLog(path)
    digests = []
    for i, position in enumerate(positions):
        digest = bytes([i + 1]) * 32
        log.record_use(
            key_fingerprint=key, purpose="block", digest=digest, position=position,
            result="ok", error=None, latency_us=1,
        )  # fmt: skip
        digests.append(digest)
    log.close()
    return digests


def test_a_guard_behind_the_chain_seals_the_newest_height_its_key_signed(
    tmp_path: Path,
) -> None:
    node = _chain(3)  # the node's key proposed and certified blocks 1..3
    key = node.signer.public_key.fingerprint
    guard = SigningGuard.create(tmp_path / "guard", key)  # an old copy: never signed
    guard.raise_to(Watermark(Position(1, 0, 1), bytes(32)))
    before = _raised("chain")
    check = GuardCheck([GuardedKey(key, guard)])
    found = check.check_at_start(node.store, tmp_path / "absent-trail.jsonl")
    assert (found.raised, found.trail_height) == (1, -1)
    assert guard.watermark == Watermark(Position(3, ROUND_MAX, STEP_MAX), bytes(32))
    assert _raised("chain") == before + 1
    with pytest.raises(SigningRefused):
        guard.authorise(Position(3, 5, 1), bytes([9]) * 32)  # a second block at height 3
    # Once raised, the same evidence changes nothing.
    assert check.check_at_start(node.store, tmp_path / "absent-trail.jsonl").raised == 0
    # A guard ahead of the chain (it signed the next height before stopping) is left alone.
    ahead = SigningGuard.create(tmp_path / "ahead", key)
    ahead.raise_to(Watermark(Position(4, 0, 1), bytes([4]) * 32))
    found = GuardCheck([GuardedKey(key, ahead)]).check_at_start(node.store, tmp_path / "x")
    assert found.raised == 0
    assert ahead.watermark == Watermark(Position(4, 0, 1), bytes([4]) * 32)
    # Another key's signatures in the chain are no evidence about this one.
    stranger = SigningGuard.create(tmp_path / "stranger", "ab" * 32)
    assert (
        GuardCheck([GuardedKey("ab" * 32, stranger)])
        .check_at_start(node.store, tmp_path / "x")
        .raised
        == 0
    )
    assert stranger.watermark is None


def test_a_guard_behind_the_trail_is_raised_to_exactly_what_was_signed(tmp_path: Path) -> None:
    node = _chain(1)
    key = node.signer.public_key.fingerprint
    trail = tmp_path / "trail.jsonl"
    digests = _trail(trail, key, [[1, 0, 1], [2, 0, 1], [2, 1, 1], [3, 0, 1]])
    guard = SigningGuard.create(tmp_path / "guard", key)
    guard.raise_to(Watermark(Position(2, 0, 1), digests[1]))  # put back from before height 3
    before = _raised("trail")
    found = GuardCheck([GuardedKey(key, guard)]).check_at_start(node.store, trail)
    assert found.trail_height == 3
    assert guard.watermark == Watermark(Position(3, 0, 1), digests[3])
    assert _raised("trail") == before + 1
    # Exactly: the same message may be signed again (a crash before sending), no other.
    guard.authorise(Position(3, 0, 1), digests[3])
    with pytest.raises(SigningRefused, match="conflicting digest"):
        guard.authorise(Position(3, 0, 1), bytes([99]) * 32)
