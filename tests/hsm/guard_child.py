"""Signs guarded votes in a loop until killed; used by test_guard_kill.py.

argv: profile token_label key_label guard_path run_id start_height
The PIN comes from $TL_TEST_PIN. Each line on stdout is printed only after the signature
was returned to this process, i.e. the moment it could have left the node.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from trusted_ledger.custody.guard import Position, SigningGuard
from trusted_ledger.custody.pin import pin_from_env
from trusted_ledger.custody.profiles import load_profile
from trusted_ledger.custody.signer import CustodySigner
from trusted_ledger.custody.token import TokenPool
from trusted_ledger.errors import SigningRefused


def main() -> None:
    profile_name, token_label, key_label, guard_path, run_id, start = sys.argv[1:7]
    pool = TokenPool(load_profile(profile_name), token_label, pin_from_env("TL_TEST_PIN"))
    key = pool.key_info(key_label)
    guard = SigningGuard.open(Path(guard_path), key.fingerprint)
    signer = CustodySigner(pool, key_label, guard=guard)
    print("READY", flush=True)
    height = int(start)
    while True:
        for step in (1, 2, 3):
            digest = hashlib.sha256(f"{run_id}/{height}/{step}".encode()).digest()
            try:
                signature = signer.sign(digest, purpose="vote", position=Position(height, 0, step))
            except SigningRefused:
                print(f"REFUSED {height} {step}", flush=True)
                continue
            print(f"SIGNED {height} {step} {digest.hex()} {signature.raw.hex()}", flush=True)
        height += 1


if __name__ == "__main__":
    main()
