"""Random blocks for the scheduler differential test: many conflicts, failures, prefixes.

The ``probe`` family makes every outcome depend on what a transaction read: written values
hash everything read before them, and ``fail_if_odd`` rejects depending on a stored value.
A scheduler that shows a transaction the wrong prior state therefore produces different
values, receipts or verdicts than the serial one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from trusted_ledger.errors import InternalError, InvalidTransaction
from trusted_ledger.processing import HandlerContext, TransactionHandler
from trusted_ledger.processing.codec import decode_map, encode_canonical
from trusted_ledger.processing.families import asset
from trusted_ledger.processing.families.intkey import intkey_address, intkey_payload
from trusted_ledger.state import namespace_prefix
from trusted_ledger.txn import Batch, Transaction

from .support import KEYS, asset_txn, batch, transaction

PROBE_NAMESPACE = namespace_prefix("probe")
# 8 addresses in two groups, so that prefix declarations (a group, the namespace) overlap.
PROBE_ADDRESSES = tuple(
    PROBE_NAMESPACE + group + f"{slot:02x}" + "0" * 60
    for group in ("aa", "bb")
    for slot in range(4)
)
# Declared prefixes have an even number of hex chars (whole bytes), as txn checks require.
PROBE_GROUPS = (PROBE_NAMESPACE + "aa", PROBE_NAMESPACE + "bb", PROBE_NAMESPACE)


class ProbeHandler(TransactionHandler):
    """Runs the op list in its payload (see module docstring)."""

    def __init__(self, flaky_failures: int = 0) -> None:
        self.flaky_failures = flaky_failures  # InternalErrors to raise before working

    @property
    def family_name(self) -> str:
        return "probe"

    @property
    def family_versions(self) -> tuple[str, ...]:
        return ("1.0",)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        if self.flaky_failures > 0:
            self.flaky_failures -= 1
            raise InternalError("probe: simulated processor failure")
        ops = decode_map(transaction.payload, "probe payload")["ops"]
        seen = hashlib.sha256(transaction.header.nonce.encode())
        for op in ops:
            kind, address = op[0], op[1] if len(op) > 1 else ""
            if kind == "fail":
                raise InvalidTransaction("probe: asked to fail")
            if kind in ("read", "fail_if_odd"):
                value = context.get_state([address]).get(address, b"")
                seen.update(address.encode() + b"=" + value + b";")
                if kind == "fail_if_odd" and value and value[-1] % 2:
                    raise InvalidTransaction(f"probe: odd value at {address[:10]}")
            elif kind == "write":
                seen.update(b"w")
                context.set_state({address: seen.digest()[:4]})
            elif kind == "delete":
                context.delete_state([address])
            elif kind == "event":
                context.add_event("probe/seen", [("digest", seen.hexdigest()[:16])])
                context.add_receipt_data(seen.digest()[:8])


def _declare(rng: random.Random, addresses: set[str]) -> list[str]:
    """Declare each address itself or a covering group prefix; sometimes one more."""
    declared = set()
    for address in addresses:
        if rng.random() < 0.2:
            declared.add(next(p for p in PROBE_GROUPS if address.startswith(p)))
        else:
            declared.add(address)
    if rng.random() < 0.2:
        declared.add(rng.choice(PROBE_ADDRESSES))
    return sorted(declared)


def probe_transaction(rng: random.Random, earlier: Sequence[Transaction]) -> Transaction:
    ops: list[list[str]] = []
    reads: set[str] = set()
    writes: set[str] = set()
    for _ in range(rng.randint(1, 4)):
        roll, address = rng.random(), rng.choice(PROBE_ADDRESSES)
        if roll < 0.35:
            ops.append(["read", address])
            reads.add(address)
        elif roll < 0.7:
            ops.append(["write", address])
            writes.add(address)
        elif roll < 0.78:
            ops.append(["delete", address])
            writes.add(address)
        elif roll < 0.9:
            ops.append(["fail_if_odd", address])
            reads.add(address)
        elif roll < 0.94:
            ops.append(["fail"])
        else:
            ops.append(["event"])
    inputs = _declare(rng, reads)
    outputs = _declare(rng, writes)
    if reads and rng.random() < 0.04:
        inputs = []  # undeclared read: invalid
    dependencies = [rng.choice(earlier).id] if earlier and rng.random() < 0.1 else []
    payload = encode_canonical({"ops": ops})
    key = KEYS[rng.randrange(3)]
    return transaction(key, "probe", payload, inputs, outputs, dependencies=dependencies)


def intkey_transaction(rng: random.Random) -> Transaction:
    name = f"k{rng.randrange(4)}"
    verb = rng.choice(("set", "inc", "dec", "inc", "dec"))
    return transaction_for_intkey(verb, name, rng.randrange(0, 40))


def transaction_for_intkey(verb: str, name: str, value: int) -> Transaction:
    address = intkey_address(name)
    return transaction(KEYS[0], "intkey", intkey_payload(verb, name, value), [address], [address])


ASSET_CODE = "PTS"


def asset_setup() -> list[Batch]:
    """Create PTS (issuer key 0) and give accounts 1..4 some units."""
    issuer = KEYS[0]
    txns = [asset_txn(asset.create_operation(ASSET_CODE, "loyalty", 0), issuer)]
    for index in range(1, 5):
        operation = asset.issue_operation(ASSET_CODE, KEYS[index].public_key_hex, 50)
        txns.append(asset_txn(operation, issuer))
    return [batch(*txns)]


def asset_transaction(rng: random.Random) -> Transaction:
    sender = KEYS[rng.randint(1, 4)]
    roll = rng.random()
    if roll < 0.08:
        target = KEYS[rng.randint(1, 4)].public_key_hex
        return asset_txn(
            asset.freeze_operation(ASSET_CODE, target, frozen=rng.random() < 0.5), KEYS[0]
        )
    if roll < 0.12:
        return asset_txn(asset.issue_operation(ASSET_CODE, sender.public_key_hex, 5), KEYS[0])
    to = KEYS[rng.randint(0, 4)].public_key_hex
    operation = asset.transfer_operation(ASSET_CODE, sender.public_key_hex, to, rng.randint(1, 40))
    return asset_txn(operation, sender)


def random_block(
    rng: random.Random, *, batches_max: int = 6, per_batch_max: int = 4
) -> list[Batch]:
    """A block of random batches mixing the probe, intkey and asset families."""
    batches: list[Batch] = []
    earlier: list[Transaction] = []
    for _ in range(rng.randint(1, batches_max)):
        txns = []
        for _ in range(rng.randint(1, per_batch_max)):
            roll = rng.random()
            if roll < 0.6:
                txn = probe_transaction(rng, earlier)
            elif roll < 0.8:
                txn = intkey_transaction(rng)
            else:
                txn = asset_transaction(rng)
            txns.append(txn)
            earlier.append(txn)
        batches.append(batch(*txns))
    return batches
