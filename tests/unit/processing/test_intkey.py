"""intkey against Sawtooth's documented behaviour: addresses, encodings, rules, errors."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from trusted_ledger.processing.families.intkey import (
    INTKEY_NAMESPACE,
    decode_intkey_state,
    intkey_address,
)
from trusted_ledger.state import EMPTY_ROOT

from .support import KEYS, Chain, batch, default_registry, fresh_store, intkey_txn, transaction


def test_namespace_and_address_follow_sawtooth() -> None:
    # Sawtooth: prefix = sha512("intkey")[:6] = "1cf126"; address adds sha512(name)[-64:].
    assert INTKEY_NAMESPACE == "1cf126"
    assert intkey_address("foo") == "1cf126" + hashlib.sha512(b"foo").hexdigest()[-64:]


def test_set_inc_dec_and_state_encoding() -> None:
    chain = Chain(fresh_store(), default_registry())
    execution = chain.run_all([batch(intkey_txn("set", "a", 10)), batch(intkey_txn("inc", "a", 5))])
    assert all(r.valid for r in execution.batch_results)
    stored = chain.get(intkey_address("a"))
    # The state value is a CBOR map name -> int; for one name canonical CBOR equals what
    # Sawtooth's Python processor writes: a1 61 61 0f.
    assert stored == bytes.fromhex("a161610f")
    assert cbor2.loads(stored) == {"a": 15}
    chain.run_all([batch(intkey_txn("dec", "a", 15))])
    assert decode_intkey_state(chain.get(intkey_address("a")) or b"") == {"a": 0}


def test_sawtooth_style_payload_with_insertion_order_keys_is_accepted() -> None:
    # Sawtooth's client encodes {"Verb", "Name", "Value"} in that order, not canonical.
    payload = cbor2.dumps({"Verb": "set", "Name": "x", "Value": 7})
    address = intkey_address("x")
    chain = Chain(fresh_store(), default_registry())
    txn = transaction(KEYS[0], "intkey", payload, [address], [address])
    assert chain.run_all([batch(txn)]).batch_results[0].valid
    assert cbor2.loads(chain.get(address) or b"") == {"x": 7}


@pytest.mark.parametrize(
    ("setup", "verb", "name", "value", "reason"),
    [
        ([], "inc", "a", 1, 'Verb is "inc" but name "a" not in state'),
        ([], "dec", "a", 1, 'Verb is "dec" but name "a" not in state'),
        ([("set", "a", 1)], "set", "a", 2, 'Verb is "set", but already exists'),
        ([("set", "a", 2**32 - 1)], "inc", "a", 1, "result would be greater than 4294967295"),
        ([("set", "a", 3)], "dec", "a", 4, "result would be less than 0"),
        ([], "set", "a" * 21, 1, "Name must be a string of no more than 20 characters"),
        ([], "set", "a", 2**32, "Value must be an integer no less than 0"),
        ([], "set", "a", -1, "Value must be an integer no less than 0"),
        ([], "mul", "a", 1, 'Verb must be "set", "inc", or "dec"'),
    ],
)
def test_error_cases(
    setup: list[tuple[str, str, int]], verb: str, name: str, value: int, reason: str
) -> None:
    chain = Chain(fresh_store(), default_registry())
    if setup:
        chain.run_all([batch(intkey_txn(*step)) for step in setup])
    address = intkey_address(name)
    payload = cbor2.dumps({"Verb": verb, "Name": name, "Value": value})
    txn = transaction(KEYS[0], "intkey", payload, [address], [address])
    before = chain.root
    result = chain.run_all([batch(txn)]).batch_results[0]
    assert not result.valid
    assert result.reason is not None and reason in result.reason
    assert chain.root == before


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\x00", "Invalid payload serialization"),
        (cbor2.dumps([1, 2]), "Invalid payload serialization"),
        (cbor2.dumps({"Name": "a", "Value": 1}), "Verb is required"),
        (cbor2.dumps({"Verb": "set", "Value": 1}), "Name is required"),
        (cbor2.dumps({"Verb": "set", "Name": "a"}), "Value is required"),
        (cbor2.dumps({"Verb": "set", "Name": "a", "Value": True}), "Value must be an integer"),
        (cbor2.dumps({"Verb": "set", "Name": 5, "Value": 1}), "Name must be a string"),
    ],
)
def test_malformed_payloads(payload: bytes, reason: str) -> None:
    chain = Chain(fresh_store(), default_registry())
    address = intkey_address("a")
    txn = transaction(KEYS[0], "intkey", payload, [address], [address])
    result = chain.run_all([batch(txn)]).batch_results[0]
    assert not result.valid and reason in (result.reason or "")
    assert chain.root == EMPTY_ROOT


def test_undeclared_address_is_invalid() -> None:
    chain = Chain(fresh_store(), default_registry())
    other = intkey_address("other")
    txn = transaction(
        KEYS[0], "intkey", cbor2.dumps({"Verb": "set", "Name": "a", "Value": 1}), [other], [other]
    )
    result = chain.run_all([batch(txn)]).batch_results[0]
    assert not result.valid and "outside the transaction's declared inputs" in (result.reason or "")
