"""Reads against a real chain: state paging, block paging, renderings checked against the
objects they render, raw blocks, receipts, and the 404s."""

from __future__ import annotations

import base64
import hashlib

import cbor2
import pytest

from tests.unit.api.support import (
    ALICE,
    BOB,
    ISSUER,
    USD,
    ApiChain,
    api_client,
    batch_of,
    intkey_txn,
    make_chain,
    run,
    transfer,
    usd_setup,
)
from trusted_ledger.chain import Block, decode_block, vote_digest
from trusted_ledger.custody import PublicKey
from trusted_ledger.processing.families import asset
from trusted_ledger.processing.families.intkey import INTKEY_NAMESPACE
from trusted_ledger.txn.protos import batch_pb2, transaction_pb2


def _chain_with_blocks() -> tuple[ApiChain, list[Block]]:
    """Genesis plus blocks 1-4: USD set-up, a transfer, and two intkey blocks (9 names)."""
    chain = make_chain()
    create, issue = usd_setup()
    blocks = [chain.commit(create, issue), chain.commit(transfer(30))]
    names = [f"name-{i}" for i in range(9)]
    blocks.append(chain.commit(*(batch_of(BOB, intkey_txn(BOB, "set", n, 1)) for n in names[:5])))
    blocks.append(chain.commit(*(batch_of(BOB, intkey_txn(BOB, "set", n, 2)) for n in names[5:])))
    return chain, blocks


def test_state_pages_cover_every_entry_once() -> None:
    chain, _ = _chain_with_blocks()
    head = chain.store.head
    assert head is not None
    expected = list(chain.store.state.view(head.state_root).items(INTKEY_NAMESPACE))
    assert len(expected) == 9

    async def scenario() -> None:
        async with api_client(chain) as client:
            seen: list[tuple[str, bytes]] = []
            url = f"/state?address={INTKEY_NAMESPACE}&limit=4"
            pages = 0
            while url:
                answer = await (await client.get(url)).json()
                assert answer["head"] == head.block_id.hex()
                assert answer["paging"]["limit"] == 4
                seen += [(e["address"], base64.b64decode(e["data"])) for e in answer["data"]]
                next_url = answer["paging"].get("next")
                if next_url:
                    assert answer["paging"]["next_position"] in next_url
                    url = next_url[next_url.index("/state") :]
                else:
                    assert "next_position" not in answer["paging"]
                    url = ""
                pages += 1
            assert pages == 3 and seen == expected

            everything = await (await client.get("/state?limit=1000")).json()
            assert len(everything["data"]) == len(
                list(chain.store.state.view(head.state_root).items())
            )
            assert everything["paging"] == {"start": None, "limit": 1000}

            address = expected[0][0]
            one = await (await client.get(f"/state/{address}")).json()
            assert base64.b64decode(one["data"]) == expected[0][1]
            # At an older head the intkey names did not exist yet.
            old = chain.store.block_id_at(2)
            assert old is not None
            missing = await client.get(f"/state/{address}?head={old.hex()}")
            assert missing.status == 404
            assert (await missing.json())["error"]["message"].startswith("address: ")

    run(scenario())


def test_block_pages_both_directions() -> None:
    chain, _ = _chain_with_blocks()

    async def numbers(client: object, url: str) -> list[list[int]]:
        pages = []
        while url:
            answer = await (await client.get(url)).json()  # type: ignore[attr-defined]
            pages.append([b["header"]["block_num"] for b in answer["data"]])
            next_url = answer["paging"].get("next")
            url = next_url[next_url.index("/blocks") :] if next_url else ""
        return pages

    async def scenario() -> None:
        async with api_client(chain) as client:
            assert await numbers(client, "/blocks?limit=2") == [[4, 3], [2, 1], [0]]
            assert await numbers(client, "/blocks?limit=2&reverse=false") == [[0, 1], [2, 3], [4]]
            assert await numbers(client, "/blocks?start=2&limit=10") == [[2, 1, 0]]
            assert await numbers(client, "/blocks?start=3&reverse=false") == [[3, 4]]
            assert await numbers(client, "/blocks?start=9&reverse=false") == [[]]
            default = await (await client.get("/blocks")).json()
            assert default["paging"] == {"start": None, "limit": 100}
            assert default["head"] == chain.store.head.block_id.hex()  # type: ignore[union-attr]

    run(scenario())


def test_block_rendering_is_faithful_and_raw_bytes_decode_to_it() -> None:
    chain, blocks = _chain_with_blocks()
    block = blocks[0]

    async def scenario() -> None:
        async with api_client(chain) as client:
            rendered = (await (await client.get(f"/blocks/{block.id.hex()}")).json())["data"]
            by_number = (await (await client.get("/blocks/num/1")).json())["data"]
            assert rendered == by_number
            raw = await client.get(f"/blocks/{block.id.hex()}?format=raw")
            assert raw.headers["Content-Type"] == "application/octet-stream"
            decoded = decode_block(await raw.read())
            assert decoded == block and decoded.id == block.id
            raw_by_number = await client.get("/blocks/num/1?format=raw")
            assert await raw_by_number.read() == chain.store.block_bytes(block.id)

            header = rendered["header"]
            assert rendered["header_signature"] == block.id.hex()
            assert rendered["proposer_signature"] == block.proposer_signature.hex()
            assert header["block_num"] == 1 and header["chain_id"] == block.header.chain_id
            assert header["previous_block_id"] == blocks_id(chain, 0)
            assert header["state_root_hash"] == block.header.state_root.hex()
            assert header["batch_root"] == block.header.batch_root.hex()
            assert header["batch_ids"] == list(block.batch_ids)
            assert header["timestamp_ms"] == block.header.timestamp_ms
            proposer = PublicKey.from_spki(bytes.fromhex(header["proposer"]["public_key"]))
            assert proposer == chain.signer.public_key
            assert header["proposer"]["fingerprint"] == proposer.fingerprint
            proposer.verify(block.id, bytes.fromhex(rendered["proposer_signature"]))

            certificate = rendered["certificate"]
            assert certificate["height"] == 1 and certificate["block_id"] == block.id.hex()
            digest = vote_digest(
                certificate["chain_id"], certificate["height"], certificate["round"], block.id
            )
            [vote] = certificate["votes"]
            key = PublicKey.from_spki(bytes.fromhex(vote["public_key"]))
            assert vote["signer_fingerprint"] == key.fingerprint
            assert vote["algorithm"] == key.algorithm.value
            key.verify(digest, bytes.fromhex(vote["signature"]))  # raises if it does not

            for rendered_batch, batch in zip(rendered["batches"], block.batches, strict=True):
                batch_header = batch_pb2.BatchHeader.FromString(batch.header_bytes)
                assert rendered_batch["header"]["signer_public_key"] == (
                    batch_header.signer_public_key
                )
                assert rendered_batch["header"]["transaction_ids"] == list(
                    batch_header.transaction_ids
                )
                assert rendered_batch["trace"] is False
                for shown, transaction in zip(
                    rendered_batch["transactions"], batch.transactions, strict=True
                ):
                    payload = base64.b64decode(shown["payload"])
                    assert payload == transaction.payload
                    proto = transaction_pb2.TransactionHeader.FromString(transaction.header_bytes)
                    for name in shown["header"]:
                        value = getattr(proto, name)
                        expected = value if isinstance(value, str) else list(value)
                        assert shown["header"][name] == expected, name
                    assert hashlib.sha512(payload).hexdigest() == proto.payload_sha512

    run(scenario())


def blocks_id(chain: ApiChain, number: int) -> str:
    block_id = chain.store.block_id_at(number)
    assert block_id is not None
    return block_id.hex()


def test_batch_transaction_and_receipt_of_a_transfer() -> None:
    chain = make_chain()
    chain.commit(*usd_setup())
    moved = transfer(30)
    block = chain.commit(moved)
    transaction = moved.transactions[0]
    sender = asset.holding_address(USD, ALICE.public_key_hex)
    recipient = asset.holding_address(USD, BOB.public_key_hex)

    async def scenario() -> None:
        async with api_client(chain) as client:
            batch = await (await client.get(f"/batches/{moved.header_signature}")).json()
            assert batch["block_id"] == block.id.hex() and batch["block_num"] == 2
            assert batch["data"]["header_signature"] == moved.header_signature
            found = await (await client.get(f"/transactions/{transaction.id}")).json()
            assert found["block_num"] == 2
            assert base64.b64decode(found["data"]["payload"]) == transaction.payload

            receipts = await (await client.get(f"/receipts?id={transaction.id}")).json()
            [receipt] = receipts["data"]
            assert receipt["transaction_id"] == transaction.id
            assert receipt["family_name"] == "asset"
            changes = {c["address"]: c for c in receipt["state_changes"]}
            assert set(changes) == {sender, recipient}
            assert all(c["type"] == "SET" for c in changes.values())
            balance = asset.Holding.decode(base64.b64decode(changes[recipient]["value"]))
            assert balance.balance == 30
            assert asset.Holding.decode(base64.b64decode(changes[sender]["value"])).balance == 70
            [event] = receipt["events"]
            assert event["event_type"] == "asset/transferred"
            attributes = {a["key"]: a["value"] for a in event["attributes"]}
            assert attributes["to"] == BOB.public_key_hex and attributes["amount"] == "30"
            stored = cbor2.loads(chain.store.receipt(transaction.id) or b"")
            assert [base64.b64decode(d) for d in receipt["data"]] == stored["data"]

            posted = await client.post(
                "/receipts", json=[transaction.id], headers={"Content-Type": "application/json"}
            )
            assert (await posted.json())["data"] == receipts["data"]

    run(scenario())


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/blocks/" + "ab" * 32, "no committed block"),
        ("/blocks/" + "ab" * 32 + "?format=raw", "no committed block"),
        ("/blocks/num/99", "no committed block number 99"),
        ("/batches/" + "ab" * 64, "is not committed"),
        ("/transactions/" + "ab" * 64, "is not committed"),
        ("/receipts?id=" + "ab" * 64, "id: no receipt"),
        ("/state/" + "ab" * 35, "address: no value"),
        ("/state?head=" + "ab" * 32, "head: no committed block"),
        ("/no/such/path", "no route /no/such/path"),
    ],
)
def test_unknown_things_are_404_json(path: str, words: str) -> None:
    chain = make_chain()

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.get(path)
            assert response.status == 404
            error = (await response.json())["error"]
            assert error["code"] == 404 and words in error["message"]

    run(scenario())


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/state?address=abc", "address"),
        ("/state?address=" + "a" * 72, "address"),
        ("/state?limit=0", "limit"),
        ("/state?limit=1001", "limit"),
        ("/state?limit=ten", "limit"),
        ("/state?start=12", "start"),
        ("/state?head=xyz", "head"),
        ("/state/abc", "address"),
        ("/blocks?reverse=maybe", "reverse"),
        ("/blocks?start=-1", "start"),
        ("/blocks?limt=5", "limt"),
        ("/blocks/xyz", "block_id"),
        ("/blocks/num/-3", "block_num"),
        ("/blocks/num/1?format=xml", "format"),
        ("/batches/xyz", "batch_id"),
        ("/transactions/" + "AB" * 64, "transaction_id"),
        ("/receipts?id=1,2", "id"),
    ],
)
def test_bad_read_parameters_are_400_naming_them(path: str, parameter: str) -> None:
    chain = make_chain()

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.get(path)
            assert response.status == 400
            message = (await response.json())["error"]["message"]
            assert message.startswith(f"{parameter}: "), message

    run(scenario())


def test_wrong_method_is_405_json() -> None:
    chain = make_chain()

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.delete("/blocks")
            assert response.status == 405
            error = (await response.json())["error"]
            assert error["code"] == 405 and "GET" in error["message"]
            assert "GET" in response.headers["Allow"]
            put = await client.put("/batches", data=b"")
            assert put.status == 405

    run(scenario())


def test_issuer_key_is_what_the_chain_says() -> None:
    """The asset class rendered through /state decodes to the issuer's key (a read that a
    wrong root or address would get wrong)."""
    chain = make_chain()
    chain.commit(*usd_setup())

    async def scenario() -> None:
        async with api_client(chain) as client:
            address = asset.asset_class_address(USD)
            answer = await (await client.get(f"/state/{address}")).json()
            record = asset.AssetClass.decode(base64.b64decode(answer["data"]))
            assert record.issuer == ISSUER.public_key_hex and record.supply == 100

    run(scenario())
