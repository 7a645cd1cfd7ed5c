"""Fuzz targets: CBOR payload decoding (``processing.codec``) and every built-in family's
payload handling, through the family's real handler on a real ``HandlerContext``.

Documented: ``codec.decode`` / ``decode_map`` raise ``InvalidTransaction`` only. A handler
raises only ``InvalidInput`` for a bad payload (the transaction is invalid on every node);
anything else would be an ``InternalError`` that fails the whole block
(``processing.runner``), so one hostile payload could stall the chain.
"""

from __future__ import annotations

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.harness import fuzz_settings, inputs, run_decoder
from trusted_ledger.errors import InvalidInput, InvalidTransaction
from trusted_ledger.processing import TransactionHandler, codec
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.families import asset, builtin_registry, identity, settings
from trusted_ledger.processing.families.intkey import intkey_payload
from trusted_ledger.state import EMPTY_ROOT, STATE_NODES_COLUMN_FAMILY, StateStore
from trusted_ledger.state import TransactionContext as StateContext
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import SigningKey, Transaction, TransactionHeader

KEY = SigningKey((55).to_bytes(32, "big"))
ME = KEY.public_key_hex
OTHER = SigningKey((56).to_bytes(32, "big")).public_key_hex
REGISTRY = builtin_registry()
VIEW = StateStore(MemoryDatabase([STATE_NODES_COLUMN_FAMILY])).view(EMPTY_ROOT)
# Every family's namespace, declared as input and output: the fuzz reaches the payload
# checks instead of stopping at an undeclared address.
NAMESPACES = sorted(
    {ns for f in REGISTRY.families() for ns in REGISTRY.lookup(f, "1.0").namespaces}
)


def _payloads() -> dict[str, list[bytes]]:
    return {
        "intkey": [intkey_payload("set", "a", 1), intkey_payload("inc", "a", 2)],
        asset.FAMILY_NAME: [
            asset.create_operation("USD", "currency", 2).payload,
            asset.issue_operation("USD", ME, 100).payload,
            asset.transfer_operation("USD", ME, OTHER, 5).payload,
            asset.redeem_operation("USD", ME, 1).payload,
            asset.freeze_operation("USD", OTHER).payload,
        ],
        settings.FAMILY_NAME: [
            settings.propose_payload("tl.fuzz.key", "value", "n1"),
            settings.vote_payload(settings.proposal_id("tl.fuzz.key", "value", "n1"), True),
        ],
        identity.FAMILY_NAME: [
            identity.set_role_payload("clerks", [OTHER]),
            identity.set_policy_payload("asset", ["clerks", "admin"]),
        ],
        "tl_audit": [
            codec.encode_canonical(
                {
                    "algorithm": "ec-p256",
                    "head_hash": "00" * 32,
                    "head_seq": 3,
                    "public_key": "30" * 45,
                    "signature": "11" * 64,
                }
            )
        ],
    }


PAYLOADS = _payloads()
ALL_PAYLOADS = [p for ps in PAYLOADS.values() for p in ps]


def _prior() -> dict[str, bytes | None]:
    """State after genesis and the valid seeds: the fuzzed payloads meet existing records."""
    state: dict[str, bytes | None] = {}
    state.update(identity.identity_genesis_changes([ME]))
    state.update(settings.settings_genesis_changes({settings.AUTHORIZED_KEYS: ME}))
    for family, payloads in PAYLOADS.items():
        for payload in payloads:
            context = StateContext(VIEW, NAMESPACES, NAMESPACES, prior=state)
            try:
                _handler(family).apply(_transaction(family, payload), HandlerContext(context))
            except InvalidInput:
                continue
            state.update(context.writes)
    return state


def _handler(family: str) -> TransactionHandler:
    return REGISTRY.lookup(family, "1.0")


def _transaction(family: str, payload: bytes) -> Transaction:
    header = TransactionHeader(
        batcher_public_key=ME, dependencies=(), family_name=family, family_version="1.0",
        inputs=tuple(NAMESPACES), nonce="01", outputs=tuple(NAMESPACES),
        payload_sha512="00" * 64, signer_public_key=ME,
    )  # fmt: skip
    return Transaction(header, header.encode(), "ab" * 64, payload)


PRIOR = _prior()


def test_seeds_are_valid_payloads() -> None:
    assert len(PRIOR) > 5  # the seeds created records (asset class, holdings, proposals)
    for payload in ALL_PAYLOADS:
        assert cbor2.loads(payload) == codec.decode(payload, "payload")


@fuzz_settings()
@given(inputs(ALL_PAYLOADS, arbitrary_max=1024))
def test_codec_decode(data: bytes) -> None:
    value = run_decoder(
        "processing.codec.decode",
        lambda raw: codec.decode(raw, "payload"),
        data,
        (InvalidTransaction,),
    )
    if value is not None:
        # Whatever decodes is plain data: canonical re-encoding decodes to the same value.
        assert codec.decode(codec.encode_canonical(value), "again") == value


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=80),
    st.binary(max_size=80), st.sampled_from(["USD", ME, OTHER, "set", "admin", "asset", "-1"]),
)  # fmt: skip
CBOR_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _field_maps(family: str) -> st.SearchStrategy[bytes]:
    """Maps with the family's real field names (from its seeds) and hostile values: wrong
    types, huge integers, floats, nested containers, keys left out or added."""
    seeds = [codec.decode_map(p, "seed") for p in PAYLOADS[family]]
    names = sorted({name for seed in seeds for name in seed})
    values = st.one_of(CBOR_VALUES, st.sampled_from([v for s in seeds for v in s.values()]))
    maps = st.dictionaries(st.sampled_from([*names, "Extra"]), values, max_size=len(names) + 1)
    return maps.map(cbor2.dumps)


@fuzz_settings()
@given(st.sampled_from(sorted(PAYLOADS)), st.data())
def test_family_payload(family: str, draw: st.DataObject) -> None:
    data = draw.draw(
        st.one_of(inputs(PAYLOADS[family] + ALL_PAYLOADS, arbitrary_max=512), _field_maps(family))
    )

    def apply(raw: bytes) -> None:
        context = StateContext(VIEW, NAMESPACES, NAMESPACES, prior=PRIOR)
        _handler(family).apply(_transaction(family, raw), HandlerContext(context))

    run_decoder(f"processing.families.{family}", apply, data, (InvalidInput,))
