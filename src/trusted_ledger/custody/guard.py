"""The signing guard: a custody key never signs two different digests for one consensus
position, and never signs below the highest position it has signed.

The watermark (highest position and the digest signed there) is written durably - temp
file, fsync, rename, fsync of the directory - *before* the caller may ask the HSM for the
signature, so a node killed at any instant restarts with a watermark at or above every
signature that ever left it. The state file is integrity-checked (SHA-256) and bound to
the key's fingerprint; a missing, torn or edited file stops signing with a clear error and
is never reset silently. Its byte format is specified in docs/custody.md.

Re-signing the same digest at the watermark is allowed and produces a fresh signature
(ECDSA draws a new nonce): it repeats a message, it does not equivocate, and it lets a node
that crashed after persisting but before sending re-create its vote.
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from trusted_ledger.errors import (
    GuardStateCorrupted,
    GuardStateMissing,
    InvalidInput,
    SigningRefused,
    TemporarilyUnavailable,
)
from trusted_ledger.observability.metrics import CUSTODY_GUARD_REFUSALS_TOTAL

STATE_MAGIC = b"TLGUARD\x01"
_BODY = struct.Struct(">8s32sBQIB32s")  # magic, key fp, flags, height, round, step, digest
STATE_BYTES = _BODY.size + 32  # + SHA-256 of the body
FLAG_HAS_POSITION = 0x01
HEIGHT_MAX = 2**64 - 1
ROUND_MAX = 2**32 - 1
STEP_MAX = 2**8 - 1
DIGEST_BYTES = 32


@dataclass(frozen=True, order=True)
class Position:
    """Where in consensus a message sits; compared lexicographically (height, round, step)."""

    height: int
    round: int
    step: int

    def __post_init__(self) -> None:
        for name, value, high in (
            ("height", self.height, HEIGHT_MAX),
            ("round", self.round, ROUND_MAX),
            ("step", self.step, STEP_MAX),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise InvalidInput(f"position {name} must be an integer in [0, {high}]")

    def as_list(self) -> list[int]:
        return [self.height, self.round, self.step]


@dataclass(frozen=True)
class Watermark:
    position: Position
    digest: bytes


class Decision(enum.Enum):
    ADVANCE = "advance"  # a new highest position: persist, then sign
    REPEAT = "repeat"  # the same digest at the watermark: sign again, nothing to persist
    REFUSE_BELOW = "below_watermark"
    REFUSE_CONFLICT = "conflicting_digest"


def decide(watermark: Watermark | None, position: Position, digest: bytes) -> Decision:
    """The whole guard rule, as a pure function (property-tested)."""
    if watermark is None or position > watermark.position:
        return Decision.ADVANCE
    if position < watermark.position:
        return Decision.REFUSE_BELOW
    if digest == watermark.digest:
        return Decision.REPEAT
    return Decision.REFUSE_CONFLICT


def encode_state(key_fingerprint: bytes, watermark: Watermark | None) -> bytes:
    if len(key_fingerprint) != 32:
        raise InvalidInput("key fingerprint must be 32 bytes")
    if watermark is None:
        body = _BODY.pack(STATE_MAGIC, key_fingerprint, 0, 0, 0, 0, bytes(DIGEST_BYTES))
    else:
        p = watermark.position
        body = _BODY.pack(
            STATE_MAGIC, key_fingerprint, FLAG_HAS_POSITION, p.height, p.round, p.step,
            watermark.digest,
        )  # fmt: skip
    return body + hashlib.sha256(body).digest()


def decode_state(data: bytes, key_fingerprint: bytes, *, source: str) -> Watermark | None:
    """Parse and check a state file; any doubt raises ``GuardStateCorrupted``."""
    hint = "restore the file from backup or investigate; never delete it to get going again"
    if len(data) != STATE_BYTES:
        raise GuardStateCorrupted(
            f"guard state {source} has {len(data)} bytes, expected {STATE_BYTES}", hint=hint
        )
    body, checksum = data[: _BODY.size], data[_BODY.size :]
    if hashlib.sha256(body).digest() != checksum:
        raise GuardStateCorrupted(f"guard state {source} fails its checksum", hint=hint)
    magic, fingerprint, flags, height, round_, step, digest = _BODY.unpack(body)
    if magic != STATE_MAGIC:
        raise GuardStateCorrupted(f"guard state {source} has an unknown format", hint=hint)
    if fingerprint != key_fingerprint:
        raise GuardStateCorrupted(
            f"guard state {source} belongs to key {fingerprint.hex()[:16]}, "
            f"not {key_fingerprint.hex()[:16]}",
            hint="point the node at the guard file of its own key",
        )
    if flags & ~FLAG_HAS_POSITION:
        raise GuardStateCorrupted(f"guard state {source} has unknown flags {flags:#x}", hint=hint)
    if not flags & FLAG_HAS_POSITION:
        return None
    return Watermark(Position(height, round_, step), digest)


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably: after return, a crash leaves the new bytes."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {temporary}")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    # The rename lives in the directory: without this fsync it may not survive a power cut.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class SigningGuard:
    """Watermark of one key, persisted in one file. Thread-safe."""

    def __init__(self, path: Path, key_fingerprint: bytes, watermark: Watermark | None) -> None:
        self.path = path
        self._fingerprint = key_fingerprint
        self._watermark = watermark
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, key_fingerprint_hex: str) -> SigningGuard:
        """Start the guard of a key that has never signed a consensus message."""
        fingerprint = bytes.fromhex(key_fingerprint_hex)
        if path.exists():
            raise InvalidInput(f"guard state {path} already exists; open it instead")
        write_durably(path, encode_state(fingerprint, None))
        return cls(path, fingerprint, None)

    @classmethod
    def open(cls, path: Path, key_fingerprint_hex: str) -> SigningGuard:
        fingerprint = bytes.fromhex(key_fingerprint_hex)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise GuardStateMissing(
                f"guard state {path} does not exist",
                hint="for a brand-new key create it (SigningGuard.create); if the key has "
                "signed before, put back the newest copy of the file (a node raises an older "
                "one to what its trail and chain show, docs/custody.md 7.1); a fresh one "
                "would allow double signing",
            ) from None
        return cls(path, fingerprint, decode_state(data, fingerprint, source=str(path)))

    @property
    def watermark(self) -> Watermark | None:
        return self._watermark

    def raise_to(self, watermark: Watermark) -> bool:
        """Raise the watermark to ``watermark`` if it lies above the current one (durably,
        as an advance is); never lower it. True if it was raised.

        For a node that finds evidence of a signature its guard does not remember (its
        trail or its chain shows the key signed above the watermark: the file was put back
        from an older copy). Raising only ever refuses more, so it cannot cause a double
        signature; it can only keep the key from signing where it already has."""
        if len(watermark.digest) != DIGEST_BYTES:
            raise InvalidInput(f"digest must be {DIGEST_BYTES} bytes")
        with self._lock:
            current = self._watermark
            if current is not None and watermark.position <= current.position:
                return False
            self._store(watermark)
            return True

    def _store(self, watermark: Watermark) -> None:
        """Write ``watermark`` durably, then hold it (the lock held): nothing is signed
        above the old one until this returns."""
        try:
            write_durably(self.path, encode_state(self._fingerprint, watermark))
        except OSError as exc:
            raise TemporarilyUnavailable(
                f"guard state {self.path} could not be written: {exc}",
                hint="check the disk; nothing was signed",
            ) from exc
        self._watermark = watermark

    def authorise(self, position: Position, digest: bytes) -> Decision:
        """Allow signing ``digest`` at ``position`` or raise ``SigningRefused``; an advance is
        on disk when this returns."""
        if len(digest) != DIGEST_BYTES:
            raise InvalidInput(f"digest must be {DIGEST_BYTES} bytes, got {len(digest)}")
        with self._lock:
            decision = decide(self._watermark, position, digest)
            if decision is Decision.ADVANCE:
                self._store(Watermark(position, digest))
            elif decision is not Decision.REPEAT:
                CUSTODY_GUARD_REFUSALS_TOTAL.labels(reason=decision.value).inc()
                watermark = self._watermark
                assert watermark is not None
                w = watermark.position
                raise SigningRefused(
                    f"refusing to sign at ({position.height}, {position.round}, "
                    f"{position.step}): {decision.value.replace('_', ' ')}; watermark is "
                    f"({w.height}, {w.round}, {w.step})"
                )
            return decision
