"""Peer handshakes signed in SoftHSM: the identity key never leaves the token, and every
handshake signature is a "handshake" use in the key-usage audit trail."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from tests.hsm.conftest import TokenEnv, shared_pool
from tests.unit.network.support import CHAIN_ID, KeySigner, Members
from trusted_ledger.custody import AuditLog, CustodySigner, KeyAlgorithm, verify_trail
from trusted_ledger.network import MessageType, PeerSettings, connect, serve

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(120)]


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.EC_SECP256K1, KeyAlgorithm.ED25519],
    ids=lambda a: a.value,
)  # fmt: skip
def test_handshakes_with_hsm_keys_are_audited(
    softhsm: TokenEnv, tmp_path: Path, algorithm: KeyAlgorithm
) -> None:
    if algorithm not in softhsm.algorithms:
        pytest.skip(f"the SoftHSM profile does not offer {algorithm.value}")
    pool = shared_pool(softhsm)
    server_label, client_label = (f"net-{uuid.uuid4().hex[:8]}" for _ in range(2))
    pool.generate_key(server_label, algorithm)
    pool.generate_key(client_label, algorithm)
    audit = AuditLog(tmp_path / "audit.jsonl")
    # The handshake needs no guard: it signs at no consensus position.
    server_signer = CustodySigner(pool, server_label, audit=audit)
    client_signer = CustodySigner(pool, client_label, audit=audit)
    members = Members(server_signer.public_key, client_signer.public_key)

    def settings(signer: CustodySigner) -> PeerSettings:
        return PeerSettings(chain_id=CHAIN_ID, signer=signer, admit=members)

    async def scenario() -> None:
        server = await serve("127.0.0.1", 0, settings(server_signer))
        for _ in range(2):
            client = await connect("127.0.0.1", server.port, settings(client_signer))
            accepted = await asyncio.wait_for(server.accept(), 10)
            assert accepted.peer == client_signer.public_key
            assert client.peer == server_signer.public_key
            client.send(MessageType.CONSENSUS, b"signed in hardware")
            message = await asyncio.wait_for(accepted.receive(), 10)
            assert message is not None and message.payload == b"signed in hardware"
            client.close()
            accepted.close()
        # A software member is refused by name when membership does not list it.
        stranger = KeySigner.generate()
        only_server = Members(server_signer.public_key)
        lone = await connect(
            "127.0.0.1", server.port,
            PeerSettings(chain_id=CHAIN_ID, signer=stranger, admit=only_server),
        )  # fmt: skip
        assert await asyncio.wait_for(lone.receive(), 10) is None
        await server.close()

    asyncio.run(scenario())
    audit.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    assert verify_trail(lines).ok
    uses = [json.loads(line) for line in lines if json.loads(line)["kind"] == "use"]
    by_key = {
        server_signer.fingerprint: [(u["purpose"], u["position"], u["result"]) for u in uses
                                    if u["key"] == server_signer.fingerprint],
        client_signer.fingerprint: [(u["purpose"], u["position"], u["result"]) for u in uses
                                    if u["key"] == client_signer.fingerprint],
    }  # fmt: skip
    # Two handshakes as client; two plus the refused stranger's as server (R signs first).
    assert by_key[client_signer.fingerprint] == [("handshake", None, "ok")] * 2
    assert by_key[server_signer.fingerprint] == [("handshake", None, "ok")] * 3
