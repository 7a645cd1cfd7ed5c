"""The signer callers use: one custody key, its guard and the audit trail, thread-safe.

Order of a signature: the guard persists the position (if any), the HSM signs on the
module's gate, the signature is normalised (low-S) and the audit record appended;
only then does the caller get the signature. A refusal or an HSM error is audited too.
"""

from __future__ import annotations

import time
from typing import Any

from trusted_ledger.custody.audit import PURPOSES, AuditLog, CheckpointSignature
from trusted_ledger.custody.guard import Position, SigningGuard
from trusted_ledger.custody.inventory import KeyInfo
from trusted_ledger.custody.keyspec import DIGEST_BYTES, PublicKey, Signature, normalise_ecdsa
from trusted_ledger.custody.token import TokenPool
from trusted_ledger.errors import (
    InvalidInput,
    SigningRefused,
    TemporarilyUnavailable,
    TrustedLedgerError,
)
from trusted_ledger.observability.metrics import CUSTODY_SIGN_SECONDS


class CustodySigner:
    """Signs 32-byte digests with one key on a token."""

    def __init__(
        self,
        pool: TokenPool,
        key_label: str,
        *,
        audit: AuditLog | None = None,
        guard: SigningGuard | None = None,
        checkpoints: bool = False,
    ) -> None:
        self.pool = pool
        self.key_label = key_label
        # Loading the key here checks its attributes at start, not at the first signature.
        self.key: KeyInfo = pool.key_info(key_label)
        # Kept from that one read: callers (chain membership, certificates) ask often.
        self._public_key = self.key.public_key
        self.audit = audit
        self.guard = guard
        self._latency: dict[tuple[str, str], Any] = {}
        if checkpoints:
            if audit is None:
                raise InvalidInput("checkpoints need an audit log")
            audit.set_checkpoint_signer(self._sign_checkpoint)

    @property
    def public_key(self) -> PublicKey:
        """The key's public half, read from the token once at construction."""
        return self._public_key

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    def sign(self, digest: bytes, *, purpose: str, position: Position | None = None) -> Signature:
        """Sign ``digest``; with a ``position`` the guard must allow it first."""
        if len(digest) != DIGEST_BYTES:
            raise InvalidInput(f"digest must be {DIGEST_BYTES} bytes, got {len(digest)}")
        if purpose not in PURPOSES:
            # Checked before the key is used: a signature whose use cannot be recorded must
            # never be made (every signature has its audit record, invariant 4).
            raise InvalidInput(f"unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
        started = time.perf_counter()
        position_list = position.as_list() if position is not None else None
        try:
            if position is not None:
                if self.guard is None:
                    raise InvalidInput("a position was given but this signer has no guard")
                self.guard.authorise(position, digest)
            algorithm, raw = self.pool.sign(self.key_label, digest)
            signature = normalise_ecdsa(algorithm, raw)
        except SigningRefused as exc:
            self._audit(purpose, digest, position_list, "refused", exc, started)
            raise
        except TrustedLedgerError as exc:
            self._audit(purpose, digest, position_list, "error", exc, started)
            raise
        self._audit(purpose, digest, position_list, "ok", None, started)
        return signature

    def _audit(
        self,
        purpose: str,
        digest: bytes,
        position: list[int] | None,
        result: str,
        error: Exception | None,
        started: float,
    ) -> None:
        elapsed = time.perf_counter() - started
        histogram = self._latency.get((purpose, result))
        if histogram is None:  # label lookup costs microseconds: once per (purpose, result)
            histogram = CUSTODY_SIGN_SECONDS.labels(purpose=purpose, result=result)
            self._latency[(purpose, result)] = histogram
        histogram.observe(elapsed)
        if self.audit is None:
            return
        try:
            self.audit.record_use(
                key_fingerprint=self.key.fingerprint,
                purpose=purpose,
                digest=digest,
                position=position,
                result=result,
                error=type(error).__name__ if error is not None else None,
                latency_us=int(elapsed * 1_000_000),
            )
        except OSError as exc:
            # No record, no signature: invariant 4 (every signature is audited) wins over
            # availability.
            raise TemporarilyUnavailable(
                f"audit log {self.audit.path} could not be written ({exc}); signature withheld",
                hint="check the disk holding the audit log",
            ) from exc

    def _sign_checkpoint(self, digest: bytes) -> CheckpointSignature:
        signature = self.sign(digest, purpose="checkpoint")
        return CheckpointSignature(
            key_fingerprint=self.key.fingerprint,
            algorithm=self.key.algorithm.value,
            public_key_der=self.key.public_key.spki_der,
            signature_raw=signature.raw,
        )
