"""JSON renderings of chain objects (docs/api.md), each next to the JSON Schema it obeys.

Keeping a rendering and its schema side by side is what lets the OpenAPI document describe
exactly what the handlers send: the tests validate live responses against these schemas.
Ids and keys are lowercase hex; binary values are standard base64 (Sawtooth's choice).
Transactions and batches keep Sawtooth's shapes field for field, so Sawtooth clients parse
them unchanged.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import cbor2

from trusted_ledger.chain import Block, BlockHeader, CommitCertificate
from trusted_ledger.custody import KeyAlgorithm, PublicKey
from trusted_ledger.errors import InternalError
from trusted_ledger.txn import Batch, Transaction

Json = dict[str, Any]
Schema = dict[str, Any]

# --- schema building blocks ------------------------------------------------------------------


def hex_string(chars: int | None = None) -> Schema:
    if chars is None:
        return {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
    return {"type": "string", "pattern": f"^[0-9a-f]{{{chars}}}$"}


def obj(properties: Mapping[str, Schema], optional: Iterable[str] = ()) -> Schema:
    """An object with exactly ``properties``, all required but ``optional``."""
    skipped = set(optional)
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in skipped],
        "additionalProperties": False,
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer", "minimum": 0}
BOOLEAN: Schema = {"type": "boolean"}
BASE64: Schema = {"type": "string", "contentEncoding": "base64"}
BLOCK_ID = hex_string(64)
ID = hex_string(128)
"""Batch and transaction ids: 64-byte header signatures."""
ADDRESS = hex_string(70)
ADDRESS_PREFIX: Schema = {"type": "string", "pattern": "^([0-9a-f]{2}){0,35}$"}
CLIENT_KEY = hex_string(66)
"""A client's compressed secp256k1 key, as Sawtooth headers carry it."""
ALGORITHMS = [algorithm.value for algorithm in KeyAlgorithm]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- transactions and batches (Sawtooth shapes) ---------------------------------------------

TRANSACTION_SCHEMA = obj(
    {
        "header_signature": ID,
        "header": obj(
            {
                "batcher_public_key": CLIENT_KEY,
                "dependencies": array(ID),
                "family_name": STRING,
                "family_version": STRING,
                "inputs": array(ADDRESS_PREFIX),
                "nonce": STRING,
                "outputs": array(ADDRESS_PREFIX),
                "payload_sha512": hex_string(128),
                "signer_public_key": CLIENT_KEY,
            }
        ),
        "payload": BASE64,
    }
)


def render_transaction(transaction: Transaction) -> Json:
    header = transaction.header
    return {
        "header_signature": transaction.header_signature,
        "header": {
            "batcher_public_key": header.batcher_public_key,
            "dependencies": list(header.dependencies),
            "family_name": header.family_name,
            "family_version": header.family_version,
            "inputs": list(header.inputs),
            "nonce": header.nonce,
            "outputs": list(header.outputs),
            "payload_sha512": header.payload_sha512,
            "signer_public_key": header.signer_public_key,
        },
        "payload": b64(transaction.payload),
    }


BATCH_SCHEMA = obj(
    {
        "header_signature": ID,
        "header": obj({"signer_public_key": CLIENT_KEY, "transaction_ids": array(ID)}),
        "trace": BOOLEAN,
        "transactions": array(TRANSACTION_SCHEMA),
    }
)


def render_batch(batch: Batch) -> Json:
    return {
        "header_signature": batch.header_signature,
        "header": {
            "signer_public_key": batch.header.signer_public_key,
            "transaction_ids": list(batch.header.transaction_ids),
        },
        "trace": batch.trace,
        "transactions": [render_transaction(t) for t in batch.transactions],
    }


# --- keys, certificates, blocks --------------------------------------------------------------

PUBLIC_KEY_SCHEMA = obj(
    {
        "algorithm": {"type": "string", "enum": ALGORITHMS},
        "public_key": hex_string(),
        "fingerprint": BLOCK_ID,
    }
)


def render_public_key(key: PublicKey) -> Json:
    return {
        "algorithm": key.algorithm.value,
        "public_key": key.spki_der.hex(),
        "fingerprint": key.fingerprint,
    }


CERTIFICATE_SCHEMA = obj(
    {
        "chain_id": STRING,
        "height": INTEGER,
        "round": INTEGER,
        "block_id": BLOCK_ID,
        "votes": array(
            obj(
                {
                    "signer_fingerprint": BLOCK_ID,
                    # null when this node does not know the member's key (see render_certificate)
                    "algorithm": {"type": ["string", "null"], "enum": [*ALGORITHMS, None]},
                    "public_key": {"type": ["string", "null"], "pattern": "^([0-9a-f]{2})*$"},
                    "signature": hex_string(128),
                }
            )
        ),
    }
)


def render_certificate(certificate: CommitCertificate, known_keys: Iterable[PublicKey]) -> Json:
    """A certificate with each vote's key where ``known_keys`` has it (by fingerprint).

    A vote names its member by fingerprint only (docs/formats.md §6.4); the key itself comes
    from the membership. The API knows this node's key and the block's proposer, which is
    the whole membership of a single-node chain; other members' keys render as null.
    """
    keys = {bytes.fromhex(key.fingerprint): key for key in known_keys}
    votes = []
    for vote in certificate.votes:
        key = keys.get(vote.member_fingerprint)
        votes.append(
            {
                "signer_fingerprint": vote.member_fingerprint.hex(),
                "algorithm": None if key is None else key.algorithm.value,
                "public_key": None if key is None else key.spki_der.hex(),
                "signature": vote.signature.hex(),
            }
        )
    return {
        "chain_id": certificate.chain_id,
        "height": certificate.height,
        "round": certificate.consensus_round,
        "block_id": certificate.block_id.hex(),
        "votes": votes,
    }


BLOCK_HEADER_SCHEMA = obj(
    {
        "chain_id": STRING,
        "block_num": INTEGER,
        "previous_block_id": BLOCK_ID,
        "state_root_hash": BLOCK_ID,
        "batch_root": BLOCK_ID,
        "proposer": PUBLIC_KEY_SCHEMA,
        "timestamp_ms": INTEGER,
        "consensus_round": INTEGER,
        "batch_count": INTEGER,
        "batch_ids": array(ID),
    }
)
BLOCK_SCHEMA = obj(
    {
        "header_signature": BLOCK_ID,
        "header": BLOCK_HEADER_SCHEMA,
        "proposer_signature": hex_string(128),
        "certificate": CERTIFICATE_SCHEMA,
        "batches": array(BATCH_SCHEMA),
    }
)


def render_block_header(header: BlockHeader, batch_ids: Iterable[str]) -> Json:
    return {
        "chain_id": header.chain_id,
        "block_num": header.number,
        "previous_block_id": header.previous_block_id.hex(),
        "state_root_hash": header.state_root.hex(),
        "batch_root": header.batch_root.hex(),
        "proposer": render_public_key(header.proposer),
        "timestamp_ms": header.timestamp_ms,
        "consensus_round": header.consensus_round,
        "batch_count": header.batch_count,
        "batch_ids": list(batch_ids),
    }


def render_block(
    block: Block, certificate: CommitCertificate, node_keys: Iterable[PublicKey]
) -> Json:
    """``header_signature`` is the block id (what every other field links to), not the
    proposer's signature, which is ``proposer_signature`` (docs/api.md)."""
    return {
        "header_signature": block.id.hex(),
        "header": render_block_header(block.header, block.batch_ids),
        "proposer_signature": block.proposer_signature.hex(),
        "certificate": render_certificate(certificate, (*node_keys, block.header.proposer)),
        "batches": [render_batch(batch) for batch in block.batches],
    }


# --- receipts ------------------------------------------------------------------------------

RECEIPT_SCHEMA = obj(
    {
        "transaction_id": ID,
        "family_name": STRING,
        "state_changes": array(
            obj(
                {
                    "address": ADDRESS,
                    "type": {"type": "string", "enum": ["SET", "DELETE"]},
                    "value": BASE64,
                },
                optional=["value"],
            )
        ),
        "events": array(
            obj(
                {
                    "event_type": STRING,
                    "attributes": array(obj({"key": STRING, "value": STRING})),
                    "data": BASE64,
                }
            )
        ),
        "data": array(BASE64),
    }
)


def _field(record: Mapping[str, Any], name: str, kind: type) -> Any:
    value = record.get(name)
    if not isinstance(value, kind):
        raise InternalError(f"stored receipt field {name!r} is not a {kind.__name__}")
    return value


def render_receipt(encoded: bytes) -> Json:
    """A stored receipt (canonical CBOR, docs/families.md "Receipt encoding") in Sawtooth's
    TransactionReceipt shape. The store wrote these bytes itself: a receipt that does not
    decode is a broken store, an ``InternalError``, never the client's fault."""
    try:
        record = cbor2.loads(encoded)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise InternalError(f"a stored receipt does not decode: {exc}") from exc
    if not isinstance(record, dict):
        raise InternalError("a stored receipt is not a CBOR map")
    changes = []
    for address, value in _field(record, "state_changes", list):
        if value is None:
            changes.append({"address": address, "type": "DELETE"})
        else:
            changes.append({"address": address, "type": "SET", "value": b64(value)})
    events = [
        {
            "event_type": _field(event, "event_type", str),
            "attributes": [
                {"key": key, "value": value} for key, value in _field(event, "attributes", list)
            ],
            "data": b64(_field(event, "data", bytes)),
        }
        for event in _field(record, "events", list)
    ]
    return {
        "transaction_id": _field(record, "transaction_id", str),
        "family_name": _field(record, "family_name", str),
        "state_changes": changes,
        "events": events,
        "data": [b64(item) for item in _field(record, "data", list)],
    }


# --- envelopes -----------------------------------------------------------------------------

LINK = STRING
ERROR_SCHEMA = obj({"error": obj({"code": INTEGER, "title": STRING, "message": STRING})})


def paging_schema(position: Schema) -> Schema:
    """``start`` as asked (null when defaulted); ``next_position``/``next`` absent at the end."""
    nullable = {**position, "type": [position["type"], "null"]}
    return obj(
        {"start": nullable, "limit": INTEGER, "next_position": position, "next": LINK},
        optional=["next_position", "next"],
    )


def error_body(status: int, title: str, message: str) -> Json:
    return {"error": {"code": status, "title": title, "message": message}}
