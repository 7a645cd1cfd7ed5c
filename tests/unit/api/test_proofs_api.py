"""``/proofs/...`` through a real aiohttp server: every answer verifies offline, against the
documented schema, and errors name what was wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.api.schema_check import schema_errors
from tests.unit.api.support import ALICE, api_client, make_chain, run, usd_setup
from tests.unit.custody.test_audit_proof import write_trail
from trusted_ledger.api.proofs import (
    AUDIT_PROOF_SCHEMA,
    BATCH_PROOF_SCHEMA,
    STATE_PROOF_SCHEMA,
    TRANSACTION_PROOF_SCHEMA,
)
from trusted_ledger.chain import Membership
from trusted_ledger.chain.proof_verify import verify_proof
from trusted_ledger.processing.families import asset


def test_proofs_served_verify_offline(tmp_path: Path) -> None:
    audit_path = tmp_path / "key-usage.jsonl"
    node_key = write_trail(audit_path, 12)
    chain = make_chain(audit_path=audit_path)
    create, issue = usd_setup()
    block = chain.commit(create, issue)
    membership = Membership([chain.signer.public_key])
    holding = asset.holding_address("USD", ALICE.public_key_hex)

    async def scenario() -> None:
        async with api_client(chain) as client:

            async def proof(url: str, schema: dict[str, Any]) -> dict[str, Any]:
                response = await client.get(url)
                assert response.status == 200, await response.text()
                body = await response.json()
                assert schema_errors(body["data"], schema) == []
                return dict(body["data"])

            batch = await proof(f"/proofs/batches/{issue.header_signature}", BATCH_PROOF_SCHEMA)
            facts = verify_proof(batch, membership).facts
            assert (facts["block_num"], facts["index"]) == (block.number, 1)

            transaction_id = issue.transactions[0].header_signature
            transaction = await proof(
                f"/proofs/transactions/{transaction_id}", TRANSACTION_PROOF_SCHEMA
            )
            assert verify_proof(transaction, membership).facts["family_name"] == "asset"

            state = await proof(f"/proofs/state/{holding}", STATE_PROOF_SCHEMA)
            value = verify_proof(state, membership).facts["value"]
            assert value is not None
            assert bytes.fromhex(value) == chain.store.state.view(block.header.state_root).get(
                holding
            )
            before = await proof(f"/proofs/state/{holding}?block=0", STATE_PROOF_SCHEMA)
            assert verify_proof(before, membership).facts["value"] is None  # not issued yet

            audit = await proof("/proofs/audit", AUDIT_PROOF_SCHEMA)
            assert verify_proof(audit, node_key=node_key.public).facts["records"] > 0
            first = audit["from"]["seq"]
            same = await proof(f"/proofs/audit?from_seq={first}&to_seq={first}", AUDIT_PROOF_SCHEMA)
            assert verify_proof(same, node_key=node_key.public).facts["records"] == 0

    run(scenario())


def test_proof_errors_say_what_is_wrong(tmp_path: Path) -> None:
    chain = make_chain()  # no audit trail
    chain.commit(*usd_setup())
    address = asset.asset_class_address("USD")

    async def scenario() -> None:
        async with api_client(chain) as client:

            async def error(url: str, status: int, fragment: str) -> None:
                response = await client.get(url)
                assert response.status == status, (url, await response.text())
                message = (await response.json())["error"]["message"]
                assert fragment in message, (url, message)

            await error("/proofs/batches/" + "ab" * 64, 404, "is not committed")
            await error("/proofs/transactions/" + "ab" * 64, 404, "is not committed")
            await error("/proofs/batches/xyz", 400, "batch_id")
            await error(f"/proofs/state/{address}?block=9", 404, "no committed block number 9")
            await error(f"/proofs/state/{address}?block=-1", 400, "block")
            await error("/proofs/state/" + "AB" * 35, 400, "address")
            await error("/proofs/audit", 404, "keeps no key-usage audit trail")
            await error("/proofs/audit?from_seq=x", 400, "from_seq")

    run(scenario())


def test_audit_range_errors(tmp_path: Path) -> None:
    audit_path = tmp_path / "key-usage.jsonl"
    write_trail(audit_path, 12)
    chain = make_chain(audit_path=audit_path)

    async def scenario() -> None:
        async with api_client(chain) as client:
            response = await client.get("/proofs/audit?from_seq=20&to_seq=6")
            assert response.status == 400
            assert "from_seq" in (await response.json())["error"]["message"]
            response = await client.get("/proofs/audit?to_seq=3")
            assert response.status == 404
            assert "not a checkpoint" in (await response.json())["error"]["message"]

    run(scenario())
