"""``tl_audit`` 1.0: each member's key-usage trail anchored in the ledger.

A node periodically submits the latest checkpoint of its key-usage audit trail
(custody/audit.py): the trail head ``(head_seq, head_hash)`` and the signature its HSM key
made over ``checkpoint_digest(head_seq, head_hash)``. Once committed, the member cannot
rewrite its trail up to that head without every other member seeing the anchor disagree.

Authority is the HSM signature in the payload, not the transaction's (secp256k1) signer:
the handler verifies the checkpoint signature under the SPKI the payload carries, and that
is all it decides. Whether that SPKI belongs to a member is for verifiers to check against
the membership (state ``tl.consensus.members``), because the membership can change while
old anchors stay valid for the key that made them. Formats: docs/families.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trusted_ledger.custody.audit import checkpoint_digest
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey
from trusted_ledger.errors import InvalidInput, InvalidTransaction, SignatureInvalid
from trusted_ledger.processing.codec import decode_map, encode_canonical
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.state import hashed_address, namespace_prefix
from trusted_ledger.txn import Transaction

FAMILY_NAME = "tl_audit"
FAMILY_VERSION = "1.0"
AUDIT_ANCHOR_NAMESPACE = namespace_prefix(FAMILY_NAME)
PAYLOAD_FIELDS = ("algorithm", "head_hash", "head_seq", "public_key", "signature")
RECORD_FIELDS = (
    "algorithm", "anchors", "fingerprint", "head_hash", "head_seq", "history", "public_key",
    "signature", "transaction_id",
)  # fmt: skip
spki_bytes_max = 256
"""Largest SubjectPublicKeyInfo accepted; P-256, secp256k1 and Ed25519 SPKIs are 44-91."""
head_hash_bytes = 32
signature_bytes = 64
head_seq_max = 2**64 - 1
"""``checkpoint_digest`` encodes the sequence number as 8 bytes, big-endian."""
anchor_history_max = 16
"""Earlier anchors kept in the state record, newest first; older ones are found in the
chain by the transaction ids the kept entries name, and in the blocks before them."""


@dataclass(frozen=True)
class AuditAnchor:
    """One checkpoint of a member's key-usage trail, as carried in a ``tl_audit`` payload."""

    public_key: PublicKey
    head_seq: int
    head_hash: bytes
    signature: bytes

    @property
    def digest(self) -> bytes:
        return checkpoint_digest(self.head_seq, self.head_hash.hex())

    def payload(self) -> bytes:
        return encode_canonical(
            {
                "public_key": self.public_key.spki_der,
                "head_seq": self.head_seq,
                "head_hash": self.head_hash,
                "signature": self.signature,
                "algorithm": self.public_key.algorithm.value,
            }
        )

    @property
    def address(self) -> str:
        return audit_anchor_address(self.public_key.fingerprint)

    def verify(self) -> None:
        """Raise ``InvalidTransaction`` unless the signature is the key's over the head."""
        _check_low_s(self.public_key.algorithm, self.signature)
        try:
            self.public_key.verify(self.digest, self.signature)
        except (SignatureInvalid, InvalidInput) as exc:
            raise InvalidTransaction(
                f"checkpoint signature does not verify under key "
                f"{self.public_key.fingerprint[:16]} for head_seq {self.head_seq}",
                hint="the signature must be the key's over checkpoint_digest(head_seq, "
                "head_hash), as the audit log's checkpoint record holds it",
            ) from exc


@dataclass(frozen=True)
class AnchorRecord:
    """What the state holds at a member key's address: its latest anchor and a bounded
    history of the ones before it."""

    anchor: AuditAnchor
    anchors: int
    transaction_id: str
    history: tuple[tuple[int, bytes, str], ...]
    """Earlier anchors (head_seq, head_hash, transaction id), newest first."""

    def encode(self) -> bytes:
        key = self.anchor.public_key
        return encode_canonical(
            {
                "public_key": key.spki_der,
                "fingerprint": key.fingerprint,
                "algorithm": key.algorithm.value,
                "head_seq": self.anchor.head_seq,
                "head_hash": self.anchor.head_hash,
                "signature": self.anchor.signature,
                "anchors": self.anchors,
                "transaction_id": self.transaction_id,
                "history": [[seq, digest, txn] for seq, digest, txn in self.history],
            }
        )


def audit_anchor_address(fingerprint_hex: str) -> str:
    """Namespace of ``tl_audit`` + last 64 hex of SHA-512(the 32 raw fingerprint bytes)."""
    try:
        raw = bytes.fromhex(fingerprint_hex)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidInput(
            f"a key fingerprint is 64 hex characters, got {fingerprint_hex!r}",
            hint="the fingerprint is SHA-256 of the key's DER SubjectPublicKeyInfo",
        )
    return hashed_address(FAMILY_NAME, raw)


def _check_low_s(algorithm: KeyAlgorithm, signature: bytes) -> None:
    """One encoding per anchor: custody normalises ECDSA to low-S, so a high-S twin of a
    valid signature is not accepted as a second, different anchor payload."""
    if algorithm.is_ecdsa and int.from_bytes(signature[32:], "big") > algorithm.curve_order >> 1:
        raise InvalidTransaction(
            "checkpoint signature is ECDSA with a high S value",
            hint="normalise it to low-S (s <= n/2) as custody does",
        )


def _field(content: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = content.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidTransaction(f"tl_audit payload field {name!r} must be {what}")
    return value


def decode_anchor_payload(payload: bytes) -> AuditAnchor:
    """The anchor in a payload, checked field by field; ``InvalidTransaction`` names the
    first problem. The payload must be canonical CBOR, so one anchor has one encoding."""
    content = decode_map(payload, "tl_audit payload")
    if sorted(content) != list(PAYLOAD_FIELDS):
        raise InvalidTransaction(
            f"tl_audit payload has fields {sorted(content)}; exactly these are required: "
            + ", ".join(PAYLOAD_FIELDS),
            hint="see docs/families.md, tl_audit",
        )
    spki = _field(content, "public_key", bytes, "the DER SubjectPublicKeyInfo (bytes)")
    if len(spki) > spki_bytes_max:
        raise InvalidTransaction(f"public_key is {len(spki)} bytes; at most {spki_bytes_max}")
    head_seq = _field(content, "head_seq", int, "an unsigned integer")
    if not 0 <= head_seq <= head_seq_max:
        raise InvalidTransaction(f"head_seq {head_seq} is outside 0..2^64-1")
    head_hash = _field(content, "head_hash", bytes, f"{head_hash_bytes} bytes")
    if len(head_hash) != head_hash_bytes:
        raise InvalidTransaction(f"head_hash is {len(head_hash)} bytes, not {head_hash_bytes}")
    signature = _field(content, "signature", bytes, f"{signature_bytes} bytes (raw)")
    if len(signature) != signature_bytes:
        raise InvalidTransaction(f"signature is {len(signature)} bytes, not {signature_bytes}")
    algorithm_name = _field(content, "algorithm", str, "an algorithm name (text)")
    try:
        public_key = PublicKey.from_spki(spki)
        algorithm = KeyAlgorithm.parse(algorithm_name)
    except InvalidInput as exc:
        raise InvalidTransaction(f"tl_audit payload: {exc.message}", hint=exc.hint) from exc
    if public_key.algorithm is not algorithm:
        raise InvalidTransaction(
            f"algorithm {algorithm.value!r} does not match the public key's "
            f"{public_key.algorithm.value!r}"
        )
    anchor = AuditAnchor(public_key, head_seq, head_hash, signature)
    if encode_canonical(content) != payload:
        raise InvalidTransaction(
            "tl_audit payload is not canonical CBOR",
            hint="encode it with RFC 8949 length-first key order and shortest forms",
        )
    return anchor


def decode_anchor_record(data: bytes) -> AnchorRecord:
    """The record stored at a member key's address (written only by this handler)."""
    record = decode_map(data, "tl_audit record")
    if sorted(record) != sorted(RECORD_FIELDS):
        raise InvalidTransaction(f"tl_audit record has fields {sorted(record)}")
    try:
        anchor = AuditAnchor(
            PublicKey.from_spki(record["public_key"]),
            int(record["head_seq"]),
            bytes(record["head_hash"]),
            bytes(record["signature"]),
        )
        history = tuple((int(s), bytes(h), str(t)) for s, h, t in record["history"])
        return AnchorRecord(anchor, int(record["anchors"]), str(record["transaction_id"]), history)
    except (InvalidInput, TypeError, ValueError) as exc:
        raise InvalidTransaction(f"tl_audit record is malformed: {exc}") from exc


def _check_progress(stored: AnchorRecord, anchor: AuditAnchor) -> None:
    """Only increasing heads; an equal head with another hash is a rewritten trail."""
    key = anchor.public_key.fingerprint[:16]
    old = stored.anchor
    if anchor.head_seq == old.head_seq and anchor.head_hash != old.head_hash:
        raise InvalidTransaction(
            f"audit trail rewrite detected: key {key} anchored head_seq {old.head_seq} with "
            f"hash {old.head_hash.hex()[:16]}, this anchor claims {anchor.head_hash.hex()[:16]}",
            hint="the member's key-usage trail differs from what it anchored before; "
            "compare its trail with the anchor in transaction " + stored.transaction_id[:16],
        )
    if anchor.head_seq <= old.head_seq:
        raise InvalidTransaction(
            f"anchor for key {key} does not advance: head_seq {anchor.head_seq} <= "
            f"anchored {old.head_seq}",
            hint="anchor a checkpoint newer than the one in state",
        )


class AuditAnchorHandler(TransactionHandler):
    """Checks a trail checkpoint's HSM signature and that the member's trail only grows."""

    @property
    def family_name(self) -> str:
        return FAMILY_NAME

    @property
    def family_versions(self) -> tuple[str, ...]:
        return (FAMILY_VERSION,)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        anchor = decode_anchor_payload(transaction.payload)
        anchor.verify()
        address = anchor.address
        stored_bytes = context.get_state([address]).get(address)
        transaction_id = transaction.header_signature
        if stored_bytes is None:
            record = AnchorRecord(anchor, 1, transaction_id, ())
        else:
            stored = decode_anchor_record(stored_bytes)
            if stored.anchor.public_key.spki_der != anchor.public_key.spki_der:
                raise InvalidTransaction("tl_audit record at this address is another key's")
            _check_progress(stored, anchor)
            previous = (stored.anchor.head_seq, stored.anchor.head_hash, stored.transaction_id)
            history = ((previous, *stored.history))[:anchor_history_max]
            record = AnchorRecord(anchor, stored.anchors + 1, transaction_id, history)
        context.set_state({address: record.encode()})
        context.add_event(
            "tl_audit/anchored",
            [
                ("fingerprint", anchor.public_key.fingerprint),
                ("head_seq", str(anchor.head_seq)),
                ("head_hash", anchor.head_hash.hex()),
            ],
        )


def anchor_addresses(fingerprint_hex: str) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of a transaction anchoring the trail of key ``fingerprint_hex``."""
    address = audit_anchor_address(fingerprint_hex)
    return [address], [address]
