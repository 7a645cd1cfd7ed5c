"""``trusted-ledger audit anchors``: every member key's latest trail anchor, from state.

Reads the ``tl_audit`` namespace through the REST ``/state`` listing (all pages at one
head) and decodes each record (docs/families.md, tl_audit). Whether an anchored key is a
member's is the auditor's comparison with the membership; this lists what the ledger holds.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from trusted_ledger.cli.client_common import ledger_client as _client
from trusted_ledger.cli.client_common import node_options as _node_options
from trusted_ledger.processing.families.audit_anchor import (
    AUDIT_ANCHOR_NAMESPACE,
    AnchorRecord,
    decode_anchor_record,
)

EXIT_OK = 0


def register_anchors(audit_actions: Any) -> None:
    """Add ``anchors`` under the ``audit`` command's actions (cli/custody.py)."""
    anchors = audit_actions.add_parser(
        "anchors", help="each member key's latest key-usage trail anchor in the ledger"
    )
    _node_options(anchors)
    anchors.add_argument("--json", action="store_true", help="machine-readable output")
    anchors.set_defaults(handler=_cmd_anchors)


def anchor_json(address: str, record: AnchorRecord) -> dict[str, Any]:
    anchor = record.anchor
    return {
        "address": address,
        "fingerprint": anchor.public_key.fingerprint,
        "algorithm": anchor.public_key.algorithm.value,
        "public_key": anchor.public_key.spki_der.hex(),
        "head_seq": anchor.head_seq,
        "head_hash": anchor.head_hash.hex(),
        "signature": anchor.signature.hex(),
        "anchors": record.anchors,
        "transaction_id": record.transaction_id,
        "history": [
            {"head_seq": seq, "head_hash": digest.hex(), "transaction_id": txn}
            for seq, digest, txn in record.history
        ],
    }


def _cmd_anchors(args: argparse.Namespace) -> int:
    with _client(args) as client:
        rows = [
            anchor_json(entry.address, decode_anchor_record(entry.data))
            for entry in client.state_list(AUDIT_ANCHOR_NAMESPACE)
        ]
    if args.json:
        print(json.dumps({"anchors": rows}, indent=2))
        return EXIT_OK
    if not rows:
        print("no trail anchors in the ledger")
        return EXIT_OK
    print(f"{'key fingerprint':<64}  {'algorithm':<12} {'head_seq':>10} {'anchors':>8}  head_hash")
    for row in rows:
        print(
            f"{row['fingerprint']:<64}  {row['algorithm']:<12} {row['head_seq']:>10} "
            f"{row['anchors']:>8}  {row['head_hash']}"
        )
    return EXIT_OK
