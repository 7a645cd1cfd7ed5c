"""``probe``: a test family whose payload says which context call (or misuse) to make.

Run built in and through the kit, the same probe must give the same verdict and reason:
this is how the tests check that ``RemoteContext`` is a faithful stand-in for the node's
``HandlerContext``, misuse included.
"""

from __future__ import annotations

from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing.codec import decode_map, encode_canonical
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.state import namespace_prefix
from trusted_ledger.txn import Transaction

PROBE_NAMESPACE = namespace_prefix("probe")


def probe_address(tag: int) -> str:
    return PROBE_NAMESPACE + f"{tag:064x}"


def probe_payload(action: str, **fields: object) -> bytes:
    return encode_canonical({"Do": action, **fields})


class ProbeHandler(TransactionHandler):
    @property
    def family_name(self) -> str:
        return "probe"

    @property
    def family_versions(self) -> tuple[str, ...]:
        return ("1.0",)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        payload = decode_map(transaction.payload, "probe payload")
        action, address = payload["Do"], payload.get("Address", probe_address(0))
        if action == "read":
            found = context.get_state([address])
            context.add_receipt_data(encode_canonical({"found": found}))
        elif action == "write":
            written = context.set_state({address: payload.get("Value", b"v")})
            context.add_receipt_data(encode_canonical({"written": written}))
        elif action == "delete":
            context.add_receipt_data(encode_canonical({"deleted": context.delete_state([address])}))
        elif action == "events":
            for index in range(payload["Count"]):
                context.add_event("probe/tick", [("index", str(index))], b"d")
        elif action == "data":
            for _ in range(payload["Count"]):
                context.add_receipt_data(b"x" * payload["Bytes"])
        elif action == "invalid":
            raise InvalidTransaction("probe says no", hint="hints are not part of verdicts")
        elif action == "crash":
            raise RuntimeError("probe crashed")
        else:
            raise InvalidTransaction(f"unknown probe action {action!r}")
