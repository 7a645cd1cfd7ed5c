"""One phase of the guard-replay test (test_guard_replay.py), in its own process so that its
SoftHSM token directory is its own: PKCS#11 reads its configuration once per process.

argv: root phase. Phase "first" creates the token and key, then asks for A, B (conflict),
C (below) and A again at one position; phase "restart" reopens the guard from its file and
asks for B again. Each request is printed as one JSON line; the audit trail is root/audit.jsonl.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from tests.hsm.conftest import USER_PIN, softhsm_env_vars, softhsm_init_token
from trusted_ledger.custody import AuditLog, CustodySigner, KeyAlgorithm, SigningGuard
from trusted_ledger.custody.guard import Position
from trusted_ledger.custody.pin import Pin
from trusted_ledger.custody.profiles import load_profile
from trusted_ledger.custody.token import TokenPool
from trusted_ledger.errors import SigningRefused

TOKEN, LABEL = "tl-hostile", "hostile-node"
AT = Position(7, 2, 3)
BELOW = Position(7, 1, 3)


def main() -> None:
    root, phase = Path(sys.argv[1]), sys.argv[2]
    env = softhsm_env_vars(root)
    os.environ.update(env)  # before the module's first C_Initialize in this process
    if phase == "first":
        softhsm_init_token(env, TOKEN)
    pool = TokenPool(load_profile("softhsm2"), TOKEN, Pin(USER_PIN))
    key = pool.generate_key(LABEL, KeyAlgorithm.EC_P256) if phase == "first" else None
    fingerprint = pool.key_info(LABEL).fingerprint
    guard_path = root / "node.guard"
    guard = (
        SigningGuard.create(guard_path, fingerprint)
        if phase == "first"
        else SigningGuard.open(guard_path, fingerprint)
    )
    audit = AuditLog(root / "audit.jsonl")
    signer = CustodySigner(pool, LABEL, audit=audit, guard=guard)
    if key is not None:
        print(json.dumps({"spki": key.public_key.spki_der.hex()}), flush=True)
    asks = (
        [("block A", AT), ("block B", AT), ("block C", BELOW), ("block A", AT)]
        if phase == "first"
        else [("block B", AT)]
    )
    for message, position in asks:
        digest = hashlib.sha256(message.encode()).digest()
        try:
            signature = signer.sign(digest, purpose="vote", position=position).raw.hex()
        except SigningRefused as exc:
            print(json.dumps({"message": message, "refused": str(exc)}), flush=True)
        else:
            print(json.dumps({"message": message, "signature": signature}), flush=True)
    audit.close()


if __name__ == "__main__":
    main()
