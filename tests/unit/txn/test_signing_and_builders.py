"""Keys, signatures, builders and the chain checks."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Set

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.txn.conftest import ADDRESS, good_header, sign_batch, sign_transaction
from trusted_ledger import errors
from trusted_ledger.txn import (
    BatchList,
    SigningKey,
    TransactionBuilder,
    build_batch,
    build_batch_list,
    check_against_chain,
    verify_header_signature,
)
from trusted_ledger.txn.fields import Where
from trusted_ledger.txn.signing import SECP256K1_ORDER

KEY = SigningKey(hashlib.sha256(b"signing test key").digest())


def test_key_repr_hides_the_secret() -> None:
    assert KEY.secret_hex() not in repr(KEY)
    assert KEY.public_key_hex in repr(KEY)


@pytest.mark.parametrize(
    ("secret_hex", "message"),
    [
        ("ab" * 31, "64 hex chars"),
        ("zz" * 32, "must be hex"),
        ("00" * 32, r"\[1, n-1\]"),
        (f"{SECP256K1_ORDER:064x}", r"\[1, n-1\]"),
    ],
)
def test_bad_private_keys(secret_hex: str, message: str) -> None:
    with pytest.raises(errors.InvalidInput, match=message):
        SigningKey.from_hex(secret_hex)


def test_key_hex_round_trip() -> None:
    assert SigningKey.from_hex(KEY.secret_hex()).public_key_hex == KEY.public_key_hex
    assert SigningKey.generate().public_key_hex != KEY.public_key_hex


@given(st.binary(max_size=64))
def test_signatures_are_deterministic_low_s_and_verify(message: bytes) -> None:
    signature = KEY.sign_header(message)
    assert signature == KEY.sign_header(message)
    assert int(signature[64:], 16) <= SECP256K1_ORDER // 2
    digest = hashlib.sha256(message).digest()
    verify_header_signature(KEY.public_key_hex, signature, digest, Where())
    with pytest.raises(errors.InvalidSignature):
        verify_header_signature(
            KEY.public_key_hex, signature, hashlib.sha256(message + b"!").digest(), Where()
        )


def test_builder_defaults() -> None:
    builder = TransactionBuilder(KEY, "intkey", "1.0")
    first = builder.build(b"x", inputs=[ADDRESS], outputs=[ADDRESS])
    second = builder.build(b"x", inputs=[ADDRESS], outputs=[ADDRESS])
    # Random nonces: the same request twice is two transactions.
    assert first.header.nonce != second.header.nonce
    assert first.id != second.id
    assert first.header.batcher_public_key == KEY.public_key_hex
    assert first.header.payload_sha512 == hashlib.sha512(b"x").hexdigest()


def test_builder_refuses_what_the_node_would_refuse() -> None:
    builder = TransactionBuilder(KEY, "IntKey", "1.0")
    with pytest.raises(errors.InvalidField, match="family_name"):
        builder.build(b"x", inputs=[ADDRESS], outputs=[ADDRESS])
    other = SigningKey(hashlib.sha256(b"another").digest())
    foreign = TransactionBuilder(KEY, "intkey", "1.0", batcher_public_key=other.public_key_hex)
    transaction = foreign.build(b"x", inputs=[ADDRESS], outputs=[ADDRESS])
    with pytest.raises(errors.BatcherKeyMismatch):
        build_batch(KEY, [transaction])
    assert build_batch(other, [transaction]).header.signer_public_key == other.public_key_hex
    with pytest.raises(errors.SizeLimitExceeded, match="at least one batch"):
        build_batch_list([])


class FakeChain:
    def __init__(self, committed: set[str]) -> None:
        self.committed = committed
        self.asked: list[Collection[str]] = []

    def committed_among(self, transaction_ids: Collection[str]) -> Set[str]:
        self.asked.append(transaction_ids)
        return self.committed & set(transaction_ids)


def _chain_case(dependency: str | None) -> BatchList:
    first = sign_transaction(KEY, good_header(KEY, nonce="a"))
    deps = (first.id,) if dependency == "earlier" else ((dependency,) if dependency else ())
    second = sign_transaction(KEY, good_header(KEY, nonce="b", dependencies=deps))
    return BatchList((sign_batch(KEY, [first]), sign_batch(KEY, [second])))


def test_chain_checks_accept_earlier_and_committed_dependencies() -> None:
    check_against_chain(_chain_case("earlier"), FakeChain(set()))
    committed = "cd" * 64
    chain = FakeChain({committed})
    check_against_chain(_chain_case(committed), chain)
    # One question to the chain per batch list, covering ids and dependencies.
    assert len(chain.asked) == 1
    assert committed in chain.asked[0]


def test_replayed_transaction() -> None:
    batch_list = _chain_case(None)
    replayed = batch_list.batches[1].transactions[0].id
    with pytest.raises(errors.ReplayedTransaction, match="already committed") as caught:
        check_against_chain(batch_list, FakeChain({replayed}))
    assert (caught.value.batch_index, caught.value.transaction_index) == (1, 0)


def test_missing_dependency() -> None:
    with pytest.raises(errors.MissingDependency, match="neither committed") as caught:
        check_against_chain(_chain_case("ef" * 64), FakeChain(set()))
    assert caught.value.field == "header.dependencies[0]"


def test_dependency_on_a_later_transaction_is_missing() -> None:
    later = sign_transaction(KEY, good_header(KEY, nonce="later"))
    first = sign_transaction(KEY, good_header(KEY, nonce="first", dependencies=(later.id,)))
    batch_list = BatchList((sign_batch(KEY, [first, later]),))
    with pytest.raises(errors.MissingDependency):
        check_against_chain(batch_list, FakeChain(set()))
