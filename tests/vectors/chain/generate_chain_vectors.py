"""Writes tests/vectors/chain/chain_vectors.json: known-answer blocks and certificates.

Every byte is laid out here with ``struct`` and ``hashlib`` straight from
docs/formats.md §6, never by ``trusted_ledger.chain``, so the vectors are an independent
check of the implementation (tests/unit/chain/test_vectors.py). Keys are fixed test keys
derived from labels; ECDSA signatures are deterministic (RFC 6979) so that regeneration
reproduces the file (``--check``). In operation blocks are signed only through custody.
Run from the repository root: python tests/vectors/chain/generate_chain_vectors.py [--check]
"""

from __future__ import annotations

import hashlib
import importlib
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "chain_vectors.json"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CHAIN_ID = "consortium-test.1"
VOTE_DOMAIN = b"trusted-ledger/commit-vote/v1"


def test_key(label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % P256_ORDER
    return ec.derive_private_key(scalar, ec.SECP256R1())


def spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """Deterministic ECDSA over a prehashed digest, r||s with s made low."""
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    s = min(s, P256_ORDER - s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def rfc6962_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    left, right = rfc6962_root(leaves[:split]), rfc6962_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def header_bytes(fields: dict[str, object], proposer_der: bytes) -> bytes:
    chain_id = str(fields["chain_id"]).encode("ascii")
    return b"".join((
        b"TLBH", struct.pack(">H", 1), struct.pack(">B", len(chain_id)), chain_id,
        struct.pack(">Q", fields["number"]),
        bytes.fromhex(str(fields["previous_block_id"])),
        bytes.fromhex(str(fields["state_root"])),
        bytes.fromhex(str(fields["batch_root"])),
        struct.pack(">BH", 1, len(proposer_der)), proposer_der,
        struct.pack(">QII", fields["timestamp_ms"], fields["consensus_round"],
                    fields["batch_count"]),
    ))  # fmt: skip


def kv_batches() -> list[bytes]:
    """Two Sawtooth batches from a fixed client key (secp256k1 signs deterministically)."""
    sys.path.insert(0, str(HERE.parents[2] / "src"))
    txn = importlib.import_module("trusted_ledger.txn")
    SigningKey, TransactionBuilder, build_batch = (  # noqa: N806 (classes, named as such)
        txn.SigningKey,
        txn.TransactionBuilder,
        txn.build_batch,
    )

    client = SigningKey(hashlib.sha256(b"trusted-ledger chain vector client").digest())
    namespace = hashlib.sha512(b"kv").hexdigest()[:6]
    builder = TransactionBuilder(client, "kv", "1.0")
    batches = []
    for i, payloads in enumerate((["set a 1", "set b 2"], ["incr a"])):
        transactions = [
            builder.build(p.encode(), inputs=[namespace], outputs=[namespace], nonce=f"v{i}-{j}")
            for j, p in enumerate(payloads)
        ]
        batches.append(build_batch(client, transactions).encode())
    return batches


def batch_id(encoded_batch: bytes) -> bytes:
    """Field 2 (header_signature) of a Batch, parsed by hand: tag 0x0a, len, header; 0x12."""
    offset = 0
    while True:
        tag, length, offset = encoded_batch[offset], 0, offset + 1
        shift = 0
        while True:
            byte = encoded_batch[offset]
            offset += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if tag == 0x12:
            return bytes.fromhex(encoded_batch[offset : offset + length].decode("ascii"))
        offset += length


def block_case(name: str, fields: dict[str, object], batches: list[bytes]) -> dict[str, object]:
    proposer = test_key("trusted-ledger chain vector proposer")
    fields = {**fields, "batch_root": rfc6962_root([batch_id(b) for b in batches]).hex(),
              "batch_count": len(batches)}  # fmt: skip
    header = header_bytes(fields, spki(proposer))
    block_id = hashlib.sha256(header).digest()
    signature = sign(proposer, block_id)
    body = b"".join(struct.pack(">I", len(b)) + b for b in batches)
    block = (
        b"TLBK" + struct.pack(">HI", 1, len(header)) + header + signature
        + struct.pack(">I", len(batches)) + body
    )  # fmt: skip
    return {
        "name": name,
        "fields": fields,
        "proposer_key_algorithm": "ec-p256",
        "proposer_spki_der": spki(proposer).hex(),
        "header": header.hex(),
        "block_id": block_id.hex(),
        "proposer_signature": signature.hex(),
        "block": block.hex(),
        "certificate": certificate_case(str(fields["chain_id"]), int(str(fields["number"])),
                                        int(str(fields["consensus_round"])), block_id),
    }  # fmt: skip


def certificate_case(chain_id: str, height: int, round_: int, block_id: bytes) -> dict[str, object]:
    """Four members, three votes: the quorum floor(2*4/3) + 1 = 3."""
    members = [test_key(f"trusted-ledger chain vector member {i}") for i in range(4)]
    raw_chain_id = chain_id.encode("ascii")
    body = struct.pack(">B", len(raw_chain_id)) + raw_chain_id + struct.pack(">QI", height, round_)
    body += block_id
    digest = hashlib.sha256(struct.pack(">B", len(VOTE_DOMAIN)) + VOTE_DOMAIN + body).digest()
    votes = sorted(
        (hashlib.sha256(spki(member)).digest(), sign(member, digest)) for member in members[:3]
    )
    encoded = b"TLCC" + struct.pack(">H", 1) + body + struct.pack(">H", len(votes))
    encoded += b"".join(fingerprint + signature for fingerprint, signature in votes)
    return {
        "members_spki_der": [spki(member).hex() for member in members],
        "vote_digest": digest.hex(),
        "certificate": encoded.hex(),
    }


def build() -> dict[str, object]:
    genesis_fields = {
        "chain_id": CHAIN_ID, "number": 0, "previous_block_id": "00" * 32,
        "state_root": hashlib.sha256(b"vector genesis state").hexdigest(),
        "timestamp_ms": 1_767_225_600_000, "consensus_round": 0,
    }  # fmt: skip
    block_fields = {
        "chain_id": CHAIN_ID, "number": 7,
        "previous_block_id": hashlib.sha256(b"vector block 6").hexdigest(),
        "state_root": hashlib.sha256(b"vector state after block 7").hexdigest(),
        "timestamp_ms": 1_767_225_600_250, "consensus_round": 2,
    }  # fmt: skip
    return {
        "comment": "generated by tests/vectors/chain/generate_chain_vectors.py",
        "format": "docs/formats.md §6",
        "cases": [
            block_case("genesis_no_batches", genesis_fields, []),
            block_case("block_with_two_batches", block_fields, kv_batches()),
        ],
    }


def main() -> int:
    text = json.dumps(build(), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} differs from what the generator produces", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
