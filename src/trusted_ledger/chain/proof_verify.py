"""Verifiers of the ledger's proof documents, usable without a node or a database.

Four proof types (docs/formats.md §8): ``batch-inclusion`` (a batch id is a leaf of a
block's batch Merkle root), ``transaction-inclusion`` (a transaction, signed by its signer,
is listed by a batch header signed by its batcher, and that batch is in the block), ``state``
(the value at an address, or its absence, under a block's state root) and
``audit-consistency`` (the node's key-usage trail between two signed checkpoints).

The first three carry the block header, the proposer's signature over its id and, when the
node has one, the block's commit certificate. Given the membership (the public keys whose
votes count), the verifier checks the certificate's quorum, which is what makes the header,
and so everything proven under it, trustworthy; without a membership it proves only that the
pieces agree with the header they carry, and says so (``VerifiedBlock.certified``).

This module imports only pure format code (block header and certificate formats, txn
headers, state node encodings, hashing, custody's key and audit formats): every check is
on the bytes of the document. Verification raises ``ProofMalformed`` (the document cannot be
read) or ``ProofRejected`` (it does not prove what it claims), each naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trusted_ledger.chain.block import SIGNATURE_BYTES, BlockHeader, decode_header
from trusted_ledger.chain.certificate import CommitCertificate, Membership, decode_certificate
from trusted_ledger.custody.audit_proof import (
    AUDIT_PROOF_TYPE,
    VerifiedAuditRange,
    verify_audit_proof,
)
from trusted_ledger.custody.keyspec import PublicKey
from trusted_ledger.errors import (
    BatchListFault,
    CertificateInvalid,
    InvalidInput,
    InvalidProof,
    MalformedBlock,
    MalformedCertificate,
    ProofMalformed,
    ProofRejected,
    SignatureInvalid,
)
from trusted_ledger.hashing import sha256
from trusted_ledger.hashing.merkle import leaf_hash, verify_inclusion
from trusted_ledger.state.encoding import value_bytes_max
from trusted_ledger.state.proofs import state_proof_nodes_max, verify_state_path
from trusted_ledger.txn import BatchHeader, TransactionHeader, verify_header_signature
from trusted_ledger.txn.fields import Where, check_public_key_hex, check_signature_hex
from trusted_ledger.txn.protos import batch_pb2, transaction_pb2

PROOF_VERSION = 1
BATCH_PROOF_TYPE = "batch-inclusion"
TRANSACTION_PROOF_TYPE = "transaction-inclusion"
STATE_PROOF_TYPE = "state"
PROOF_TYPES = (BATCH_PROOF_TYPE, TRANSACTION_PROOF_TYPE, STATE_PROOF_TYPE, AUDIT_PROOF_TYPE)
merkle_path_hashes_max = 64
"""Longest batch audit path: a block holds at most 10,000 batches (14 levels); 64 is the
most any RFC 6962 tree of 2**64 leaves needs."""
header_hex_chars_max = 2 * 512
"""Hex of the longest block header (docs/formats.md §6.2) ..."""
certificate_hex_chars_max = 2 * (128 + 1024 * 96)
"""... and of the largest commit certificate (1,024 votes)."""
txn_header_hex_chars_max = 2 * 256 * 1024
"""Hex of the largest batch header (``batch_header_bytes_max``); transaction headers are
smaller still."""

_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_INCLUSION_FIELDS = ("version", "type", "block", "batch_id", "index", "tree_size", "path")
FIELDS = {
    BATCH_PROOF_TYPE: frozenset(_INCLUSION_FIELDS),
    TRANSACTION_PROOF_TYPE: frozenset(
        (
            *_INCLUSION_FIELDS,
            "batch_header",
            "transaction_id",
            "transaction_index",
            "transaction_header",
        )
    ),
    STATE_PROOF_TYPE: frozenset(("version", "type", "block", "address", "value", "nodes")),
}
"""Exactly the fields of each block-anchored proof type: none missing, none unknown."""
BLOCK_FIELDS = frozenset(("header", "proposer_signature", "certificate"))


@dataclass(frozen=True)
class VerifiedBlock:
    """The block a proof is anchored in, as far as the proof established it."""

    chain_id: str
    number: int
    block_id: bytes
    header: BlockHeader
    certified: bool
    """True when a commit certificate was checked against a membership the caller gave."""


@dataclass(frozen=True)
class VerifiedProof:
    """What a proof established: its type, the block (None for audit proofs), the facts
    proven (JSON-ready), and one sentence saying it."""

    type: str
    block: VerifiedBlock | None
    facts: dict[str, Any]
    statement: str


# --- reading fields --------------------------------------------------------------------------


def _hex_value(value: object, where: str, chars_max: int) -> bytes:
    if not isinstance(value, str) or len(value) > chars_max or not _HEX.fullmatch(value):
        raise ProofMalformed(f"must be lowercase hex of at most {chars_max} chars", field=where)
    return bytes.fromhex(value)


def _hex(document: Mapping[str, Any], name: str, field: str, chars_max: int) -> bytes:
    return _hex_value(document.get(name), f"{field}{name}", chars_max)


def _fixed_hex_value(value: object, where: str, size: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise ProofMalformed(f"must be {2 * size} lowercase hex chars", field=where)
    return bytes.fromhex(value)


def _fixed_hex(document: Mapping[str, Any], name: str, field: str, size: int) -> bytes:
    return _fixed_hex_value(document.get(name), f"{field}{name}", size)


def _uint(document: Mapping[str, Any], name: str, field: str = "") -> int:
    value = document.get(name)
    if type(value) is not int or value < 0:
        raise ProofMalformed("must be a non-negative integer", field=f"{field}{name}")
    return value


def _object(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document.get(name)
    if not isinstance(value, dict):
        raise ProofMalformed("must be a JSON object", field=name)
    return value


# --- the block ---------------------------------------------------------------------------


def verify_block_part(
    part: Mapping[str, Any], membership: Membership | None, field: str = "block."
) -> VerifiedBlock:
    """Check the ``block`` object of a proof: header, proposer signature and (with a
    membership) the commit certificate."""
    _exact_fields(part, BLOCK_FIELDS, field.rstrip("."))
    header_bytes = _hex(part, "header", field, header_hex_chars_max)
    try:
        header = decode_header(header_bytes)
    except (MalformedBlock, InvalidInput) as exc:
        raise ProofMalformed(str(exc), field=f"{field}header") from None
    block_id = sha256(header_bytes)
    signature = _fixed_hex(part, "proposer_signature", field, SIGNATURE_BYTES)
    try:
        header.proposer.verify(block_id, signature)
    except (SignatureInvalid, InvalidInput) as exc:
        raise ProofRejected(
            f"does not verify over block id {block_id.hex()} under the proposer key in the "
            f"header ({exc})",
            field=f"{field}proposer_signature",
        ) from None
    certificate = _certificate(part, field)
    if certificate is not None:
        bound = (certificate.chain_id, certificate.height, certificate.block_id)
        if bound != (header.chain_id, header.number, block_id):
            raise ProofRejected(
                f"is for chain {certificate.chain_id!r} height {certificate.height} block "
                f"{certificate.block_id.hex()[:16]}, not this header's block {header.number} "
                f"({block_id.hex()[:16]})",
                field=f"{field}certificate",
            )
    if membership is not None:
        _check_against_membership(header, certificate, membership, field)
    return VerifiedBlock(header.chain_id, header.number, block_id, header, membership is not None)


def _certificate(part: Mapping[str, Any], field: str) -> CommitCertificate | None:
    if part.get("certificate") is None:
        return None
    data = _hex(part, "certificate", field, certificate_hex_chars_max)
    try:
        return decode_certificate(data)
    except (MalformedCertificate, InvalidInput) as exc:
        raise ProofMalformed(str(exc), field=f"{field}certificate") from None


def _check_against_membership(
    header: BlockHeader,
    certificate: CommitCertificate | None,
    membership: Membership,
    field: str,
) -> None:
    if certificate is None:
        raise ProofRejected(
            "the proof carries no commit certificate to check against the membership",
            field=f"{field}certificate",
            hint="fetch the proof again from a node that has the block's certificate",
        )
    if header.proposer not in membership:
        raise ProofRejected(
            f"proposer {header.proposer.fingerprint[:16]} is not a member",
            field=f"{field}header",
        )
    try:
        certificate.verify_votes(membership)
    except CertificateInvalid as exc:
        raise ProofRejected(str(exc), field=f"{field}certificate") from None


# --- batch and transaction inclusion ------------------------------------------------------


def _verify_batch_inclusion(proof: Mapping[str, Any], block: VerifiedBlock) -> tuple[str, int]:
    batch_id = _fixed_hex(proof, "batch_id", "", 64)
    index = _uint(proof, "index")
    tree_size = _uint(proof, "tree_size")
    path_value = proof.get("path")
    if not isinstance(path_value, list) or len(path_value) > merkle_path_hashes_max:
        raise ProofMalformed(f"a list of at most {merkle_path_hashes_max} hashes", field="path")
    path = [_fixed_hex_value(h, f"path[{i}]", 32) for i, h in enumerate(path_value)]
    if tree_size != block.header.batch_count:
        raise ProofRejected(
            f"{tree_size}, the block holds {block.header.batch_count} batches", field="tree_size"
        )
    try:
        verify_inclusion(leaf_hash(batch_id), index, tree_size, path, block.header.batch_root)
    except (InvalidProof, InvalidInput) as exc:
        raise ProofRejected(
            f"the audit path does not lead from batch {batch_id.hex()[:16]} at index {index} "
            f"to the header's batch_root {block.header.batch_root.hex()} ({exc})",
            field="path",
        ) from None
    return batch_id.hex(), index


def _batch_header(proof: Mapping[str, Any], batch_id: str) -> BatchHeader:
    raw = _hex(proof, "batch_header", "", txn_header_hex_chars_max)
    try:
        header = BatchHeader.from_proto(batch_pb2.BatchHeader.FromString(raw))
    except Exception as exc:  # protobuf raises DecodeError and, on bad UTF-8, others
        raise ProofMalformed(f"not a BatchHeader: {exc}", field="batch_header") from None
    if header.encode() != raw:
        raise ProofMalformed("not in canonical encoding", field="batch_header")
    _check_signed(header.signer_public_key, batch_id, raw, "batch_header")
    return header


def _transaction_header(proof: Mapping[str, Any], transaction_id: str) -> TransactionHeader:
    raw = _hex(proof, "transaction_header", "", txn_header_hex_chars_max)
    try:
        header = TransactionHeader.from_proto(transaction_pb2.TransactionHeader.FromString(raw))
    except Exception as exc:  # protobuf raises DecodeError and, on bad UTF-8, others
        raise ProofMalformed(
            f"not a TransactionHeader: {exc}", field="transaction_header"
        ) from None
    if header.encode() != raw:
        raise ProofMalformed("not in canonical encoding", field="transaction_header")
    _check_signed(header.signer_public_key, transaction_id, raw, "transaction_header")
    return header


def _check_signed(public_key_hex: str, signature_hex: str, raw: bytes, field: str) -> None:
    """``signature_hex`` (an id) is the signer's low-S secp256k1 signature over the header."""
    try:
        check_public_key_hex(public_key_hex, "signer_public_key", Where())
        check_signature_hex(signature_hex, "header_signature", Where())
        verify_header_signature(public_key_hex, signature_hex, sha256(raw), Where())
    except BatchListFault as exc:
        raise ProofRejected(
            f"the id {signature_hex[:16]}... is not the signer's signature over these header "
            f"bytes ({exc})",
            field=field,
        ) from None


def verify_batch_proof(
    proof: Mapping[str, Any], membership: Membership | None = None
) -> VerifiedProof:
    _check_envelope(proof, BATCH_PROOF_TYPE)
    block = verify_block_part(_object(proof, "block"), membership)
    batch_id, index = _verify_batch_inclusion(proof, block)
    return VerifiedProof(
        BATCH_PROOF_TYPE,
        block,
        {"batch_id": batch_id, "index": index, **_block_facts(block)},
        f"batch {batch_id[:16]}... is batch {index} of block {block.number} "
        f"({block.block_id.hex()[:16]}...)",
    )


def verify_transaction_proof(
    proof: Mapping[str, Any], membership: Membership | None = None
) -> VerifiedProof:
    _check_envelope(proof, TRANSACTION_PROOF_TYPE)
    block = verify_block_part(_object(proof, "block"), membership)
    batch_id, index = _verify_batch_inclusion(proof, block)
    batch_header = _batch_header(proof, batch_id)
    transaction_id = _fixed_hex(proof, "transaction_id", "", 64).hex()
    position = _uint(proof, "transaction_index")
    ids = batch_header.transaction_ids
    if position >= len(ids) or ids[position] != transaction_id:
        raise ProofRejected(
            f"the batch header does not list transaction {transaction_id[:16]}... at "
            f"position {position}",
            field="transaction_index",
        )
    header = _transaction_header(proof, transaction_id)
    if header.batcher_public_key != batch_header.signer_public_key:
        raise ProofRejected(
            "the transaction names another batcher than the batch's signer",
            field="transaction_header",
        )
    facts = {
        "transaction_id": transaction_id,
        "transaction_index": position,
        "family_name": header.family_name,
        "family_version": header.family_version,
        "signer_public_key": header.signer_public_key,
        "payload_sha512": header.payload_sha512,
        "batch_id": batch_id,
        "batch_index": index,
        **_block_facts(block),
    }
    statement = (
        f"transaction {transaction_id[:16]}... ({header.family_name} {header.family_version}, "
        f"signed by {header.signer_public_key[:16]}...) is transaction {position} of batch "
        f"{index} of block {block.number} ({block.block_id.hex()[:16]}...)"
    )
    return VerifiedProof(TRANSACTION_PROOF_TYPE, block, facts, statement)


# --- state -------------------------------------------------------------------------------


def verify_state_proof(
    proof: Mapping[str, Any], membership: Membership | None = None
) -> VerifiedProof:
    _check_envelope(proof, STATE_PROOF_TYPE)
    block = verify_block_part(_object(proof, "block"), membership)
    address = proof.get("address")
    if not isinstance(address, str):
        raise ProofMalformed("must be a 70-char hex address", field="address")
    nodes_value = proof.get("nodes")
    if not isinstance(nodes_value, list) or len(nodes_value) > state_proof_nodes_max:
        raise ProofMalformed(f"a list of at most {state_proof_nodes_max} nodes", field="nodes")
    nodes = [
        _hex_value(node, f"nodes[{i}]", 2 * (5 + value_bytes_max))
        for i, node in enumerate(nodes_value)
    ]
    value = verify_state_path(block.header.state_root, address, nodes)
    claimed = proof.get("value")
    claimed_bytes = None if claimed is None else _hex(proof, "value", "", 2 * value_bytes_max)
    if claimed_bytes != value:
        raise ProofRejected(
            "differs from the value the nodes prove"
            + (" (the address is absent)" if value is None else ""),
            field="value",
        )
    shown = (
        "absent" if value is None else f"{len(value)} bytes (sha256 {sha256(value).hex()[:16]}...)"
    )
    return VerifiedProof(
        STATE_PROOF_TYPE,
        block,
        {
            "address": address,
            "value": None if value is None else value.hex(),
            "state_root": block.header.state_root.hex(),
            **_block_facts(block),
        },
        f"address {address} holds {shown} at block {block.number} "
        f"(state root {block.header.state_root.hex()[:16]}...)",
    )


# --- any proof ---------------------------------------------------------------------------


def _check_envelope(proof: Mapping[str, Any], kind: str) -> None:
    if not isinstance(proof, Mapping):
        raise ProofMalformed("a proof is a JSON object", field="proof")
    if proof.get("version") != PROOF_VERSION:
        raise ProofMalformed(
            f"{proof.get('version')!r} is not supported (this verifier reads {PROOF_VERSION})",
            field="version",
        )
    if proof.get("type") != kind:
        raise ProofMalformed(f"{proof.get('type')!r}, expected {kind!r}", field="type")
    _exact_fields(proof, FIELDS[kind], "proof")


def _exact_fields(document: Mapping[str, Any], fields: frozenset[str], field: str) -> None:
    missing, unknown = sorted(fields - set(document)), sorted(set(document) - fields)
    if missing or unknown:
        raise ProofMalformed(f"missing fields {missing}, unknown fields {unknown}", field=field)


def _block_facts(block: VerifiedBlock) -> dict[str, Any]:
    return {
        "chain_id": block.chain_id,
        "block_num": block.number,
        "block_id": block.block_id.hex(),
        "certified": block.certified,
    }


def verify_proof(
    proof: Mapping[str, Any],
    membership: Membership | None = None,
    node_key: PublicKey | None = None,
) -> VerifiedProof:
    """Verify a proof document of any type. ``membership`` checks block proofs' commit
    certificates; ``node_key`` is the node key an audit proof's checkpoints must be signed
    by (default: the key inside the proof, reported as such)."""
    if not isinstance(proof, Mapping):
        raise ProofMalformed("a proof is a JSON object", field="proof")
    kind = proof.get("type")
    if kind == BATCH_PROOF_TYPE:
        return verify_batch_proof(proof, membership)
    if kind == TRANSACTION_PROOF_TYPE:
        return verify_transaction_proof(proof, membership)
    if kind == STATE_PROOF_TYPE:
        return verify_state_proof(proof, membership)
    if kind == AUDIT_PROOF_TYPE:
        return _audit(verify_audit_proof(proof, node_key))
    raise ProofMalformed(f"{kind!r} is not one of {', '.join(PROOF_TYPES)}", field="type")


def _audit(result: VerifiedAuditRange) -> VerifiedProof:
    source = "the key inside the proof" if result.key_from_proof else "the trusted node key"
    statement = (
        f"checkpoint {result.to_seq} extends checkpoint {result.from_seq}: records "
        f"{result.from_head_seq + 1}..{result.to_head_seq} re-chain between their signed heads, "
        f"both signed by {source} {result.key_fingerprint[:16]}..."
    )
    facts = {
        "from_seq": result.from_seq,
        "to_seq": result.to_seq,
        "from_head_seq": result.from_head_seq,
        "to_head_seq": result.to_head_seq,
        "records": result.records,
        "key_fingerprint": result.key_fingerprint,
        "key_from_proof": result.key_from_proof,
    }
    return VerifiedProof(AUDIT_PROOF_TYPE, None, facts, statement)
