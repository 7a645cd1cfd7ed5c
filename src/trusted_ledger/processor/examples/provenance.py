"""``provenance`` 1.0: supply-chain custody of items, the processor kit's example family.

An item is registered by its first holder (the signer) and then handed from holder to holder.
Only the current holder may hand an item over, and the handover is the holder's own signed
transaction: the chain of custody is a chain of signatures, each by the party that let the
item go. The item's record keeps its whole custody history in order, so one state read
answers "who held it, when (in sequence), and by which transaction".

Payload (CBOR map):
- ``{"Action": "register", "Item": id, "Description": text}``
- ``{"Action": "handover", "Item": id, "To": public key of the receiving party}``

State at ``item_address(id)`` (canonical CBOR):
``{"item": id, "description": text, "holder": key, "history": [entry, ...]}``, each entry
``{"seq": n, "holder": key, "from": key or null, "txn": transaction id}``; ``seq`` counts
custody changes from 0 (the registration), independent of blocks, so history reads the
same however transactions were batched.

Written against processing's handler interface, it runs built in (``HandlerRegistry``) or in
an external processor (``trusted-ledger processor run ...provenance:ProvenanceHandler``) with
identical results; the tests check that. docs/families.md describes it for clients.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing.codec import decode_map, encode_canonical
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.state import namespace_prefix
from trusted_ledger.txn import Transaction

FAMILY_NAME = "provenance"
FAMILY_VERSION = "1.0"
PROVENANCE_NAMESPACE = namespace_prefix(FAMILY_NAME)
ACTIONS = ("register", "handover")
item_id_chars_max = 64
description_chars_max = 256
custody_entries_max = 1000
"""Custody changes one item may record. The record is one state value read and rewritten on
every handover, so its size (about 200 bytes an entry) must stay bounded; an item that
changes hands more often belongs in a family that archives old history."""
_ITEM_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_PARTY_PATTERN = re.compile(r"0[23][0-9a-f]{64}")


def item_address(item_id: str) -> str:
    """The item's address: the namespace and 64 hex chars of SHA-512(id)."""
    return PROVENANCE_NAMESPACE + hashlib.sha512(item_id.encode("utf-8")).hexdigest()[:64]


# --- client side: payloads with the addresses their transaction must declare ----------------


@dataclass(frozen=True, slots=True)
class ProvenanceOperation:
    """A payload with the inputs and outputs its transaction must declare."""

    payload: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def register_operation(item_id: str, description: str) -> ProvenanceOperation:
    """Register ``item_id``; the transaction's signer becomes its first holder."""
    address = item_address(item_id)
    payload = {"Action": "register", "Item": item_id, "Description": description}
    return ProvenanceOperation(encode_canonical(payload), (address,), (address,))


def handover_operation(item_id: str, to: str) -> ProvenanceOperation:
    """Hand ``item_id`` to the party with public key ``to``; signed by the current holder."""
    address = item_address(item_id)
    payload = {"Action": "handover", "Item": item_id, "To": to}
    return ProvenanceOperation(encode_canonical(payload), (address,), (address,))


# --- state records --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustodyEntry:
    """One custody change: ``holder`` received the item from ``from_holder`` (None: it was
    registered) in transaction ``transaction_id``, the ``seq``-th change of this item."""

    seq: int
    holder: str
    from_holder: str | None
    transaction_id: str

    def to_cbor(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "holder": self.holder,
            "from": self.from_holder,
            "txn": self.transaction_id,
        }

    @classmethod
    def from_cbor(cls, value: object) -> CustodyEntry:
        if not isinstance(value, dict):
            raise InvalidTransaction("custody entry must be a CBOR map")
        seq = value.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InvalidTransaction("custody entry's seq must be a non-negative integer")
        from_holder = value.get("from")
        if from_holder is not None and not isinstance(from_holder, str):
            raise InvalidTransaction("custody entry's from must be a key or null")
        return cls(seq, _text(value, "holder"), from_holder, _text(value, "txn"))


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item, its current holder and its full custody history (oldest first)."""

    item_id: str
    description: str
    history: tuple[CustodyEntry, ...]

    @property
    def holder(self) -> str:
        return self.history[-1].holder

    def encode(self) -> bytes:
        return encode_canonical(
            {
                "item": self.item_id,
                "description": self.description,
                "holder": self.holder,
                "history": [entry.to_cbor() for entry in self.history],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ItemRecord:
        """Read a stored record, checking what the handler relies on (the history's order)."""
        record = decode_map(data, "provenance item record")
        raw_history = record.get("history")
        if not isinstance(raw_history, list) or not raw_history:
            raise InvalidTransaction("item record's history must be a non-empty list")
        history = tuple(CustodyEntry.from_cbor(entry) for entry in raw_history)
        if [entry.seq for entry in history] != list(range(len(history))):
            raise InvalidTransaction("item record's history is not numbered 0, 1, 2, ...")
        item = cls(_text(record, "item"), _text(record, "description"), history)
        if _text(record, "holder") != item.holder:
            raise InvalidTransaction("item record's holder is not its last custodian")
        return item


# --- the handler ----------------------------------------------------------------------------


class ProvenanceHandler(TransactionHandler):
    """Registers items and records their handovers between parties."""

    @property
    def family_name(self) -> str:
        return FAMILY_NAME

    @property
    def family_versions(self) -> tuple[str, ...]:
        return (FAMILY_VERSION,)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (PROVENANCE_NAMESPACE,)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        payload = decode_map(transaction.payload, "provenance payload")
        action = payload.get("Action")
        if action not in ACTIONS:
            raise InvalidTransaction(f"Action must be one of {', '.join(ACTIONS)}")
        item_id = _item_id(payload)
        address = item_address(item_id)
        stored = context.get_state([address]).get(address)
        signer = transaction.header.signer_public_key
        if action == "register":
            if stored is not None:
                raise InvalidTransaction(f"item {item_id!r} is already registered")
            description = _text(payload, "Description")
            if len(description) > description_chars_max:
                raise InvalidTransaction(
                    f"Description must be at most {description_chars_max} characters"
                )
            entry = CustodyEntry(0, signer, None, transaction.id)
            record = ItemRecord(item_id, description, (entry,))
            event_type = "provenance/registered"
        else:
            if stored is None:
                raise InvalidTransaction(f"item {item_id!r} is not registered")
            current = ItemRecord.decode(stored)
            receiver = _party(payload, "To")
            # The signer is the party handing over: custody moves only by its holder's
            # signature, never by the receiver's claim.
            if signer != current.holder:
                raise InvalidTransaction(
                    f"only the current holder may hand item {item_id!r} over",
                    hint=f"the holder is {current.holder}",
                )
            if receiver == current.holder:
                raise InvalidTransaction(f"item {item_id!r} is already held by {receiver}")
            if len(current.history) >= custody_entries_max:
                raise InvalidTransaction(
                    f"item {item_id!r} has reached custody_entries_max={custody_entries_max}"
                )
            entry = CustodyEntry(len(current.history), receiver, signer, transaction.id)
            record = ItemRecord(current.item_id, current.description, (*current.history, entry))
            event_type = "provenance/handed-over"
        context.set_state({address: record.encode()})
        context.add_event(
            event_type,
            [
                ("item", item_id),
                ("holder", entry.holder),
                ("from", entry.from_holder or ""),
                ("seq", str(entry.seq)),
            ],
        )


def _text(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str):
        raise InvalidTransaction(f"{field} must be a text string")
    return value


def _item_id(payload: Mapping[str, Any]) -> str:
    item_id = _text(payload, "Item")
    if not _ITEM_ID_PATTERN.fullmatch(item_id):
        raise InvalidTransaction(
            f"Item must be 1..{item_id_chars_max} of A-Z a-z 0-9 . _ : / -, "
            "starting with a letter or digit"
        )
    return item_id


def _party(payload: Mapping[str, Any], field: str) -> str:
    party = _text(payload, field)
    if not _PARTY_PATTERN.fullmatch(party):
        raise InvalidTransaction(
            f"{field} must be a compressed secp256k1 public key (66 lowercase hex chars)"
        )
    return party
