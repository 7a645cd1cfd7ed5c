"""Writes tests/vectors/proofs/proof_vectors.json: one proof document of every type
(docs/formats.md §8), the membership and node key they verify under, the facts each proves,
and altered copies with the field a verifier must name when it refuses them.

For other implementations (the explorer's JavaScript verifier, an auditor's own tool) and
as a regression check of ours (tests/unit/chain/test_proof_vectors.py). Everything is
reproducible: fixed keys derived from labels, deterministic ECDSA (RFC 6979) and secp256k1
signatures, fixed nonces, clocks and timestamps, so ``--check`` regenerates and compares.
Run from the repository root: python tests/vectors/proofs/generate_proof_vectors.py [--check]
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
OUTPUT = HERE / "proof_vectors.json"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CHAIN_ID = "proof-vectors"
GENESIS_MS = 1_767_225_600_000
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402
from tests.unit.chain.support import KvExecutor, SoftwareSigner, kv_address  # noqa: E402

from trusted_ledger.chain import (  # noqa: E402
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    build_genesis,
)
from trusted_ledger.chain.proof_verify import verify_proof  # noqa: E402
from trusted_ledger.chain.proofs import batch_proof, state_proof, transaction_proof  # noqa: E402
from trusted_ledger.custody import KeyAlgorithm, Position, Signature  # noqa: E402
from trusted_ledger.custody.audit import AuditLog, CheckpointSignature  # noqa: E402
from trusted_ledger.custody.audit_proof import build_audit_proof  # noqa: E402
from trusted_ledger.custody.keyspec import PublicKey, normalise_ecdsa  # noqa: E402
from trusted_ledger.state import EMPTY_ROOT  # noqa: E402
from trusted_ledger.storage import MemoryDatabase  # noqa: E402
from trusted_ledger.txn import SigningKey, TransactionBuilder, build_batch  # noqa: E402


def test_key(label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % P256_ORDER
    return ec.derive_private_key(scalar, ec.SECP256R1())


def deterministic_sign(key: ec.EllipticCurvePrivateKey, digest: bytes) -> Signature:
    algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True)
    r, s = utils.decode_dss_signature(key.sign(digest, algorithm))
    return normalise_ecdsa(KeyAlgorithm.EC_P256, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class DeterministicSigner(SoftwareSigner):
    """The chain tests' software node key, signing deterministically."""

    def sign(self, digest: bytes, *, purpose: str, position: Position | None = None) -> Signature:
        super().sign(digest, purpose=purpose, position=position)  # the guard rule
        return deterministic_sign(self._key, digest)


def build_chain() -> tuple[ChainStore, DeterministicSigner, list[Any]]:
    signer = DeterministicSigner(test_key("proof vectors node"))
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    initial = store.state.update(EMPTY_ROOT, {kv_address("genesis"): b"1"})
    genesis, certificate = build_genesis(signer, CHAIN_ID, initial, GENESIS_MS)
    store.commit(genesis, certificate, initial, {})
    pool = BatchPool()
    publisher = BlockPublisher(store, pool, KvExecutor(store.state), signer)
    client = SigningKey(hashlib.sha256(b"proof vectors client").digest())
    builder = TransactionBuilder(client, "kv", "1.0")
    namespace = kv_address("x")[:6]
    batches = []
    for i, payloads in enumerate((["set a 1", "set b 2"], ["set c 3"], ["incr a"])):
        transactions = [
            builder.build(p.encode(), inputs=[namespace], outputs=[namespace], nonce=f"v{i}-{j}")
            for j, p in enumerate(payloads)
        ]
        batches.append(build_batch(client, transactions))
        pool.add(batches[-1], GENESIS_MS)
    assert publisher.publish(GENESIS_MS + 1000) is not None
    return store, signer, batches


def build_trail(directory: Path) -> tuple[Path, PublicKey]:
    key = test_key("proof vectors audit")
    public = DeterministicSigner(key).public_key
    path = directory / "key-usage.jsonl"
    ticks = iter(range(1_767_225_600, 1_767_225_700))
    log = AuditLog(path, checkpoint_every_records=4, clock=lambda: float(next(ticks)))

    def checkpoint(digest: bytes) -> CheckpointSignature:
        log.record_use(
            key_fingerprint=public.fingerprint, purpose="checkpoint", digest=digest,
            position=None, result="ok", error=None, latency_us=5,
        )  # fmt: skip
        raw = deterministic_sign(key, digest).raw
        return CheckpointSignature(public.fingerprint, "ec-p256", public.spki_der, raw)

    log.set_checkpoint_signer(checkpoint)
    for i in range(10):
        log.record_use(
            key_fingerprint=public.fingerprint, purpose="vote",
            digest=hashlib.sha256(b"vote %d" % i).digest(), position=[i + 1, 0, 3],
            result="ok", error=None, latency_us=100,
        )  # fmt: skip
    log.checkpoint()
    log.close()
    return path, public


def _altered(proof: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    altered = copy.deepcopy(proof)
    target: Any = altered
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return altered


def _flip_last(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def vectors() -> dict[str, Any]:
    store, signer, batches = build_chain()
    with tempfile.TemporaryDirectory() as directory:
        trail, node_key = build_trail(Path(directory))
        checkpoints = [
            json.loads(line)["seq"]
            for line in trail.read_bytes().splitlines()
            if b'"kind":"checkpoint"' in line
        ]
        audit = build_audit_proof(trail, checkpoints[0], checkpoints[-1])
    valid = {
        "batch": batch_proof(store, batches[1].header_signature),
        "transaction": transaction_proof(store, batches[0].transactions[1].header_signature),
        "state_present": state_proof(store, kv_address("a")),
        "state_absent": state_proof(store, kv_address("zzz")),
        "state_at_genesis": state_proof(store, kv_address("a"), 0),
        "audit": audit,
    }
    batch = valid["batch"]
    state = valid["state_present"]
    assert batch is not None and state is not None
    invalid = [
        ("batch path hash changed", _altered(batch, ["path", 0], _flip_last(batch["path"][0])),
         "path"),
        ("batch index moved", _altered(batch, ["index"], batch["index"] + 1), "path"),
        ("header changed", _altered(batch, ["block", "header"],
                                    _flip_last(batch["block"]["header"])),
         "block.proposer_signature"),
        ("state value changed", _altered(state, ["value"], "39"), "value"),
        ("state node changed", _altered(state, ["nodes", 1], _flip_last(state["nodes"][1])),
         "nodes[1]"),
        ("audit record edited", _altered(audit, ["records", 1, "latency_us"], 7), "records[1]"),
    ]  # fmt: skip
    document: dict[str, Any] = {
        "description": "docs/formats.md §8 proof documents; generated by "
        "tests/vectors/proofs/generate_proof_vectors.py",
        "membership": [signer.public_key.spki_der.hex()],
        "node_key": node_key.spki_der.hex(),
        "valid": {},
        "invalid": [],
    }
    for name, proof in valid.items():
        assert proof is not None
        result = verify_proof(proof, None if name == "audit" else _membership(document))
        document["valid"][name] = {"proof": proof, "facts": result.facts}
    for name, proof, field in invalid:
        document["invalid"].append({"name": name, "proof": proof, "field": field})
    return document


def _membership(document: dict[str, Any]) -> Any:
    from trusted_ledger.chain import Membership  # noqa: PLC0415 (keeps the header short)

    return Membership(PublicKey.from_spki(bytes.fromhex(k)) for k in document["membership"])


def main() -> int:
    text = json.dumps(vectors(), indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} differs from what this generator writes", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
