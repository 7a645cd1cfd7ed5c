"""The on-chain membership ``tl.consensus.members``: its canonical JSON format and the
settings handler's refusal of proposals that would make an unusable membership."""

from __future__ import annotations

import json

import pytest

from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing.context import event_data_bytes_max
from trusted_ledger.processing.families import settings as st
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    ChainMember,
    decode_members_setting,
    encode_members_setting,
    members_setting_chars_max,
)
from trusted_ledger.txn import SigningKey, Transaction

from .support import batch
from .test_governance import ADMINS, _genesis, _setting, _settings_txn

KEYS = [SoftwareSigner().public_key for _ in range(4)]


def _members(count: int = 3) -> list[ChainMember]:
    return [ChainMember(f"bank-{i}", KEYS[i]) for i in range(count)]


def _entries(members: list[ChainMember]) -> list[dict[str, str]]:
    return [{"name": m.name, "public_key": m.public_key.spki_der.hex()} for m in members]


def test_encoding_is_canonical_json_in_rotation_order() -> None:
    members = _members()
    text = encode_members_setting(members)
    # An independent rendering of the documented format gives the same text.
    expected = (
        "["
        + ",".join(
            '{"name":"%s","public_key":"%s"}' % (m.name, m.public_key.spki_der.hex())  # noqa: UP031
            for m in members
        )
        + "]"
    )
    assert text == expected
    assert decode_members_setting(text) == tuple(members)
    reordered = encode_members_setting(list(reversed(members)))
    assert decode_members_setting(reordered) == tuple(reversed(members))


_GOOD = _entries(_members(2))
_KEY0 = _GOOD[0]["public_key"]


def _canon(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "not JSON"),
        (_canon({"name": "a"}), "must be a JSON list"),
        ("[]", "0 members, a membership has 1..256"),
        (json.dumps(_GOOD), "not in canonical form"),
        (_canon([{"name": "a"}]), "it must have exactly ['name', 'public_key']"),
        (_canon([{**_GOOD[0], "address": "h:1"}]), "it must have exactly"),
        (_canon([{"name": "-x", "public_key": _KEY0}]), "name must be 1..64 characters"),
        (_canon([{"name": "x" * 65, "public_key": _KEY0}]), "name must be 1..64 characters"),
        (_canon([{"name": 7, "public_key": _KEY0}]), "must be strings"),
        (_canon([{"name": "a", "public_key": "zz"}]), "public_key is not hex"),
        (_canon([{"name": "a", "public_key": _KEY0.upper()}]), "lower-case hex"),
        (_canon([{"name": "a", "public_key": "00ff"}]), "not a usable key"),
        (
            _canon([_GOOD[0], {**_GOOD[1], "name": "bank-0"}]),
            "member 1 ('bank-0') has the same name",
        ),
        (
            _canon([_GOOD[0], {**_GOOD[1], "public_key": _KEY0}]),
            "member 1 ('bank-1') has the same public_key as member 0",
        ),
        (
            _canon([{"name": f"m{i}", "public_key": _KEY0} for i in range(257)]),
            "257 members",
        ),
        ("[" + " " * members_setting_chars_max + "]", "at most 98304"),
    ],
)
def test_bad_values_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(InvalidTransaction) as caught:
        decode_members_setting(value)
    assert message in str(caught.value)
    assert MEMBERS_SETTING in str(caught.value)


def _propose(key: SigningKey, value: str, nonce: str = "n") -> Transaction:
    return _settings_txn(key, st.propose_payload(MEMBERS_SETTING, value, nonce), MEMBERS_SETTING)


def test_the_handler_refuses_a_bad_membership_proposal_and_records_a_good_one() -> None:
    chain = _genesis(threshold=2)
    good = encode_members_setting(_members(3))
    bad = [
        _propose(ADMINS[0], "[]", "a"),
        _propose(ADMINS[0], good.replace('","public_key', '", "public_key'), "b"),
        _propose(ADMINS[0], _canon([{"name": "a", "public_key": "00ff"}]), "c"),
    ]
    results = chain.run_all([batch(t) for t in bad]).batch_results
    assert [r.valid for r in results] == [False, False, False]
    assert "1..256" in (results[0].reason or "")
    assert "canonical" in (results[1].reason or "")
    assert "not a usable key" in (results[2].reason or "")
    identifier = st.proposal_id(MEMBERS_SETTING, good, "g")
    vote = _settings_txn(ADMINS[1], st.vote_payload(identifier, True), MEMBERS_SETTING)
    results = chain.run_all([batch(_propose(ADMINS[0], good, "g")), batch(vote)]).batch_results
    assert all(r.valid for r in results)
    assert _setting(chain, MEMBERS_SETTING) == good


def test_a_large_membership_fits_the_raised_limit_and_the_event_carries_its_digest() -> None:
    chain = _genesis(threshold=1)
    big = encode_members_setting(
        ChainMember(f"bank-{i:03d}-{'x' * 50}", SoftwareSigner().public_key) for i in range(256)
    )
    assert st.value_chars_max < event_data_bytes_max < len(big) <= members_setting_chars_max
    execution = chain.run_all([batch(_propose(ADMINS[0], big))])
    assert execution.batch_results[0].valid, execution.batch_results[0].reason
    assert _setting(chain, MEMBERS_SETTING) == big
    (event,) = execution.receipts[0].events
    attributes = dict(event.attributes)
    assert attributes["key"] == MEMBERS_SETTING
    assert len(attributes["value_sha256"]) == 64
    # The generic limit still holds for every other key.
    other = _settings_txn(ADMINS[0], st.propose_payload("tl.y", "v" * 4097, "n"), "tl.y")
    result = chain.run_all([batch(other)]).batch_results[0]
    assert not result.valid and "at most 4096" in (result.reason or "")


def test_open_membership_proposals_are_bounded() -> None:
    chain = _genesis(threshold=2)
    value = encode_members_setting(_members(2))
    txns = [
        _propose(ADMINS[0], value, f"n{i}") for i in range(st.pending_members_proposals_max + 1)
    ]
    results = chain.run_all([batch(t) for t in txns]).batch_results
    assert [r.valid for r in results] == [True] * st.pending_members_proposals_max + [False]
    assert "already open" in (results[-1].reason or "")
