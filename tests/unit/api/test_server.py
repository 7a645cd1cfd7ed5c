"""The server's life: readiness and 503s, genesis absent, shutdown ending long-polls,
unexpected errors as JSON 500s, /status and /metrics, and a RocksDB-backed node."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.unit.api.support import (
    api_client,
    body_of,
    make_chain,
    run,
    usd_setup,
)
from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES, BatchPool, ChainStore
from trusted_ledger.storage import RocksDatabase

OCTET = {"Content-Type": "application/octet-stream"}


def test_before_genesis_reads_are_503_and_status_answers() -> None:
    chain = make_chain(genesis=False)

    async def scenario() -> None:
        async with api_client(chain) as client:
            for path in ("/blocks", "/state", "/blocks/num/0", "/receipts?id=" + "ab" * 64):
                response = await client.get(path)
                assert response.status == 503, path
                assert response.headers["Retry-After"] == "1"
                assert "genesis" in (await response.json())["error"]["message"]
            submitted = await client.post("/batches", data=body_of(usd_setup()[0]), headers=OCTET)
            assert submitted.status == 503 and len(chain.pool) == 0
            status = (await (await client.get("/status")).json())["data"]
            assert status["head"] is None and status["chain_id"] == "api-test"
            assert (await client.get("/metrics")).status == 200

    run(scenario())


def test_not_ready_is_503_except_status_metrics_and_document() -> None:
    chain = make_chain()

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert (await client.get("/blocks")).status == 200
            chain.server.set_ready(False)
            for path in ("/blocks", "/state", "/batch_statuses?id=" + "ab" * 64):
                assert (await client.get(path)).status == 503, path
            for path in ("/status", "/metrics", "/openapi.json"):
                assert (await client.get(path)).status == 200, path
            chain.server.set_ready(True)
            assert (await client.get("/blocks")).status == 200

    run(scenario())


def test_status_reports_head_pool_and_node() -> None:
    chain = make_chain()
    chain.commit(usd_setup()[0])

    async def scenario() -> None:
        async with api_client(chain) as client:
            await client.post("/batches", data=body_of(usd_setup()[1]), headers=OCTET)
            status = (await (await client.get("/status")).json())["data"]
            head = chain.store.head
            assert head is not None
            assert status["head"] == {
                "block_num": 1,
                "block_id": head.block_id.hex(),
                "state_root": head.state_root.hex(),
                "timestamp_ms": head.timestamp_ms,
            }
            assert status["pending_batches"] == 1
            assert status["pending_bytes"] == chain.pool.byte_size > 0
            assert status["node"]["fingerprint"] == chain.signer.public_key.fingerprint
            assert status["scheduler"] == "serial"
            metrics = await (await client.get("/metrics")).text()
            assert 'tl_api_requests_total{method="POST",route="/batches",status="202"}' in metrics
            assert "tl_api_batches_total" in metrics and "tl_chain_pool_batches" in metrics

    run(scenario())


def test_stop_ends_long_polls_at_once() -> None:
    chain = make_chain()
    pending = usd_setup()[0]

    async def scenario() -> None:
        port = await chain.server.start("127.0.0.1", 0)
        chain.server.set_ready(True)
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
            await client.post("/batches", data=body_of(pending), headers=OCTET)
            started = time.monotonic()
            poll = asyncio.ensure_future(
                client.get(f"/batch_statuses?id={pending.header_signature}&wait=30")
            )
            await asyncio.sleep(0.2)
            await chain.server.stop()
            response = await poll
            answer = await response.json()
            assert answer["data"][0]["status"] == "PENDING"
            assert time.monotonic() - started < 5

    run(scenario())


def test_unexpected_failure_is_a_json_500() -> None:
    chain = make_chain(clock_error=RuntimeError("the clock source is gone"))

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.post("/batches", data=body_of(usd_setup()[0]), headers=OCTET)
            assert response.status == 500
            error = (await response.json())["error"]
            assert error["code"] == 500 and "log" in error["message"]
            assert "clock" not in error["message"]  # no internals to clients
            assert len(chain.pool) == 0
            # The server goes on answering.
            assert (await client.get("/blocks")).status == 200

    run(scenario())


def test_failed_wake_still_answers_202_for_queued_batches() -> None:
    chain = make_chain(wake_error=RuntimeError("publisher thread is gone"))

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.post("/batches", data=body_of(usd_setup()[0]), headers=OCTET)
            assert response.status == 202 and len(chain.pool) == 1

    run(scenario())


def test_rocksdb_node_accepts_durably_and_commits(tmp_path: Path) -> None:
    db = RocksDatabase(tmp_path / "chain", CHAIN_COLUMN_FAMILIES, create=True)
    store_probe = ChainStore(db, "api-test")
    del store_probe
    pool = BatchPool(db=db)
    chain = make_chain(db=db, pool=pool)
    setup = usd_setup()

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.post("/batches", data=body_of(*setup), headers=OCTET)
            assert response.status == 202
            # Durable before the answer: a fresh pool over the same database reloads both.
            reloaded = BatchPool(db=db, committed=chain.store.batches_committed_among)
            assert list(reloaded.pending_ids()) == [b.header_signature for b in setup]
            await asyncio.to_thread(chain.publish)
            link = (await response.json())["link"]
            answer = await (await client.get(link[link.index("/batch_statuses") :])).json()
            assert {s["status"] for s in answer["data"]} == {"COMMITTED"}

    run(scenario())
    db.close()
