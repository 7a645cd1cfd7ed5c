"""Fuzz targets: client batch lists and gossiped batches (txn), blocks, block headers and
commit certificates (chain).

Documented error families: ``decode_batch_list`` / ``decode_batch`` raise ``BatchListFault``
(``MalformedBatch`` or ``BatchVerificationFailed``); ``decode_header`` ``MalformedBlock``;
``decode_block`` ``MalformedBlock`` or a ``BlockRejected`` (batch root, proposer signature);
``decode_certificate`` ``MalformedCertificate``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import seeds
from tests.fuzz.harness import fuzz_settings, inputs, run_decoder, scaled
from trusted_ledger.chain.block import decode_block, decode_header
from trusted_ledger.chain.certificate import decode_certificate
from trusted_ledger.errors import (
    BatchListFault,
    BlockRejected,
    MalformedBlock,
    MalformedCertificate,
)
from trusted_ledger.txn import (
    Batch,
    BatchHeader,
    BatchList,
    Transaction,
    TransactionHeader,
    decode_batch,
    decode_batch_list,
)


def test_seeds_round_trip() -> None:
    for data in seeds.batch_lists():
        assert decode_batch_list(data).encode() == data
    for data in seeds.batches():
        assert decode_batch(data).encode() == data
    for data in seeds.blocks():
        assert decode_block(data).encode() == data
    for data in seeds.headers():
        assert decode_header(data).encode() == data
    for data in seeds.certificates():
        assert decode_certificate(data).encode() == data


@fuzz_settings()
@given(inputs(seeds.batch_lists()))
def test_decode_batch_list(data: bytes) -> None:
    decoded = run_decoder("txn.decode_batch_list", decode_batch_list, data, (BatchListFault,))
    if decoded is not None:
        # The outer messages are unsigned and may arrive in any field order, so the input
        # need not be canonical; the re-encoding must decode to the same list, byte for byte.
        again = decoded.encode()
        assert decode_batch_list(again) == decoded
        assert BatchList(decoded.batches).encode() == again


@fuzz_settings()
@given(inputs(seeds.batches()))
def test_decode_batch(data: bytes) -> None:
    decoded = run_decoder("txn.decode_batch", decode_batch, data, (BatchListFault,))
    if decoded is not None:
        assert decode_batch(decoded.encode()) == decoded


@fuzz_settings()
@given(inputs(seeds.headers(), arbitrary_max=600))
def test_decode_header(data: bytes) -> None:
    header = run_decoder("chain.decode_header", decode_header, data, (MalformedBlock,))
    if header is not None:
        assert header.encode() == data  # one encoding per header: the block id depends on it


@fuzz_settings()
@given(inputs(seeds.blocks()))
def test_decode_block(data: bytes) -> None:
    block = run_decoder("chain.decode_block", decode_block, data, (MalformedBlock, BlockRejected))
    if block is not None:
        assert block.encode() == data


@fuzz_settings()
@given(inputs(seeds.certificates()))
def test_decode_certificate(data: bytes) -> None:
    certificate = run_decoder(
        "chain.decode_certificate", decode_certificate, data, (MalformedCertificate,)
    )
    if certificate is not None:
        assert certificate.encode() == data


# --- signed headers with hostile field values ------------------------------------------------

_HEX = "0123456789abcdef"
_FIELD_TEXT = st.one_of(
    st.text(max_size=140),
    st.text(_HEX + "ABCDEF", max_size=140),
    st.sampled_from(["", "1.0", "intkey", "a" * 65, "1.0.0.0", "00" * 64, "\u00b2", " "]),
)
_ADDRESSES = st.lists(st.one_of(st.text(_HEX, max_size=72), st.text(max_size=8)), max_size=300)
_DEPENDENCIES = st.lists(
    st.one_of(st.text(_HEX, min_size=128, max_size=128), st.text(_HEX, max_size=130)), max_size=70
)


@st.composite
def signed_lists(draw: st.DrawFn) -> bytes:
    """A correctly signed batch list whose transaction header holds hostile field values:
    everything up to the signature checks is reached, field by field."""
    key = seeds.CLIENT
    payload = draw(st.binary(max_size=64))
    payload_hash = hashlib.sha512(payload).hexdigest()
    valid = seeds.txn_vector()["transactions"][0]

    def field(hostile: st.SearchStrategy[Any], good: Any) -> Any:
        # Mostly the valid value, so that inputs get past the first check to the later ones.
        return draw(st.one_of(st.just(good), st.just(good), st.just(good), hostile))

    header = TransactionHeader(
        batcher_public_key=field(
            st.sampled_from(["02" + "ab" * 32, "", key.public_key_hex.upper()]), key.public_key_hex
        ),
        dependencies=tuple(field(_DEPENDENCIES, [])),
        family_name=field(_FIELD_TEXT, valid["family_name"]),
        family_version=field(_FIELD_TEXT, valid["family_version"]),
        inputs=tuple(field(_ADDRESSES, valid["inputs"])),
        nonce=field(_FIELD_TEXT, valid["nonce"]),
        outputs=tuple(field(_ADDRESSES, valid["outputs"])),
        payload_sha512=field(
            st.sampled_from([payload_hash.upper(), "", "0" * 128, payload_hash[:-1]]), payload_hash
        ),
        signer_public_key=field(st.just(key.public_key_hex.upper()), key.public_key_hex),
    )
    header_bytes = header.encode()
    transaction = Transaction(header, header_bytes, key.sign_header(header_bytes), payload)
    batch_header = BatchHeader(key.public_key_hex, (transaction.header_signature,))
    batch_bytes = batch_header.encode()
    batch = Batch(batch_header, batch_bytes, key.sign_header(batch_bytes), (transaction,))
    return BatchList((batch,)).encode()


@fuzz_settings(scaled(0.5))  # two signatures per input
@given(signed_lists())
def test_decode_batch_list_signed_hostile_fields(data: bytes) -> None:
    decoded = run_decoder(
        "txn.decode_batch_list[signed fields]", decode_batch_list, data, (BatchListFault,)
    )
    if decoded is not None:
        assert decoded.encode() == data
