"""POST /batches and /batch_statuses against a real chain: acceptance, refusals, statuses."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.unit.api.support import (
    ISSUER,
    api_client,
    asset_txn,
    batch_of,
    body_of,
    make_chain,
    run,
    transfer,
    usd_setup,
)
from trusted_ledger.api import app as api_app
from trusted_ledger.chain import BatchPool
from trusted_ledger.processing.families import asset
from trusted_ledger.txn import Batch, BatchHeader, Transaction, TxnLimits

OCTET = {"Content-Type": "application/octet-stream"}


async def _post(client: object, *batches: Batch) -> tuple[int, dict[str, object]]:
    response = await client.post("/batches", data=body_of(*batches), headers=OCTET)  # type: ignore[attr-defined]
    return response.status, await response.json()


def _ids(*batches: Batch) -> str:
    return ",".join(b.header_signature for b in batches)


def test_submit_publish_then_committed_with_block() -> None:
    chain = make_chain()
    setup = usd_setup()

    async def scenario() -> None:
        async with api_client(chain) as client:
            status, answer = await _post(client, *setup)
            assert status == 202
            link = str(answer["link"])
            assert link.endswith(f"/batch_statuses?id={_ids(*setup)}")
            assert [p.batch.header_signature for p in chain.pool.candidates(10, 10**9)] == [
                b.header_signature for b in setup
            ]
            assert chain.wakes == [2]  # the publisher was woken once, after the pool took both

            pending = await (await client.get(link[link.index("/batch_statuses") :])).json()
            assert [s["status"] for s in pending["data"]] == ["PENDING", "PENDING"]
            assert all("block_id" not in s for s in pending["data"])

            block = await asyncio.to_thread(chain.publish)
            assert block is not None and block.number == 1
            done = await (await client.get(f"/batch_statuses?id={_ids(*setup)}")).json()
            for entry, batch in zip(done["data"], setup, strict=True):
                assert entry == {
                    "id": batch.header_signature,
                    "status": "COMMITTED",
                    "invalid_transactions": [],
                    "block_id": block.id.hex(),
                    "block_num": 1,
                }

    run(scenario())


def test_wait_is_woken_by_a_commit_in_another_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the periodic re-check pushed out of reach, only the wake-up can end the wait early.
    monkeypatch.setattr(api_app, "status_recheck_seconds", 30.0)
    chain = make_chain()
    setup = usd_setup()

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert (await _post(client, *setup))[0] == 202

            def publish_later() -> None:
                time.sleep(0.2)
                chain.publish()

            publisher = threading.Thread(target=publish_later)
            started = time.monotonic()
            publisher.start()
            response = await client.get(f"/batch_statuses?id={_ids(*setup)}&wait=20")
            elapsed = time.monotonic() - started
            publisher.join()
            answer = await response.json()
            assert [s["status"] for s in answer["data"]] == ["COMMITTED", "COMMITTED"]
            assert 0.15 < elapsed < 5

    run(scenario())


def test_wait_rechecks_without_a_wake_and_times_out() -> None:
    chain = make_chain()
    setup = usd_setup()

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert (await _post(client, *setup))[0] == 202
            # Commit without telling the API: the periodic re-check finds it.
            thread = threading.Thread(
                target=lambda: (time.sleep(0.1), chain.publisher.publish(chain.now_ms + 1000))
            )
            thread.start()
            started = time.monotonic()
            answer = await (await client.get(f"/batch_statuses?id={_ids(*setup)}&wait=10")).json()
            thread.join()
            assert [s["status"] for s in answer["data"]] == ["COMMITTED", "COMMITTED"]
            assert time.monotonic() - started < 3
            # An unknown batch never becomes final: the wait ends at its bound.
            unknown = "ab" * 64
            started = time.monotonic()
            answer = await (await client.get(f"/batch_statuses?id={unknown}&wait=0.3")).json()
            assert answer["data"][0]["status"] == "UNKNOWN"
            assert 0.25 < time.monotonic() - started < 3

    run(scenario())


def test_invalid_batch_reports_its_reason() -> None:
    chain = make_chain()
    chain.commit(*usd_setup())
    too_much = transfer(1000)

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert (await _post(client, too_much))[0] == 202
            assert await asyncio.to_thread(chain.publish) is None  # nothing valid to commit
            body = f'["{too_much.header_signature}"]'
            response = await client.post(
                "/batch_statuses", data=body, headers={"Content-Type": "application/json"}
            )
            [entry] = (await response.json())["data"]
            assert entry["status"] == "INVALID"
            [invalid] = entry["invalid_transactions"]
            assert "insufficient balance: 100 < 1000" in invalid["message"]
            assert invalid["id"] == too_much.transactions[0].header_signature
            assert "block_id" not in entry

    run(scenario())


def test_garbage_and_bad_signature_are_400_naming_the_place() -> None:
    chain = make_chain()
    good, _ = usd_setup()
    signature = good.transactions[0].header_signature
    forged_signature = ("0" if signature[0] != "0" else "1") + signature[1:]
    original = good.transactions[0]
    forged_transaction = Transaction(
        original.header, original.header_bytes, forged_signature, original.payload
    )
    # Signed around the forged transaction (build_batch would refuse to: it checks).
    header = BatchHeader(ISSUER.public_key_hex, (forged_signature,))
    header_bytes = header.encode()
    forged = Batch(header, header_bytes, ISSUER.sign_header(header_bytes), (forged_transaction,))

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.post("/batches", data=b"\xff\x00garbage", headers=OCTET)
            assert response.status == 400
            error = (await response.json())["error"]
            assert error["code"] == 400 and error["title"] == "Bad Request"
            assert "malformed protobuf" in error["message"] or "field" in error["message"]

            status, answer = await _post(client, good, forged)
            assert status == 400
            message = answer["error"]["message"]  # type: ignore[index]
            assert message.startswith("batch 1, transaction 0, header_signature")
            assert len(chain.pool) == 0  # all or nothing: the good batch is not queued either

    run(scenario())


def test_content_type_and_size_bounds() -> None:
    limits = TxnLimits(batch_list_bytes_max=2000)
    chain = make_chain(limits=limits)
    big = batch_of(
        ISSUER,
        *(asset_txn(ISSUER, asset.create_operation(f"C{i}", "currency", 2)) for i in range(6)),
    )

    async def scenario() -> None:
        async with api_client(chain) as client:
            body = body_of(usd_setup()[0])
            no_type = await client.post("/batches", data=body, skip_auto_headers=["Content-Type"])
            assert no_type.status == 415
            json_type = await client.post(
                "/batches", data=body, headers={"Content-Type": "application/json"}
            )
            assert json_type.status == 415
            assert "application/octet-stream" in (await json_type.json())["error"]["message"]

            large = body_of(big)
            assert len(large) > 2000
            too_large = await client.post("/batches", data=large, headers=OCTET)
            assert too_large.status == 413
            assert (await too_large.json())["error"]["code"] == 413

            async def chunks() -> object:
                for offset in range(0, len(large), 500):
                    yield large[offset : offset + 500]

            chunked = await client.post("/batches", data=chunks(), headers=OCTET)
            assert chunked.status == 413
            assert len(chain.pool) == 0

    run(scenario())


def test_full_pool_is_429_and_queues_nothing() -> None:
    chain = make_chain(pool=BatchPool(batches_max=1))

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.post("/batches", data=body_of(*usd_setup()), headers=OCTET)
            assert response.status == 429
            assert response.headers["Retry-After"] == "1"
            assert "pending pool" in (await response.json())["error"]["message"]
            assert len(chain.pool) == 0 and chain.wakes == []

    run(scenario())


def test_replay_of_a_committed_transaction_is_400() -> None:
    chain = make_chain()
    create, issue = usd_setup()
    chain.commit(create)
    # The same transaction in a new batch: the batch id differs, the transaction is a replay.
    replay = batch_of(ISSUER, *create.transactions)

    async def scenario() -> None:
        async with api_client(chain) as client:
            for submitted in (create, replay):
                status, answer = await _post(client, issue, submitted)
                assert status == 400
                message = answer["error"]["message"]  # type: ignore[index]
                assert message.startswith("batch 1, transaction 0, header_signature")
                assert "already committed" in message and "new nonce" in message
            assert len(chain.pool) == 0

    run(scenario())


def test_dependency_on_a_pending_transaction_is_accepted() -> None:
    chain = make_chain()
    chain.commit(*usd_setup())
    first = transfer(10)
    second = transfer(20, dependencies=[first.transactions[0].header_signature])
    orphan = transfer(5, dependencies=["cd" * 64])

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert (await _post(client, first))[0] == 202
            # A pending batch submitted again is accepted without effect, not a replay.
            assert (await _post(client, first))[0] == 202
            assert len(chain.pool) == 1
            assert (await _post(client, second))[0] == 202
            assert len(chain.pool) == 2

            status, answer = await _post(client, orphan)
            assert status == 400
            message = answer["error"]["message"]  # type: ignore[index]
            assert message.startswith("batch 0, transaction 0, header.dependencies[0]")
            assert "neither committed" in message

            block = await asyncio.to_thread(chain.publish)
            assert block is not None
            assert block.batch_ids == (first.header_signature, second.header_signature)
            # Once committed, a dependency is met by the chain itself.
            third = transfer(30, dependencies=[second.transactions[0].header_signature])
            assert (await _post(client, third))[0] == 202

    run(scenario())


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("", "id"),
        ("?id=", "id"),
        ("?id=xyz", "id"),
        ("?id=" + "AB" * 64, "id"),
        ("?id=" + ",".join(f"{i:0128x}" for i in range(1001)), "id"),
        ("?id=" + "ab" * 64 + "&wait=soon", "wait"),
        ("?id=" + "ab" * 64 + "&wait=-1", "wait"),
        ("?id=" + "ab" * 64 + "&wait=nan", "wait"),
        ("?id=" + "ab" * 64 + "&wiat=1", "wiat"),
        ("?id=" + "ab" * 64 + "&id=" + "cd" * 64, "id"),
    ],
)
def test_bad_status_queries_name_the_parameter(query: str, parameter: str) -> None:
    chain = make_chain()

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.get("/batch_statuses" + query)
            assert response.status == 400
            message = (await response.json())["error"]["message"]
            assert message.startswith(f"{parameter}: ")

    run(scenario())


def test_bad_status_bodies() -> None:
    chain = make_chain()
    json_type = {"Content-Type": "application/json"}

    async def scenario() -> None:
        async with api_client(chain) as client:
            for body in ("{}", "[]", "[1]", "not json", '["xyz"]'):
                response = await client.post("/batch_statuses", data=body, headers=json_type)
                assert response.status == 400, body
                assert (await response.json())["error"]["message"].startswith("body: ")
            wrong = await client.post("/batch_statuses", data="[]", headers=OCTET)
            assert wrong.status == 415

    run(scenario())
