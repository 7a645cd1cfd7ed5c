"""Every check on entry: each bad input raises its own error class, says what is wrong and
names the batch, transaction and field."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.txn.conftest import (
    ADDRESS,
    good_header,
    one_batch_list,
    sign_batch,
    sign_transaction,
)
from trusted_ledger import errors
from trusted_ledger.txn import (
    BatchList,
    SigningKey,
    TxnLimits,
    decode_batch_list,
)
from trusted_ledger.txn.signing import SECP256K1_ORDER

ID = "ab" * 64


def _decode_one(key: SigningKey, **changes: object) -> None:
    """Decode a one-transaction list whose header has ``changes``, everything else valid."""
    transaction = sign_transaction(key, good_header(key, **changes))
    decode_batch_list(BatchList((sign_batch(key, [transaction]),)).encode())


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"family_name": "IntKey"}, "header.family_name", "a-z"),
        ({"family_name": ""}, "header.family_name", "a-z"),
        ({"family_version": "v1"}, "header.family_version", "like '1.0'"),
        ({"nonce": ""}, "header.nonce", "must not be empty"),
        ({"nonce": "a b"}, "header.nonce", "printable ASCII"),
        ({"inputs": ("abc",)}, "header.inputs[0]", "even length"),
        ({"inputs": (ADDRESS, "AB")}, "header.inputs[1]", "lowercase hex"),
        ({"outputs": ("",)}, "header.outputs[0]", "even length 2..70"),
        ({"outputs": ("ab" * 36,)}, "header.outputs[0]", "even length 2..70"),
        ({"outputs": ("zz",)}, "header.outputs[0]", "lowercase hex"),
        ({"dependencies": ("ab" * 32,)}, "header.dependencies[0]", "128 lowercase hex"),
        ({"dependencies": (ID.upper(),)}, "header.dependencies[0]", "128 lowercase hex"),
        ({"payload_sha512": "00"}, "header.payload_sha512", "128 lowercase hex"),
        ({"signer_public_key": "04" + "ab" * 32}, "header.signer_public_key", "02 or 03"),
        ({"batcher_public_key": "02" + "AB" * 32}, "header.batcher_public_key", "lowercase hex"),
    ],
)
def test_bad_header_field(
    key: SigningKey, changes: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(errors.InvalidField, match=message) as caught:
        _decode_one(key, **changes)
    assert (caught.value.batch_index, caught.value.transaction_index) == (0, 0)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"batch 0, transaction 0, {field}: ")


def test_duplicate_dependency(key: SigningKey) -> None:
    with pytest.raises(errors.DuplicateTransaction, match="listed twice") as caught:
        _decode_one(key, dependencies=(ID, ID))
    assert caught.value.field == "header.dependencies[1]"


def test_too_many_addresses(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key, inputs=(ADDRESS,) * 3))
    data = BatchList((sign_batch(key, [transaction]),)).encode()
    with pytest.raises(errors.SizeLimitExceeded, match="3 addresses, at most 2") as caught:
        decode_batch_list(data, TxnLimits(addresses_per_transaction_max=2))
    assert caught.value.field == "header.inputs"


def test_public_key_not_on_curve(key: SigningKey) -> None:
    # x = 5 has no y on secp256k1 (5^3 + 7 = 132 is not a quadratic residue mod p).
    bad_key = "02" + f"{5:064x}"
    transaction = sign_transaction(key, good_header(key, signer_public_key=bad_key))
    with pytest.raises(errors.InvalidField, match="not a point on secp256k1"):
        decode_batch_list(BatchList((sign_batch(key, [transaction]),)).encode())


def test_payload_hash_mismatch(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key, b"signed payload"), b"other payload")
    with pytest.raises(errors.PayloadHashMismatch, match="SHA-512 is") as caught:
        decode_batch_list(BatchList((sign_batch(key, [transaction]),)).encode())
    assert caught.value.field == "payload"
    assert isinstance(caught.value, errors.VerificationFailed)


def test_transaction_signed_by_another_key(key: SigningKey, other_key: SigningKey) -> None:
    good = sign_transaction(key, good_header(key))
    forged = sign_transaction(other_key, good_header(key, nonce="n2"))
    with pytest.raises(errors.InvalidSignature, match="does not verify") as caught:
        decode_batch_list(BatchList((sign_batch(key, [good, forged]),)).encode())
    assert (caught.value.batch_index, caught.value.transaction_index) == (0, 1)
    assert not isinstance(caught.value, errors.HighSSignature)


def test_batch_signed_by_another_key(key: SigningKey, other_key: SigningKey) -> None:
    batch = sign_batch(key, [sign_transaction(key, good_header(key))])
    forged = replace(batch, header_signature=other_key.sign_header(batch.header_bytes))
    with pytest.raises(errors.InvalidSignature) as caught:
        decode_batch_list(BatchList((forged,)).encode())
    assert (caught.value.batch_index, caught.value.transaction_index) == (0, None)


def _high_s(signature: str) -> str:
    s = int(signature[64:], 16)
    return signature[:64] + f"{SECP256K1_ORDER - s:064x}"


def test_high_s_transaction_signature_is_rejected(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key))
    # (r, n - s) is mathematically valid: only the low-S rule rejects it.
    twin = replace(transaction, header_signature=_high_s(transaction.header_signature))
    with pytest.raises(errors.HighSSignature, match="high S") as caught:
        decode_batch_list(BatchList((sign_batch(key, [twin]),)).encode())
    assert caught.value.field == "header_signature"
    assert caught.value.transaction_index == 0


def test_high_s_batch_signature_is_rejected(key: SigningKey) -> None:
    batch = one_batch_list(key).batches[0]
    twin = replace(batch, header_signature=_high_s(batch.header_signature))
    with pytest.raises(errors.HighSSignature):
        decode_batch_list(BatchList((twin,)).encode())


def test_signature_scalar_out_of_range(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key))
    zero_r = replace(transaction, header_signature="00" * 32 + transaction.header_signature[64:])
    with pytest.raises(errors.InvalidSignature, match=r"\[1, n-1\]"):
        decode_batch_list(BatchList((sign_batch(key, [zero_r]),)).encode())


def test_uppercase_signature_is_a_field_error(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key))
    upper = replace(transaction, header_signature=transaction.header_signature.upper())
    with pytest.raises(errors.InvalidField, match="lowercase hex") as caught:
        decode_batch_list(BatchList((sign_batch(key, [upper]),)).encode())
    assert caught.value.field == "header_signature"


def test_wrong_batcher_key(key: SigningKey, other_key: SigningKey) -> None:
    header = good_header(key, batcher_public_key=other_key.public_key_hex)
    with pytest.raises(errors.BatcherKeyMismatch, match="names batcher") as caught:
        decode_batch_list(BatchList((sign_batch(key, [sign_transaction(key, header)]),)).encode())
    assert caught.value.field == "header.batcher_public_key"


@pytest.mark.parametrize(
    ("order", "field", "message"),
    [
        ([1, 0], "header.transaction_ids[0]", "but transaction 0 has id"),
        ([0], "header.transaction_ids[1]", "lists no id"),
        ([0, 1, 1], "header.transaction_ids[2]", "lists 3 ids but the batch carries 2"),
    ],
)
def test_transaction_id_list_mismatch(
    key: SigningKey, order: list[int], field: str, message: str
) -> None:
    transactions = [sign_transaction(key, good_header(key, nonce=f"n{i}")) for i in range(2)]
    ids = [transactions[i].header_signature for i in order]
    with pytest.raises(errors.TransactionIdMismatch, match=message) as caught:
        decode_batch_list(BatchList((sign_batch(key, transactions, ids),)).encode())
    assert caught.value.field == field


def test_duplicate_transaction_across_batches(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key))
    batches = (sign_batch(key, [transaction]), sign_batch(key, [transaction]))
    with pytest.raises(errors.DuplicateTransaction, match="batch 0, transaction 0") as caught:
        decode_batch_list(BatchList(batches).encode())
    assert (caught.value.batch_index, caught.value.transaction_index) == (1, 0)


def test_duplicate_transaction_within_a_batch(key: SigningKey) -> None:
    transaction = sign_transaction(key, good_header(key))
    with pytest.raises(errors.DuplicateTransaction):
        decode_batch_list(BatchList((sign_batch(key, [transaction, transaction]),)).encode())


def test_empty_batch_list_and_empty_batch(key: SigningKey) -> None:
    with pytest.raises(errors.SizeLimitExceeded, match="at least one batch"):
        decode_batch_list(b"")
    with pytest.raises(errors.SizeLimitExceeded, match="needs a transaction"):
        decode_batch_list(BatchList((sign_batch(key, []),)).encode())
