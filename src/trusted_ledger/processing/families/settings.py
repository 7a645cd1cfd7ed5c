"""``settings`` 1.0: on-chain configuration, changed only by a vote of authorised admins.

Modelled on Sawtooth's ``sawtooth_settings``: a key's address is the family namespace plus
four 16-hex-char parts (SHA-256 of each of the key's first three dot-separated parts and of
the rest, empty parts hashing ""), so settings under one prefix share address prefixes. A
proposal takes effect once approvals from keys listed in ``tl.settings.vote.authorized_keys``
reach ``tl.settings.vote.approval_threshold``. Formats: docs/families.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing.codec import decode_map, encode_canonical
from trusted_ledger.processing.context import HandlerContext, event_data_bytes_max
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    decode_members_setting,
    members_setting_chars_max,
)
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.state import StateView, namespace_prefix
from trusted_ledger.txn import Transaction

FAMILY_NAME = "settings"
FAMILY_VERSION = "1.0"
SETTINGS_NAMESPACE = namespace_prefix(FAMILY_NAME)
AUTHORIZED_KEYS = "tl.settings.vote.authorized_keys"
APPROVAL_THRESHOLD = "tl.settings.vote.approval_threshold"
PROPOSALS = "tl.settings.vote.proposals"  # an address for pending proposals, not a setting
key_chars_max = 256
value_chars_max = 4096
pending_proposals_max = 64
"""Open proposals at once; bounds the record every settings transaction reads and rewrites."""
pending_members_proposals_max = 4
"""Open proposals of ``tl.consensus.members`` at once: each may hold a 96 KiB value, and the
proposals record (one state value, at most 1 MiB) must stay well inside its bound."""
_KEY_PARTS = 4
_PART_HEX_CHARS = 16
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_PUBLIC_KEY_PATTERN = re.compile(r"0[23][0-9a-f]{64}")


def _short_hash(part: str) -> str:
    return hashlib.sha256(part.encode("utf-8")).hexdigest()[:_PART_HEX_CHARS]


def setting_address(key: str) -> str:
    parts = key.split(".", _KEY_PARTS - 1)
    parts += [""] * (_KEY_PARTS - len(parts))
    return SETTINGS_NAMESPACE + "".join(_short_hash(part) for part in parts)


def settings_addresses(key: str) -> tuple[list[str], list[str]]:
    """(inputs, outputs) a transaction about ``key`` must declare."""
    voting = [setting_address(AUTHORIZED_KEYS), setting_address(APPROVAL_THRESHOLD)]
    changed = [setting_address(key), setting_address(PROPOSALS)]
    return sorted({*voting, *changed}), changed


def propose_payload(key: str, value: str, nonce: str) -> bytes:
    return encode_canonical({"Action": "propose", "Key": key, "Value": value, "Nonce": nonce})


def vote_payload(proposal_id: str, accept: bool) -> bytes:
    vote = "accept" if accept else "reject"
    return encode_canonical({"Action": "vote", "ProposalId": proposal_id, "Vote": vote})


def proposal_id(key: str, value: str, nonce: str) -> str:
    """SHA-256 of the canonical CBOR of {"Key", "Value", "Nonce"}, in hex."""
    body = encode_canonical({"Key": key, "Value": value, "Nonce": nonce})
    return hashlib.sha256(body).hexdigest()


def _entries(data: bytes | None) -> dict[str, str]:
    """The key -> value map at one address (a map: keys may share an address)."""
    if data is None:
        return {}
    entries = decode_map(data, "settings record")
    if not all(isinstance(value, str) for value in entries.values()):
        raise InvalidTransaction("settings record holds a non-text value")
    return entries


def read_setting(view: StateView, key: str) -> str | None:
    """The committed value of ``key`` in ``view``, for other layers (consensus, api)."""
    return _entries(view.get(setting_address(key))).get(key)


def settings_genesis_changes(settings: Mapping[str, str]) -> dict[str, bytes]:
    """State changes that write ``settings`` (for the genesis block's ``StateStore.update``)."""
    by_address: dict[str, dict[str, str]] = {}
    for key, value in settings.items():
        _check_setting(key, value)
        by_address.setdefault(setting_address(key), {})[key] = value
    return {address: encode_canonical(entries) for address, entries in by_address.items()}


def _check_setting(key: object, value: object) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= key_chars_max:
        raise InvalidTransaction(f"a setting key is text of 1..{key_chars_max} characters")
    if not _KEY_PATTERN.fullmatch(key) or key == PROPOSALS:
        raise InvalidTransaction(f"setting key {key!r} is not dot-separated [A-Za-z0-9_-] words")
    limit = members_setting_chars_max if key == MEMBERS_SETTING else value_chars_max
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidTransaction(f"a value of setting {key!r} is text of at most {limit} chars")
    if key == MEMBERS_SETTING:
        decode_members_setting(value)  # the consortium's membership: must be usable as is
    if key == AUTHORIZED_KEYS:
        keys = value.split(",")
        if not value or not all(_PUBLIC_KEY_PATTERN.fullmatch(k) for k in keys):
            raise InvalidTransaction(
                f"{AUTHORIZED_KEYS} is a non-empty comma-separated list of public keys"
            )
    if key == APPROVAL_THRESHOLD and (not value.isdigit() or int(value) < 1):
        raise InvalidTransaction(f"{APPROVAL_THRESHOLD} is a positive decimal integer")


class _Vote:
    """What one settings transaction sees: voters, threshold, pending proposals."""

    def __init__(self, context: HandlerContext, signer: str) -> None:
        self.context = context
        self.signer = signer
        self.authorized = self.setting(AUTHORIZED_KEYS)
        self.authorized_keys = self.authorized.split(",") if self.authorized else []
        # Sawtooth lets anyone vote while no keys are set; a bank consortium does not:
        # the first admins come from the genesis block.
        if signer not in self.authorized_keys:
            raise InvalidTransaction(
                f"signer is not in {AUTHORIZED_KEYS}", hint="only authorised admins may vote"
            )
        self.threshold = int(self.setting(APPROVAL_THRESHOLD) or "1")
        address = setting_address(PROPOSALS)
        stored = context.get_state([address]).get(address)
        self.proposals: dict[str, Any] = (
            decode_map(stored, "proposals record") if stored is not None else {}
        )

    def setting(self, key: str) -> str:
        address = setting_address(key)
        return _entries(self.context.get_state([address]).get(address)).get(key, "")

    def tally(self, identifier: str, proposal: dict[str, Any]) -> None:
        """Apply or drop ``proposal`` if its votes decide it, else keep it pending."""
        votes = proposal["votes"]
        accepts = sum(1 for vote in votes.values() if vote == "accept")
        rejects = len(votes) - accepts
        self.proposals.pop(identifier, None)
        if accepts >= self.threshold:
            self.apply(proposal["key"], proposal["value"])
        elif rejects < self.threshold:
            if len(self.proposals) >= pending_proposals_max:
                raise InvalidTransaction(f"{pending_proposals_max} proposals are already open")
            self.proposals[identifier] = proposal
        self.context.set_state({setting_address(PROPOSALS): encode_canonical(self.proposals)})

    def apply(self, key: str, value: str) -> None:
        if key == APPROVAL_THRESHOLD and int(value) > len(self.authorized_keys):
            raise InvalidTransaction("the threshold would exceed the number of authorised keys")
        address = setting_address(key)
        entries = _entries(self.context.get_state([address]).get(address))
        entries[key] = value
        self.context.set_state({address: encode_canonical(entries)})
        data = value.encode("utf-8")
        if len(data) <= event_data_bytes_max:
            self.context.add_event("settings/updated", [("key", key)], data)
        else:
            # Too long for an event (a large membership): its digest; the value is in state.
            digest = hashlib.sha256(data).hexdigest()
            self.context.add_event("settings/updated", [("key", key), ("value_sha256", digest)])


class SettingsHandler(TransactionHandler):
    """Proposals and votes on configuration keys."""

    @property
    def family_name(self) -> str:
        return FAMILY_NAME

    @property
    def family_versions(self) -> tuple[str, ...]:
        return (FAMILY_VERSION,)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        payload = decode_map(transaction.payload, "settings payload")
        vote = _Vote(context, transaction.header.signer_public_key)
        action = payload.get("Action")
        if action == "propose":
            _propose(vote, payload)
        elif action == "vote":
            _cast(vote, payload)
        else:
            raise InvalidTransaction('Action must be "propose" or "vote"')


def _propose(vote: _Vote, payload: Mapping[str, Any]) -> None:
    key, value, nonce = payload.get("Key"), payload.get("Value"), payload.get("Nonce")
    _check_setting(key, value)
    assert isinstance(key, str) and isinstance(value, str)
    if not isinstance(nonce, str) or len(nonce) > key_chars_max:
        raise InvalidTransaction(f"Nonce is text of at most {key_chars_max} characters")
    if key == APPROVAL_THRESHOLD and int(value) > len(vote.authorized_keys):
        raise InvalidTransaction("the threshold would exceed the number of authorised keys")
    identifier = proposal_id(key, value, nonce)
    if identifier in vote.proposals:
        raise InvalidTransaction(f"proposal {identifier[:16]}... is already open")
    if key == MEMBERS_SETTING:
        open_members = sum(1 for p in vote.proposals.values() if p["key"] == MEMBERS_SETTING)
        if open_members >= pending_members_proposals_max:
            raise InvalidTransaction(
                f"{pending_members_proposals_max} proposals of {MEMBERS_SETTING} are already open",
                hint="vote on (or reject) the open ones first",
            )
    vote.tally(identifier, {"key": key, "value": value, "votes": {vote.signer: "accept"}})


def _cast(vote: _Vote, payload: Mapping[str, Any]) -> None:
    identifier, choice = payload.get("ProposalId"), payload.get("Vote")
    if choice not in ("accept", "reject"):
        raise InvalidTransaction('Vote must be "accept" or "reject"')
    if not isinstance(identifier, str) or identifier not in vote.proposals:
        raise InvalidTransaction(f"no open proposal {identifier!r}")
    proposal: dict[str, Any] = vote.proposals[identifier]
    if vote.signer in proposal["votes"]:
        raise InvalidTransaction("this key has already voted on the proposal")
    proposal["votes"][vote.signer] = choice
    vote.tally(identifier, proposal)
