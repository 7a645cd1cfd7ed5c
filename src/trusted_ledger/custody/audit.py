"""The key-usage audit trail: one hash-chained record per use of a custody key, with
periodic checkpoints where the node key signs the chain head.

Each record is one line of canonical JSON (sorted keys, no spaces, ASCII) appended to a
file; ``hash`` is SHA-256 over a domain prefix and the record without ``hash``, and every
record carries the previous record's hash in ``prev``. The exact encoding is specified in
docs/custody.md so that compliance teams can verify an export with their own tools.

Durability: each record is written with one ``write`` on an ``O_APPEND`` descriptor before
the signature is handed back, so it survives the process being killed; the file is
fsync'd at every checkpoint (and on every record with ``sync_each_record``), which bounds
what a power cut can lose to the records after the last checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusted_ledger.errors import AuditTrailInvalid, InvalidInput, TrustedLedgerError
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import CUSTODY_AUDIT_RECORDS_TOTAL

RECORD_DOMAIN = b"trusted-ledger/audit-record/v1\n"
CHECKPOINT_DOMAIN = b"trusted-ledger/audit-checkpoint/v1\n"
GENESIS_PREV = "0" * 64
PURPOSES = (
    "block", "vote", "prevote", "proposal", "handshake", "checkpoint", "transaction", "backup",
    "test",
)  # fmt: skip
RESULTS = ("ok", "error", "refused")
TAIL_READ_BYTES = 64 * 1024
CHECKPOINT_EVERY_RECORDS_DEFAULT = 1000
CHECKPOINT_EVERY_S_DEFAULT = 60.0
_log = get_logger("custody.audit")


def canonical(record: dict[str, Any]) -> bytes:
    """The one byte encoding of a record: sorted keys, no whitespace, ASCII-only."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def record_hash(record_without_hash: dict[str, Any]) -> str:
    return hashlib.sha256(RECORD_DOMAIN + canonical(record_without_hash)).hexdigest()


def _json_string(text: str) -> str:
    """``json.dumps(text, ensure_ascii=True)``, without the call for the usual plain text:
    printable ASCII other than quote and backslash is written as is."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text, ensure_ascii=True)


def encode_use_record(
    *,
    digest_hex: str,
    error: str | None,
    key: str,
    latency_us: int,
    position: list[int] | None,
    prev: str,
    purpose: str,
    result: str,
    seq: int,
    time_us: int,
) -> tuple[bytes, str]:
    """The line (with newline) and hash of a "use" record: byte for byte what ``canonical``
    gives, written out by hand because ``json.dumps(sort_keys=True)`` twice per signature
    was a third of custody's overhead. Keys are in sorted order; ``hash`` sorts between
    ``error`` and ``key``. Equality with ``canonical`` is property-tested."""
    error_json = "null" if error is None else _json_string(error)
    position_json = "null" if position is None else "[{},{},{}]".format(*position)
    head = f'{{"digest":"{digest_hex}","error":{error_json},'
    tail = (
        f'"key":{_json_string(key)},"kind":"use","latency_us":{latency_us},'
        f'"position":{position_json},"prev":"{prev}","purpose":{_json_string(purpose)},'
        f'"result":"{result}","seq":{seq},"time_us":{time_us}}}'
    )
    digest = hashlib.sha256(RECORD_DOMAIN + (head + tail).encode("ascii")).hexdigest()
    return f'{head}"hash":"{digest}",{tail}\n'.encode("ascii"), digest


def checkpoint_digest(head_seq: int, head_hash_hex: str) -> bytes:
    """What the node key signs at a checkpoint: the chain head, domain-separated."""
    return hashlib.sha256(
        CHECKPOINT_DOMAIN + head_seq.to_bytes(8, "big") + bytes.fromhex(head_hash_hex)
    ).digest()


@dataclass(frozen=True)
class CheckpointSignature:
    key_fingerprint: str
    algorithm: str
    public_key_der: bytes
    signature_raw: bytes


@dataclass(frozen=True)
class TrailCheckpoint:
    """A checkpoint as written: the head it covers and the key's signature over it."""

    head_seq: int
    head: str
    signature: CheckpointSignature


# Signs a checkpoint digest with the node key; must itself append the "checkpoint" use record.
CheckpointSigner = Callable[[bytes], CheckpointSignature]


class AuditLog:
    """Append-only, hash-chained key-usage log in one JSON Lines file. Thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        checkpoint_every_records: int = CHECKPOINT_EVERY_RECORDS_DEFAULT,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S_DEFAULT,
        sync_each_record: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if checkpoint_every_records < 1:
            raise InvalidInput("checkpoint_every_records must be at least 1")
        self.path = path
        self.checkpoint_every_records = checkpoint_every_records
        self.checkpoint_every_s = checkpoint_every_s
        self.sync_each_record = sync_each_record
        self._clock = clock
        self._lock = threading.RLock()
        self._next_seq, self._head = _read_tail(path)
        self._since_checkpoint = 0
        self._last_checkpoint_time = clock()
        self._checkpoint_signer: CheckpointSigner | None = None
        self._in_checkpoint = False
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._records_metric = {
            kind: CUSTODY_AUDIT_RECORDS_TOTAL.labels(kind=kind) for kind in ("use", "checkpoint")
        }

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def head(self) -> str:
        return self._head

    def set_checkpoint_signer(self, signer: CheckpointSigner) -> None:
        self._checkpoint_signer = signer

    def record_use(
        self,
        *,
        key_fingerprint: str,
        purpose: str,
        digest: bytes,
        position: list[int] | None,
        result: str,
        error: str | None,
        latency_us: int,
    ) -> int:
        """Append one use record; returns its sequence number. Checkpoints when due."""
        if purpose not in PURPOSES:
            raise InvalidInput(f"unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
        if result not in RESULTS:
            raise InvalidInput(f"unknown result {result!r}")
        if position is not None and (
            len(position) != 3 or not all(type(part) is int for part in position)
        ):
            raise InvalidInput("position must be three integers")
        digest_hex = digest.hex()
        with self._lock:
            seq = self._next_seq
            line, record_digest = encode_use_record(
                digest_hex=digest_hex, error=error, key=key_fingerprint,
                latency_us=latency_us, position=position, prev=self._head, purpose=purpose,
                result=result, seq=seq, time_us=int(self._clock() * 1_000_000),
            )  # fmt: skip
            self._write_line(line, record_digest, "use")
            if self._checkpoint_due():
                try:
                    self._checkpoint()
                except TrustedLedgerError as exc:
                    # The use just recorded stands; the checkpoint is retried with the next
                    # record (its failed signature is itself audited as an error).
                    _log.warning("audit_checkpoint_failed", error=type(exc).__name__)
            return seq

    def checkpoint(self, *, force: bool = False) -> TrailCheckpoint | None:
        """Checkpoint now (e.g. at shutdown), if there is anything new to cover, or with
        ``force`` whenever the trail is not empty (the ledger anchor of issue 7 wants a
        fresh signature even from an idle node). Returns the checkpoint made, if any."""
        with self._lock:
            if self._since_checkpoint or (force and self._next_seq > 0):
                return self._checkpoint()
            return None

    def checkpoint_if_due(self) -> bool:
        """For the node's timer: appends only check the interval when a record arrives, so
        an idle node would otherwise leave its last records unsigned indefinitely."""
        with self._lock:
            if not self._checkpoint_due():
                return False
            self._checkpoint()
            return True

    def copy_to(self, destination: Path) -> tuple[int, str]:
        """Copy the trail as it stands into ``destination`` (a new file, fsynced); its next
        sequence number and head hash. Records are appended under the same lock, so the
        copy ends exactly after a whole record (a backup's trail, docs/operations.md §8)."""
        with self._lock:
            size = os.fstat(self._fd).st_size
            next_seq, head = self._next_seq, self._head
            with self.path.open("rb") as source, destination.open("xb") as target:
                remaining = size
                while remaining:
                    chunk = source.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise OSError(f"audit log {self.path} shrank while being copied")
                    target.write(chunk)
                    remaining -= len(chunk)
                target.flush()
                os.fsync(target.fileno())
        return next_seq, head

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1

    def _checkpoint_due(self) -> bool:
        if self._checkpoint_signer is None or self._in_checkpoint:
            return False
        if self._since_checkpoint >= self.checkpoint_every_records:
            return True
        elapsed = self._clock() - self._last_checkpoint_time
        return self._since_checkpoint > 0 and elapsed >= self.checkpoint_every_s

    def _checkpoint(self) -> TrailCheckpoint | None:
        signer = self._checkpoint_signer
        if signer is None:
            return None
        head_seq, head = self._next_seq - 1, self._head
        self._in_checkpoint = True
        try:
            # The signer appends the "checkpoint" use record through record_use (re-entrant
            # lock), so the signature over the head is itself an audited use.
            signature = signer(checkpoint_digest(head_seq, head))
        finally:
            self._in_checkpoint = False
        self._append(
            {
                "kind": "checkpoint",
                "head_seq": head_seq,
                "head": head,
                "key": signature.key_fingerprint,
                "algorithm": signature.algorithm,
                "public_key": signature.public_key_der.hex(),
                "signature": signature.signature_raw.hex(),
            }
        )
        os.fsync(self._fd)
        self._since_checkpoint = 0
        self._last_checkpoint_time = self._clock()
        return TrailCheckpoint(head_seq, head, signature)

    def _append(self, fields: dict[str, Any]) -> int:
        seq = self._next_seq
        record = dict(fields, seq=seq, prev=self._head, time_us=int(self._clock() * 1_000_000))
        digest = record_hash(record)
        record["hash"] = digest
        self._write_line(canonical(record) + b"\n", digest, str(fields["kind"]))
        return seq

    def _write_line(self, line: bytes, digest: str, kind: str) -> None:
        # One write() on an O_APPEND descriptor: a record is never interleaved or split by
        # another writer, and once write() returns it survives the process being killed.
        written = os.write(self._fd, line)
        if written != len(line):
            # A full disk writes part of the line: cut it off again, or the next record
            # would be appended to the torn one and the trail would never verify (found
            # filling the disk under load, issue 8).
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise OSError(
                errno.ENOSPC,
                f"short write to audit log {self.path}: {written} of {len(line)} bytes, the "
                "record was cut off again (ENOSPC: the disk is full)",
            )
        if self.sync_each_record:
            os.fsync(self._fd)
        self._next_seq, self._head = self._next_seq + 1, digest
        self._since_checkpoint += 1
        self._records_metric[kind].inc()


def newest_signed_positions(
    path: Path, fingerprints: Collection[str], *, bytes_max: int = 4 * 1024 * 1024
) -> dict[str, tuple[list[int], str]]:
    """For each key of ``fingerprints``: the highest guarded position it signed (result
    ``ok``) among the trail's records in its last ``bytes_max`` bytes, and the digest signed
    there (hex). Keys without such a record are absent.

    Read from the end of the file without verifying the chain (``verify_trail`` does that):
    the answer only ever *raises* a signing guard (node/guard_check.py), which refuses more
    and never allows anything, and the window is bounded so that a start-up reads a few MiB
    however long the trail. A node signs at every height, so its newest positions are at
    the end; a torn last line is ignored here (the trail's own open refuses it)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {}
    wanted = set(fingerprints)
    with path.open("rb") as handle:
        handle.seek(max(0, size - bytes_max))
        window = handle.read()
    lines = window.split(b"\n")
    if size > bytes_max:
        lines = lines[1:]  # the first is probably a part of a line
    newest: dict[str, tuple[list[int], str]] = {}
    for line in lines:
        if b'"position":[' not in line or b'"result":"ok"' not in line:
            continue
        try:
            record = json.loads(line)
            key, position, digest = record["key"], record["position"], record["digest"]
        except (ValueError, KeyError, TypeError):
            continue
        if (
            key not in wanted
            or record.get("result") != "ok"
            or not isinstance(position, list)
            or len(position) != 3
            or not all(type(part) is int and part >= 0 for part in position)
            or not isinstance(digest, str)
        ):
            continue
        if key not in newest or position > newest[key][0]:
            newest[key] = (position, digest)
    return newest


def _read_tail(path: Path) -> tuple[int, str]:
    """Next sequence number and head hash from the last line, checked against its hash."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, GENESIS_PREV
    if size == 0:
        return 0, GENESIS_PREV
    with path.open("rb") as handle:
        handle.seek(max(0, size - TAIL_READ_BYTES))
        tail = handle.read()
    if not tail.endswith(b"\n"):
        raise AuditTrailInvalid(
            f"audit log {path} ends with a torn record",
            record=-1,
            hint="run `trusted-ledger audit verify` and keep a copy before repairing",
        )
    last_line = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        record = json.loads(last_line)
        stored = record.pop("hash")
        seq = int(record["seq"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditTrailInvalid(
            f"audit log {path}: last line unreadable: {exc}", record=-1
        ) from None
    if record_hash(record) != stored:
        raise AuditTrailInvalid(f"audit log {path}: last record fails its hash", record=seq)
    return seq + 1, str(stored)
