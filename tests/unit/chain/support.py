"""Test doubles for the chain: a software ``ChainSigner``, a key/value executor, batches.

``SoftwareSigner`` keeps the signing guard's rule (``custody.guard.decide``) in memory, so
round changes after a refused proposal behave as they do with custody. ``KvExecutor`` is a
real ``BlockExecutor`` over ``state.TransactionContext`` for a trivial family: payloads
``set <key> <value>``, ``del <key>``, ``incr <key>``, ``need <key>`` (invalid unless the key
is set) and anything else (invalid). The crash-test child
process uses these too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from trusted_ledger.chain import BatchResult, ExecutionOutcome
from trusted_ledger.custody import KeyAlgorithm, Position, PublicKey, Signature
from trusted_ledger.custody.guard import Decision, Watermark, decide
from trusted_ledger.custody.keyspec import normalise_ecdsa
from trusted_ledger.errors import SigningRefused, UndeclaredAddress
from trusted_ledger.state import StateStore, TransactionContext
from trusted_ledger.txn import Batch, SigningKey, TransactionBuilder, build_batch

KV_FAMILY = "kv"
KV_VERSION = "1.0"
KV_NAMESPACE = hashlib.sha512(KV_FAMILY.encode()).hexdigest()[:6]


def kv_address(key: str) -> str:
    return KV_NAMESPACE + hashlib.sha512(key.encode()).hexdigest()[-64:]


class SoftwareSigner:
    """A P-256 key in memory with the guard's rule; records what it signed."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._key = private_key or ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = PublicKey.from_spki(der)
        self.watermark: Watermark | None = None
        self.signed: list[tuple[str, Position | None, bytes]] = []

    def sign(self, digest: bytes, *, purpose: str, position: Position | None = None) -> Signature:
        if position is not None:
            decision = decide(self.watermark, position, digest)
            if decision in (Decision.REFUSE_BELOW, Decision.REFUSE_CONFLICT):
                raise SigningRefused(f"refused at {position}: {decision.value}")
            self.watermark = Watermark(position, digest)
        der = self._key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        self.signed.append((purpose, position, digest))
        return normalise_ecdsa(KeyAlgorithm.EC_P256, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class InvalidKvTransaction(Exception):
    pass


def _apply(context: TransactionContext, payload: bytes) -> None:
    words = payload.decode("utf-8", "replace").split(" ")
    match words:
        case ["set", key, value]:
            context.set(kv_address(key), value.encode())
        case ["del", key]:
            context.delete(kv_address(key))
        case ["need", key]:
            if context.get(kv_address(key)) is None:
                raise InvalidKvTransaction(f"{key} is not set")
        case ["incr", key]:
            old = context.get(kv_address(key))
            context.set(kv_address(key), str(int(old or b"0") + 1).encode())
        case _:
            raise InvalidKvTransaction(f"bad kv payload {payload[:40]!r}")


class KvExecutor:
    """Serial execution of kv batches; a batch with any invalid transaction is invalid."""

    def __init__(self, state: StateStore) -> None:
        self._state = state
        self.calls = 0

    def waiting_reason(self, batch: Batch) -> str | None:
        families = {t.header.family_name for t in batch.transactions}
        return "waiting for family 'later'" if "later" in families else None

    def execute(self, batches: Sequence[Batch], base_state_root: bytes) -> ExecutionOutcome:
        self.calls += 1
        view = self._state.view(base_state_root)
        merged: dict[str, bytes | None] = {}
        results: list[BatchResult] = []
        receipts: dict[str, bytes] = {}
        for batch in batches:
            writes: dict[str, bytes | None] = {}
            batch_receipts: dict[str, bytes] = {}
            try:
                for transaction in batch.transactions:
                    if transaction.header.family_name != KV_FAMILY:
                        raise InvalidKvTransaction("unknown family")
                    header = transaction.header
                    context = TransactionContext(
                        view, header.inputs, header.outputs, {**merged, **writes}
                    )
                    _apply(context, transaction.payload)
                    writes.update(context.writes)
                    changes = {a: None if v is None else v.hex() for a, v in context.writes.items()}
                    batch_receipts[transaction.id] = json.dumps(changes, sort_keys=True).encode()
            except (InvalidKvTransaction, UndeclaredAddress) as exc:
                results.append(BatchResult(batch.header_signature, False, str(exc)))
                continue
            merged.update(writes)
            receipts.update(batch_receipts)
            results.append(BatchResult(batch.header_signature, True))
        update = self._state.update(base_state_root, merged)
        return ExecutionOutcome(update.root, update, tuple(results), receipts)


class BatchFactory:
    """Signed kv batches from one client key."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.key = SigningKey(secret) if secret is not None else SigningKey.generate()
        self._builder = TransactionBuilder(self.key, KV_FAMILY, KV_VERSION)

    def batch(
        self, *payloads: str, nonce: str | None = None, dependencies: Sequence[str] = ()
    ) -> Batch:
        transactions = [
            self._builder.build(
                payload.encode(),
                inputs=[KV_NAMESPACE],
                outputs=[KV_NAMESPACE],
                dependencies=dependencies,
                nonce=None if nonce is None else f"{nonce}-{i}",
            )
            for i, payload in enumerate(payloads)
        ]
        return build_batch(self.key, transactions)
