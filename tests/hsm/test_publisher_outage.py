"""A long HSM outage must not use up a height's rounds (issue 8 finding).

Each publish attempt while the token is away passes the signing guard (which durably
records the new proposal position before the HSM is asked) and then fails in the HSM. The
retry proposes a block with a new timestamp, so a new digest, which the guard refuses at
the spent position: the publisher moves on to the next round. ``sign_proposal`` tries
``proposal_rounds_max`` (64) rounds from the round it is given; before the fix the single-
node publisher always started from round 0, so after 64 failed attempts at one height every
round in reach was spent and the node could never publish that height again, even after
the HSM came back and after a restart. Real SoftHSM, real guard file; the outage is the
token directory moved away (see tests/faults/test_hsm_softhsm.py). It lives
with the tests/hsm tests because it shares their in-process SoftHSM (the module reads its
configuration once per process).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.hsm.conftest import TokenEnv, shared_pool
from tests.unit.chain.support import BatchFactory, KvExecutor, kv_address
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    CustodyChainSigner,
    build_genesis,
)
from trusted_ledger.chain.proposal import proposal_rounds_max
from trusted_ledger.custody import CustodySigner, KeyAlgorithm, SigningGuard
from trusted_ledger.errors import HsmUnavailable, ProposalRefused
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.storage import MemoryDatabase

pytestmark = [pytest.mark.hsm]
CHAIN_ID = "outage-chain"
FAILED_ATTEMPTS = proposal_rounds_max + 20


def _signer(env: TokenEnv, guard_path: Path, label: str) -> CustodyChainSigner:
    pool = shared_pool(env)
    key = pool.key_info(label)
    guard = (
        SigningGuard.open(guard_path, key.fingerprint)
        if guard_path.exists()
        else SigningGuard.create(guard_path, key.fingerprint)
    )
    return CustodyChainSigner(CustodySigner(pool, label, guard=guard))


def test_an_outage_longer_than_the_round_window_does_not_wedge_the_height(
    softhsm: TokenEnv,
    tmp_path: Path,
) -> None:
    label = f"outage-{uuid.uuid4().hex[:8]}"
    shared_pool(softhsm).generate_key(label, KeyAlgorithm.EC_P256)
    guard_path = tmp_path / "node.guard"
    signer = _signer(softhsm, guard_path, label)
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    initial = store.state.update(EMPTY_ROOT, {kv_address("genesis"): b"1"})
    genesis, certificate = build_genesis(signer, CHAIN_ID, initial, int(time.time() * 1000))
    store.commit(genesis, certificate, initial, {})
    pool = BatchPool()
    pool.add(BatchFactory().batch("set a 1"), 0)
    publisher = BlockPublisher(store, pool, KvExecutor(store.state), signer)

    tokens, away = softhsm.root / "tokens", softhsm.root / "tokens-away"
    tokens.rename(away)
    tokens.mkdir()
    failures = 0
    try:
        for attempt in range(FAILED_ATTEMPTS):
            # The guard records each attempt's position before the pool (backing off or
            # finding no token) fails it: every attempt spends a round.
            with pytest.raises(HsmUnavailable):
                publisher.publish(genesis.header.timestamp_ms + 1 + attempt)
            failures += 1
    finally:
        tokens.rmdir()
        away.rename(tokens)
    watermark = SigningGuard.open(guard_path, signer.public_key.fingerprint).watermark
    assert watermark is not None and watermark.position.height == 1
    spent = watermark.position.round
    assert failures == FAILED_ATTEMPTS

    block = None
    deadline = time.monotonic() + 20
    while block is None:
        try:
            block = publisher.publish(genesis.header.timestamp_ms + 10_000)
        except HsmUnavailable:
            assert time.monotonic() < deadline, "the token did not come back"
            time.sleep(0.05)
    assert block is not None and block.number == 1
    assert block.header.consensus_round > spent

    # A restart (a new publisher and guard opened from the file) far past the window:
    # the next height's spent rounds are skipped window by window, never refused for good.
    pool.add(BatchFactory().batch("set b 2"), 0)
    tokens.rename(away)
    tokens.mkdir()
    try:
        for attempt in range(FAILED_ATTEMPTS):
            with pytest.raises(HsmUnavailable):
                publisher.publish(block.header.timestamp_ms + 1 + attempt)
    finally:
        tokens.rmdir()
        away.rename(tokens)
    deadline = time.monotonic() + 20
    while True:  # the restarted node opens its key once the token answers again
        try:
            reopened = _signer(softhsm, guard_path, label)
            break
        except HsmUnavailable:
            assert time.monotonic() < deadline, "the token did not come back"
            time.sleep(0.05)
    restarted = BlockPublisher(store, pool, KvExecutor(store.state), reopened)
    second = None
    deadline = time.monotonic() + 30
    while second is None:
        try:
            second = restarted.publish(block.header.timestamp_ms + 10_000)
        except HsmUnavailable:
            assert time.monotonic() < deadline, "the token did not come back"
            time.sleep(0.05)
        except ProposalRefused:  # while spent windows are skipped
            assert time.monotonic() < deadline, "the height stays refused"
    assert second.number == 2
