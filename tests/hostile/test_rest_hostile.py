"""Hostile submissions through a real API server (aiohttp on a loopback port) over a real
single-node chain (tests/unit/api/support.py): each is refused with the documented status
and message, or - where the chain, not the bytes, decides - never committed, and nothing
already accepted is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.api.support import (
    ALICE,
    api_client,
    batch_of,
    body_of,
    intkey_txn,
    make_chain,
    run,
    usd_setup,
)
from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.txn import (
    DEFAULT_LIMITS,
    Batch,
    BatchHeader,
    BatchList,
    Transaction,
    TransactionBuilder,
)
from trusted_ledger.txn.signing import SECP256K1_ORDER

OCTET = {"Content-Type": "application/octet-stream"}


async def _post(client: Any, body: bytes) -> tuple[int, str]:
    response = await client.post("/batches", data=body, headers=OCTET)
    answer = await response.json()
    return response.status, answer.get("error", {}).get("message", "")


async def _status(client: Any, batch: Batch) -> dict[str, Any]:
    response = await client.get(f"/batch_statuses?id={batch.header_signature}")
    [entry] = (await response.json())["data"]
    return dict(entry)


def test_batch_list_one_batch_over_the_bound_is_400_and_queues_nothing() -> None:
    chain = make_chain()
    bound = DEFAULT_LIMITS.batches_per_list_max
    batches = [batch_of(ALICE, intkey_txn(ALICE, "set", f"k{i}", i)) for i in range(bound + 1)]

    async def scenario() -> None:
        async with api_client(chain) as client:
            status, message = await _post(client, body_of(*batches))
            assert status == 400
            assert f"more than {bound} entries" in message
            assert len(chain.pool) == 0
            status, _ = await _post(client, body_of(*batches[:bound]))  # at the bound: fine
            assert status == 202 and len(chain.pool) == bound

    run(scenario())


def test_batch_with_zero_transactions_is_400() -> None:
    chain = make_chain()
    header = BatchHeader(ALICE.public_key_hex, ())
    header_bytes = header.encode()
    empty = Batch(header, header_bytes, ALICE.sign_header(header_bytes), ())

    async def scenario() -> None:
        async with api_client(chain) as client:
            status, message = await _post(client, BatchList((empty,)).encode())
            assert status == 400 and message.startswith("batch 0")
            assert "transaction" in message
            assert len(chain.pool) == 0

    run(scenario())


def test_high_s_signature_is_400_naming_the_transaction() -> None:
    chain = make_chain()
    good = batch_of(ALICE, intkey_txn(ALICE, "set", "hs", 1))
    original = good.transactions[0]
    r, s = original.header_signature[:64], int(original.header_signature[64:], 16)
    twin = r + f"{SECP256K1_ORDER - s:064x}"  # the same signature's malleable high-S twin
    forged_txn = Transaction(original.header, original.header_bytes, twin, original.payload)
    header = BatchHeader(ALICE.public_key_hex, (twin,))
    header_bytes = header.encode()
    forged = Batch(header, header_bytes, ALICE.sign_header(header_bytes), (forged_txn,))

    async def scenario() -> None:
        async with api_client(chain) as client:
            status, message = await _post(client, BatchList((forged,)).encode())
            assert status == 400
            assert message.startswith("batch 0, transaction 0, header_signature")
            assert "low-S" in message or "high-S" in message or "high S" in message
            assert len(chain.pool) == 0

    run(scenario())


def test_transaction_in_two_batches_commits_once() -> None:
    chain = make_chain()
    txn = intkey_txn(ALICE, "set", "twice", 5)
    first = batch_of(ALICE, txn)
    # The same (pending) transaction again, with another one: a different batch header, so
    # a different batch id; the second batch is queued but can never commit.
    second = batch_of(ALICE, txn, intkey_txn(ALICE, "set", "other", 6))

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert (await _post(client, body_of(first)))[0] == 202
            assert (await _post(client, body_of(second)))[0] == 202
            block = await asyncio.to_thread(chain.publish)
            assert block is not None
            assert block.batch_ids == (first.header_signature,)
            assert (await _status(client, first))["status"] == "COMMITTED"
            entry = await _status(client, second)
            assert entry["status"] == "INVALID", entry
            assert await asyncio.to_thread(chain.publish) is None  # nothing left to commit
            assert len(chain.pool) == 0

    run(scenario())


def test_wrong_family_version_waits_pending_and_is_never_committed() -> None:
    chain = make_chain()
    address = intkey_address("v")
    builder = TransactionBuilder(ALICE, "intkey", "9.9")
    txn = builder.build(intkey_payload("set", "v", 1), inputs=[address], outputs=[address])
    batch = batch_of(ALICE, txn)

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert (await _post(client, body_of(batch)))[0] == 202
            assert await asyncio.to_thread(chain.publish) is None
            entry = await _status(client, batch)
            assert entry["status"] == "PENDING"
            assert "9.9" in str(entry)

    run(scenario())


def test_resubmitting_a_committed_batch_is_400() -> None:
    chain = make_chain()
    create, _ = usd_setup()
    chain.commit(create)

    async def scenario() -> None:
        async with api_client(chain) as client:
            status, message = await _post(client, body_of(create))
            assert status == 400 and "already committed" in message
            assert len(chain.pool) == 0

    run(scenario())
