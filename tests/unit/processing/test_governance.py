"""settings (admin votes) and identity (roles, policies, enforcement before handlers)."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from trusted_ledger.errors import InvalidInput
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.processing.families import identity as ident
from trusted_ledger.processing.families import settings as st
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.txn import SigningKey, Transaction

from .support import KEYS, Chain, batch, fresh_store, intkey_txn, transaction

ADMINS = KEYS[:3]
OUTSIDER = KEYS[5]


def _genesis(threshold: int = 2, policies: dict[str, list[str]] | None = None) -> Chain:
    store = fresh_store()
    admin_keys = [k.public_key_hex for k in ADMINS]
    update = genesis_update(
        store,
        st.settings_genesis_changes(
            {st.AUTHORIZED_KEYS: ",".join(admin_keys), st.APPROVAL_THRESHOLD: str(threshold)}
        ),
        ident.identity_genesis_changes(
            admin_keys,
            policies if policies is not None else dict(ident.DEFAULT_POLICIES),
            roles={"tellers": [KEYS[3].public_key_hex]},
        ),
    )
    store.commit(update)
    chain = Chain(store, builtin_registry(), update.root, IdentitySubmissionPolicy)
    return chain


def _settings_txn(key: SigningKey, payload: bytes, setting: str) -> Transaction:
    inputs, outputs = st.settings_addresses(setting)
    return transaction(key, "settings", payload, inputs, outputs)


def _setting(chain: Chain, key: str) -> str | None:
    return st.read_setting(chain.store.view(chain.root), key)


def test_setting_address_follows_sawtooth_layout() -> None:
    def part(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    address = st.setting_address("tl.consensus.round.timeout_ms")
    assert address == st.SETTINGS_NAMESPACE + part("tl") + part("consensus") + part("round") + (
        part("timeout_ms")
    )
    assert st.setting_address("a.b") == st.SETTINGS_NAMESPACE + part("a") + part("b") + part("") * 2


def test_genesis_writes_settings() -> None:
    chain = _genesis(threshold=2)
    assert _setting(chain, st.APPROVAL_THRESHOLD) == "2"
    assert _setting(chain, "tl.missing") is None


def test_proposal_applies_when_approvals_reach_the_threshold() -> None:
    chain = _genesis(threshold=2)
    key, value, nonce = "tl.block.size_max", "500", "n1"
    propose = _settings_txn(ADMINS[0], st.propose_payload(key, value, nonce), key)
    assert chain.run_all([batch(propose)]).batch_results[0].valid
    assert _setting(chain, key) is None  # one approval of two
    identifier = st.proposal_id(key, value, nonce)
    again = _settings_txn(ADMINS[0], st.vote_payload(identifier, True), key)
    outsider = _settings_txn(OUTSIDER, st.vote_payload(identifier, True), key)
    second = _settings_txn(ADMINS[1], st.vote_payload(identifier, True), key)
    results = chain.run_all([batch(again), batch(outsider), batch(second)]).batch_results
    assert [r.valid for r in results] == [False, False, True]
    assert "already voted" in (results[0].reason or "")
    # The outsider is stopped by the identity policy for "settings" before the handler.
    assert "may not submit to family 'settings'" in (results[1].reason or "")
    assert _setting(chain, key) == "500"
    late = _settings_txn(ADMINS[2], st.vote_payload(identifier, True), key)
    assert "no open proposal" in (chain.run_all([batch(late)]).batch_results[0].reason or "")


def test_rejections_drop_a_proposal_and_bad_values_are_refused() -> None:
    chain = _genesis(threshold=2)
    key = "tl.x"
    identifier = st.proposal_id(key, "1", "n")
    txns = [
        _settings_txn(ADMINS[0], st.propose_payload(key, "1", "n"), key),
        _settings_txn(ADMINS[1], st.vote_payload(identifier, False), key),
        _settings_txn(ADMINS[2], st.vote_payload(identifier, False), key),
    ]
    assert all(r.valid for r in chain.run_all([batch(t) for t in txns]).batch_results)
    assert _setting(chain, key) is None
    vote = _settings_txn(ADMINS[1], st.vote_payload(identifier, True), key)
    too_high = _settings_txn(
        ADMINS[0], st.propose_payload(st.APPROVAL_THRESHOLD, "4", "n"), st.APPROVAL_THRESHOLD
    )
    bad_keys = _settings_txn(
        ADMINS[0], st.propose_payload(st.AUTHORIZED_KEYS, "nope", "n"), st.AUTHORIZED_KEYS
    )
    results = chain.run_all([batch(vote), batch(too_high), batch(bad_keys)]).batch_results
    assert [r.valid for r in results] == [False, False, False]
    assert "threshold would exceed" in (results[1].reason or "")
    assert "comma-separated list of public keys" in (results[2].reason or "")


def test_threshold_one_applies_immediately() -> None:
    chain = _genesis(threshold=1)
    txn = _settings_txn(ADMINS[2], st.propose_payload("tl.y", "v", "n"), "tl.y")
    execution = chain.run_all([batch(txn)])
    assert _setting(chain, "tl.y") == "v"
    assert [e.event_type for e in execution.receipts[0].events] == ["settings/updated"]


def _identity_txn(key: SigningKey, payload: bytes, name: str, *, policy: bool) -> Transaction:
    inputs, outputs = ident.identity_addresses(name, policy=policy)
    return transaction(key, "identity", payload, inputs, outputs)


def test_policies_gate_submission_from_the_next_block() -> None:
    chain = _genesis(policies={"intkey": ["tellers"], "identity": ["admin"]})
    teller, stranger = KEYS[3], KEYS[4]
    results = chain.run_all(
        [batch(intkey_txn("set", "a", 1, teller)), batch(intkey_txn("set", "b", 1, stranger))]
    ).batch_results
    assert [r.valid for r in results] == [True, False]
    assert "may not submit to family 'intkey'" in (results[1].reason or "")
    # No policy for asset and no default: denied to everyone.
    assert "no identity policy covers family 'asset'" in (
        chain.run_all([batch(transaction(teller, "asset", b"", [], []))]).batch_results[0].reason
        or ""
    )
    add = ident.set_role_payload("tellers", [teller.public_key_hex, stranger.public_key_hex])
    grant = _identity_txn(ADMINS[0], add, "tellers", policy=False)
    # Same block: the stranger is still refused; permissions are read at the block's start.
    same_block = chain.run_all([batch(grant), batch(intkey_txn("set", "c", 1, stranger))])
    assert [r.valid for r in same_block.batch_results] == [True, False]
    next_block = chain.run_all([batch(intkey_txn("set", "c", 1, stranger))])
    assert next_block.batch_results[0].valid


def test_only_admins_administer_and_admins_cannot_vanish() -> None:
    chain = _genesis(policies={"*": ["*"]})  # anyone may submit, even to identity
    forged = _identity_txn(
        OUTSIDER, ident.set_role_payload("admin", [OUTSIDER.public_key_hex]), "admin", policy=False
    )
    emptied = _identity_txn(ADMINS[0], ident.set_role_payload("admin", []), "admin", policy=False)
    policy = _identity_txn(
        ADMINS[1], ident.set_policy_payload("intkey", ["admin"]), "intkey", policy=True
    )
    results = chain.run_all([batch(forged), batch(emptied), batch(policy)]).batch_results
    assert [r.valid for r in results] == [False, False, True]
    assert "only members of the admin role" in (results[0].reason or "")
    assert "cannot be emptied" in (results[1].reason or "")
    stored = chain.store.view(chain.root).get(ident.policy_address("intkey"))
    assert stored is not None and cbor2.loads(stored) == {"family": "intkey", "roles": ["admin"]}
    refused = chain.run_all([batch(intkey_txn("set", "a", 1, OUTSIDER))]).batch_results[0]
    assert not refused.valid


def test_genesis_refuses_overlapping_change_sets() -> None:
    changes = st.settings_genesis_changes({"tl.a": "1"})
    with pytest.raises(InvalidInput, match="both write"):
        genesis_update(fresh_store(), changes, changes)
