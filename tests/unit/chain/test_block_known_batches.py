"""``decode_block(known=...)``: batches this node already verified skip only their secp256k1
checks; any other batch, including one sharing an id with a pooled batch, is verified."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.chain.support import BatchFactory, SoftwareSigner
from trusted_ledger.chain import decode_block, sign_proposal
from trusted_ledger.chain.pool import BatchPool
from trusted_ledger.errors import MalformedBlock
from trusted_ledger.txn import Batch


def _block(batches: list[Batch]) -> bytes:
    return sign_proposal(
        SoftwareSigner(), chain_id="c", number=1, previous_block_id=b"\x01" * 32,
        state_root=b"\x02" * 32, batches=batches, timestamp_ms=5,
    ).encode()  # fmt: skip


def _forged(factory: BatchFactory) -> Batch:
    """A batch carrying another batch's (valid, low-S) signature: only the secp256k1 check
    can tell."""
    victim, donor = factory.batch("set a 1"), factory.batch("set b 2")
    return dataclasses.replace(victim, header_signature=donor.header_signature)


def test_pooled_batches_decode_to_the_fully_verified_block() -> None:
    factory = BatchFactory()
    batches = [factory.batch(f"set k{i} {i}") for i in range(5)]
    pool = BatchPool()
    pool.add_many(batches[:3], now_ms=1)
    data = _block(batches)
    asked: list[str] = []

    def known(batch: Batch) -> bool:
        asked.append(batch.id)
        return pool.holds(batch)

    assert decode_block(data, known=known) == decode_block(data)
    assert asked == [b.id for b in batches]


def test_a_forged_batch_is_refused_with_or_without_known() -> None:
    factory = BatchFactory()
    good = factory.batch("set x 1")
    data = _block([good, _forged(factory)])
    with pytest.raises(MalformedBlock, match=r"batches\[1\].*signature"):
        decode_block(data)
    pool = BatchPool()
    pool.add_many([good], now_ms=1)
    with pytest.raises(MalformedBlock, match=r"batches\[1\].*signature"):
        decode_block(data, known=pool.holds)


def test_known_vouches_only_for_what_it_says() -> None:
    factory = BatchFactory()
    forged = _forged(factory)
    data = _block([forged])
    # The caller's word is taken for exactly the batches it vouches for ...
    assert decode_block(data, known=lambda batch: True).batches == (forged,)
    # ... and not for the others.
    with pytest.raises(MalformedBlock, match="signature"):
        decode_block(data, known=lambda batch: False)


def test_pool_holds_compares_content_not_just_the_id() -> None:
    factory = BatchFactory()
    batch = factory.batch("set a 1")
    pool = BatchPool()
    assert not pool.holds(batch)
    pool.add_many([batch], now_ms=1)
    assert pool.holds(batch)
    assert not pool.holds(dataclasses.replace(batch, trace=not batch.trace))
    pool.remove([batch.id])
    assert not pool.holds(batch)
