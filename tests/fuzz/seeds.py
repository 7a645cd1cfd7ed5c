"""Valid encodings of every outside-bytes format: the starting points of the mutations.

Built once per run from the known-answer vectors (tests/vectors/) and from the real encoders,
so a seed is always something the node itself accepts; each fuzz module also checks that its
seeds decode and re-encode to the same bytes before mutating them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from trusted_ledger.chain.block import decode_block
from trusted_ledger.consensus import Proposal, VoteKind, VoteMessage
from trusted_ledger.node import bft_wire, catchup
from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.txn import BatchList, SigningKey, TransactionBuilder, build_batch

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CLIENT = SigningKey((41).to_bytes(32, "big"))
OTHER = SigningKey((42).to_bytes(32, "big"))


def vectors(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


@cache
def txn_vector() -> dict[str, Any]:
    return vectors("txn/txn_vectors.json")


@cache
def chain_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = vectors("chain/chain_vectors.json")["cases"]
    return cases


@cache
def network_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = vectors("network/network_vectors.json")["cases"]
    return cases


@cache
def batch_lists() -> tuple[bytes, ...]:
    """The vector's list, a list of two batches (one with a dependency), a one-transaction
    list whose batcher is another key."""
    vector = txn_vector()
    builder = TransactionBuilder(CLIENT, "intkey", "1.0")
    address = intkey_address("fuzz")
    first = builder.build(
        intkey_payload("set", "fuzz", 1), inputs=[address], outputs=[address], nonce="01"
    )
    second = builder.build(
        intkey_payload("inc", "fuzz", 2),
        inputs=[address],
        outputs=[address],
        dependencies=[first.header_signature],
        nonce="02",
    )
    other = TransactionBuilder(
        CLIENT, "intkey", "1.0", batcher_public_key=OTHER.public_key_hex
    ).build(intkey_payload("set", "other", 3), inputs=[address], outputs=[address], nonce="03")
    two = BatchList((build_batch(CLIENT, [first]), build_batch(CLIENT, [second]))).encode()
    return (
        bytes.fromhex(vector["batch_list_hex"]),
        two,
        BatchList((build_batch(OTHER, [other]),)).encode(),
    )


@cache
def batches() -> tuple[bytes, ...]:
    return (bytes.fromhex(txn_vector()["batch"]["encoded_hex"]),)


@cache
def blocks() -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(case["block"]) for case in chain_cases())


@cache
def headers() -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(case["header"]) for case in chain_cases())


@cache
def certificates() -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(case["certificate"]["certificate"]) for case in chain_cases())


@cache
def consensus_messages() -> tuple[bytes, ...]:
    """A proposal carrying each vector block, a prevote, a nil precommit."""
    out: list[bytes] = []
    sender = bytes(range(32))
    signature = bytes(range(64))
    for case in chain_cases():
        block_bytes = bytes.fromhex(case["block"])
        block = decode_block(block_bytes)
        chain_id = case["fields"]["chain_id"]
        proposal = Proposal(block.number, 1, block.id, -1, sender, signature)
        out.append(bft_wire.encode_proposal(chain_id, proposal, block_bytes))
        vote = VoteMessage(VoteKind.PREVOTE, block.number, 1, block.id, sender, signature)
        out.append(bft_wire.encode_vote(chain_id, vote))
    nil = VoteMessage(VoteKind.PRECOMMIT, 7, 3, None, sender, signature)
    out.append(bft_wire.encode_vote("consortium-test.1", nil))
    return tuple(out)


@cache
def block_requests() -> tuple[bytes, ...]:
    return (catchup.encode_block_request(1, 16), catchup.encode_block_request(2**63, 1))


@cache
def block_responses() -> tuple[bytes, ...]:
    out = [catchup.encode_block_response(catchup.BlockResponse(5, 9, b"", b""))]
    for case in chain_cases():
        block = bytes.fromhex(case["block"])
        certificate = bytes.fromhex(case["certificate"]["certificate"])
        number = case["fields"]["number"] or 1
        out.append(
            catchup.encode_block_response(
                catchup.BlockResponse(number + 3, number, block, certificate)
            )
        )
    return tuple(out)
