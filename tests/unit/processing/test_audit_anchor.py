"""``tl_audit``: trail checkpoints anchored in state, only ever moving forward.

Keys here are software keys standing in for HSM keys: the handler checks pure crypto (the
real token's checkpoints are covered in tests/hsm/test_audit_anchor_hsm.py). Every case
runs through the real executor with every scheduler (``Chain.run_all``).
"""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from trusted_ledger.custody.audit import checkpoint_digest
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey, normalise_ecdsa
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processing.codec import encode_canonical
from trusted_ledger.processing.families import builtin_registry
from trusted_ledger.processing.families.audit_anchor import (
    AUDIT_ANCHOR_NAMESPACE,
    AuditAnchor,
    AuditAnchorHandler,
    anchor_addresses,
    anchor_history_max,
    audit_anchor_address,
    decode_anchor_record,
)
from trusted_ledger.state import EMPTY_ROOT
from trusted_ledger.txn import Transaction

from .support import KEYS, Chain, batch, fresh_store, transaction

Signer = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _public(private: Signer) -> PublicKey:
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey.from_spki(der)


def _sign(private: Signer, digest: bytes) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(digest)
    r, s = utils.decode_dss_signature(
        private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    )
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return normalise_ecdsa(_public(private).algorithm, raw).raw


def _head(seq: int, tag: str = "") -> bytes:
    return hashlib.sha256(f"record {seq}{tag}".encode()).digest()


def _anchor(private: Signer, seq: int, head: bytes | None = None) -> AuditAnchor:
    head = _head(seq) if head is None else head
    signature = _sign(private, checkpoint_digest(seq, head.hex()))
    return AuditAnchor(_public(private), seq, head, signature)


def _txn(anchor: AuditAnchor, payload: bytes | None = None) -> Transaction:
    inputs, outputs = anchor_addresses(anchor.public_key.fingerprint)
    return transaction(KEYS[3], "tl_audit", payload or anchor.payload(), inputs, outputs)


def _chain() -> Chain:
    return Chain(fresh_store(), HandlerRegistry([AuditAnchorHandler()]))


def _reason(chain: Chain, txn: Transaction) -> str:
    before = chain.root
    result = chain.run_all([batch(txn)]).batch_results[0]
    assert not result.valid
    assert chain.root == before
    return result.reason or ""


@pytest.fixture(params=["p256", "secp256k1", "ed25519"])
def member_key(request: pytest.FixtureRequest) -> Signer:
    if request.param == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    curve = ec.SECP256R1() if request.param == "p256" else ec.SECP256K1()
    return ec.generate_private_key(curve)


def test_address_is_namespace_and_sha512_of_raw_fingerprint() -> None:
    assert hashlib.sha512(b"tl_audit").hexdigest()[:6] == AUDIT_ANCHOR_NAMESPACE == "875270"
    fingerprint = "ab" * 32
    expected = AUDIT_ANCHOR_NAMESPACE + hashlib.sha512(bytes(32 * [0xAB])).hexdigest()[-64:]
    assert audit_anchor_address(fingerprint) == expected
    with pytest.raises(ValueError, match="64 hex characters"):
        audit_anchor_address("abc")


def test_valid_anchors_advance_and_keep_bounded_history(member_key: Signer) -> None:
    chain = _chain()
    key = _public(member_key)
    transactions = [_txn(_anchor(member_key, seq)) for seq in range(2, 2 + 3 * 7, 3)]
    execution = chain.run_all([batch(txn) for txn in transactions[:2]])
    assert all(result.valid for result in execution.batch_results)
    chain.run_all([batch(txn) for txn in transactions[2:]])
    stored = chain.get(audit_anchor_address(key.fingerprint))
    assert stored is not None
    raw = cbor2.loads(stored)
    assert raw["fingerprint"] == key.fingerprint and raw["public_key"] == key.spki_der
    assert raw["algorithm"] == key.algorithm.value
    assert encode_canonical(raw) == stored
    record = decode_anchor_record(stored)
    assert record.anchor.head_seq == 20 and record.anchor.head_hash == _head(20)
    assert record.anchors == 7
    assert record.transaction_id == transactions[-1].header_signature
    assert [entry[0] for entry in record.history] == [17, 14, 11, 8, 5, 2]
    assert record.history[0][2] == transactions[-2].header_signature
    record.anchor.verify()  # what is stored still verifies on its own


def test_history_is_bounded() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    chain = _chain()
    count = anchor_history_max + 4
    chain.run_all([batch(_txn(_anchor(private, seq))) for seq in range(count)])
    stored = chain.get(_anchor(private, 0).address)
    record = decode_anchor_record(stored or b"")
    assert record.anchors == count
    assert len(record.history) == anchor_history_max
    assert record.history[0][0] == count - 2 and record.history[-1][0] == count - 1 - 16


def test_bad_signature_is_rejected(member_key: Signer) -> None:
    good = _anchor(member_key, 10)
    flipped = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    forged = AuditAnchor(good.public_key, 10, good.head_hash, flipped)
    assert "checkpoint signature does not verify" in _reason(_chain(), _txn(forged))


def test_signature_over_another_head_is_rejected(member_key: Signer) -> None:
    good = _anchor(member_key, 10)
    moved = AuditAnchor(good.public_key, 11, good.head_hash, good.signature)
    assert "does not verify" in _reason(_chain(), _txn(moved))


def test_signature_by_a_different_key_is_rejected() -> None:
    member = ec.generate_private_key(ec.SECP256R1())
    impostor = ec.generate_private_key(ec.SECP256R1())
    signed_by_impostor = _anchor(impostor, 5)
    claimed = AuditAnchor(
        _public(member), 5, signed_by_impostor.head_hash, signed_by_impostor.signature
    )
    reason = _reason(_chain(), _txn(claimed))
    assert f"does not verify under key {_public(member).fingerprint[:16]}" in reason


def test_lower_sequence_is_rejected(member_key: Signer) -> None:
    chain = _chain()
    assert chain.run_all([batch(_txn(_anchor(member_key, 40)))]).batch_results[0].valid
    reason = _reason(chain, _txn(_anchor(member_key, 39)))
    assert "does not advance: head_seq 39 <= anchored 40" in reason


def test_same_anchor_twice_is_rejected(member_key: Signer) -> None:
    chain = _chain()
    anchor = _anchor(member_key, 40)
    assert chain.run_all([batch(_txn(anchor))]).batch_results[0].valid
    assert "does not advance: head_seq 40 <= anchored 40" in _reason(chain, _txn(anchor))


def test_same_sequence_with_different_hash_is_a_rewrite(member_key: Signer) -> None:
    chain = _chain()
    assert chain.run_all([batch(_txn(_anchor(member_key, 40)))]).batch_results[0].valid
    rewritten = _anchor(member_key, 40, _head(40, "rewritten"))
    rewritten.verify()  # properly signed by the member's own key: still refused
    reason = _reason(chain, _txn(rewritten))
    assert reason.startswith("audit trail rewrite detected")
    assert "anchored head_seq 40" in reason


def test_rewrite_within_one_block_rejects_the_later_batch() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    chain = _chain()
    first, second = _anchor(private, 7), _anchor(private, 7, _head(7, "other"))
    results = chain.run_all([batch(_txn(first)), batch(_txn(second))]).batch_results
    assert [result.valid for result in results] == [True, False]
    assert "rewrite detected" in (results[1].reason or "")


def test_high_s_twin_is_rejected() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    good = _anchor(private, 3)
    order = KeyAlgorithm.EC_P256.curve_order
    s = int.from_bytes(good.signature[32:], "big")
    twin = AuditAnchor(
        good.public_key, 3, good.head_hash, good.signature[:32] + (order - s).to_bytes(32, "big")
    )
    assert "high S" in _reason(_chain(), _txn(twin))


def _fields(anchor: AuditAnchor) -> dict[str, object]:
    return cbor2.loads(anchor.payload())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: f.pop("signature"), "exactly these are required"),
        (lambda f: f.update(extra=1), "exactly these are required"),
        (lambda f: f.update(head_seq=-1), "head_seq -1 is outside"),
        (lambda f: f.update(head_seq="5"), "'head_seq' must be an unsigned integer"),
        (lambda f: f.update(head_seq=True), "'head_seq' must be an unsigned integer"),
        (lambda f: f.update(head_hash=b"\x00" * 31), "head_hash is 31 bytes"),
        (lambda f: f.update(signature=b"\x00" * 70), "signature is 70 bytes"),
        (lambda f: f.update(public_key=b"\x30\x03abc"), "not a DER SubjectPublicKeyInfo"),
        (lambda f: f.update(public_key="hex"), "'public_key' must be the DER"),
        (lambda f: f.update(algorithm="rsa"), "unknown key algorithm 'rsa'"),
        (lambda f: f.update(algorithm="ed25519"), "does not match the public key's 'ec-p256'"),
    ],
)
def test_malformed_payloads(change: object, reason: str) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    anchor = _anchor(private, 1)
    fields = _fields(anchor)
    change(fields)  # type: ignore[operator]
    assert reason in _reason(_chain(), _txn(anchor, encode_canonical(fields)))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\x00", "tl_audit payload is not valid CBOR"),
        (cbor2.dumps([1, 2]), "must be a CBOR map"),
    ],
)
def test_undecodable_payloads(payload: bytes, reason: str) -> None:
    anchor = _anchor(ec.generate_private_key(ec.SECP256R1()), 1)
    assert reason in _reason(_chain(), _txn(anchor, payload))


def test_non_canonical_encoding_is_rejected() -> None:
    anchor = _anchor(ec.generate_private_key(ec.SECP256R1()), 1)
    fields = _fields(anchor)
    reordered = cbor2.dumps(dict(sorted(fields.items(), reverse=True)))
    assert reordered != anchor.payload()
    assert "not canonical CBOR" in _reason(_chain(), _txn(anchor, reordered))


def test_the_signer_carries_no_authority_and_the_family_is_built_in() -> None:
    """Two unrelated secp256k1 signers may anchor the same member's trail in turn: only the
    HSM signature in the payload matters."""
    private = ec.generate_private_key(ec.SECP256R1())
    chain = Chain(fresh_store(), builtin_registry())
    inputs, outputs = anchor_addresses(_public(private).fingerprint)
    first = transaction(KEYS[0], "tl_audit", _anchor(private, 1).payload(), inputs, outputs)
    second = transaction(KEYS[5], "tl_audit", _anchor(private, 2).payload(), inputs, outputs)
    assert all(r.valid for r in chain.run_all([batch(first), batch(second)]).batch_results)
    assert chain.root != EMPTY_ROOT
