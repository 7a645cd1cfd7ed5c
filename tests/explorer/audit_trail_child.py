"""Writes key-usage trails signed on a SoftHSM token, one per key algorithm; used by
test_audit_js.py.

argv: work_dir. Runs in its own process because SoftHSM reads SOFTHSM2_CONF once per process
(a second token store in the pytest process would point later HSM tests at the wrong one).
For each algorithm the token supports it writes ``<algorithm>.jsonl`` (a real ``AuditLog``
whose checkpoints the token's key signs through ``CustodySigner``) and ``<algorithm>.spki``
(the key's SubjectPublicKeyInfo, hex). Besides real signatures the trail holds records that
are hard for a canonical JSON writer: an error text with quotes, backslashes, control
characters, DEL, Latin-1, an emoji (a surrogate pair) and markup, positions and latencies
beyond 2^53, and times beyond 2^63 microseconds.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
from pathlib import Path

from tests.hsm.conftest import USER_PIN, softhsm_env_vars, softhsm_init_token
from trusted_ledger.custody.audit import AuditLog
from trusted_ledger.custody.keyspec import KeyAlgorithm
from trusted_ledger.custody.pin import Pin
from trusted_ledger.custody.profiles import load_profile
from trusted_ledger.custody.signer import CustodySigner
from trusted_ledger.custody.token import TokenPool

TOKEN = "tl-explorer-trail"
CHECKPOINT_EVERY_RECORDS = 4
TRICKY_ERROR = 'say "hi" \\ back/slash \x01\x1f\x7f é 😀 \u2028 <b>bold</b>\n\t'
FIRST_TIME_S = 10**13  # time_us beyond 2^63: an integer no double holds exactly


def write_trail(pool: TokenPool, algorithm: KeyAlgorithm, path: Path) -> str:
    label = f"trail-{algorithm.value}"
    key = pool.generate_key(label, algorithm)
    clock = itertools.count(FIRST_TIME_S, 7)
    log = AuditLog(path, checkpoint_every_records=CHECKPOINT_EVERY_RECORDS,
                   clock=lambda: float(next(clock)))  # fmt: skip
    signer = CustodySigner(pool, label, audit=log, checkpoints=True)
    for i in range(14):
        if i % 3 == 2:
            log.record_use(
                key_fingerprint=key.fingerprint, purpose="test",
                digest=hashlib.sha256(f"tricky {i}".encode()).digest(),
                position=[2**63 - 1 - i, 2**53 + 1, i], result="error",
                error=TRICKY_ERROR + str(i), latency_us=2**70 + i,
            )  # fmt: skip
        else:
            signer.sign(hashlib.sha256(f"use {i}".encode()).digest(), purpose="test")
    log.checkpoint()
    log.close()
    return key.public_key.spki_der.hex()


def main() -> None:
    work = Path(sys.argv[1])
    env = softhsm_env_vars(work / "softhsm")
    os.environ.update(env)  # before the module is loaded in this process
    softhsm_init_token(env, TOKEN)
    profile = load_profile("softhsm2")
    pool = TokenPool(profile, TOKEN, Pin(USER_PIN))
    try:
        for algorithm in profile.algorithms:
            spki = write_trail(pool, algorithm, work / f"{algorithm.value}.jsonl")
            (work / f"{algorithm.value}.spki").write_text(spki)
    finally:
        pool.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
