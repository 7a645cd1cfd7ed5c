"""On-line backups of a running node, and their offline check (docs/operations.md §8).

A backup is a directory the running node writes on request (``trusted-ledger node backup``,
over the node's control socket, node/control.py):

- ``chain/``: a RocksDB checkpoint of the chain database, taken by the node itself (the only
  process that sees the memtable), consistent at one instant: every committed block with its
  certificate, state, receipts and pending pool;
- ``audit/key-usage.jsonl``: the key-usage trail up to a whole record;
- ``manifest.json``: what it holds (canonical JSON, docs/formats.md §10), and
  ``manifest.sig``: the node key's signature over it, made through the HSM behind the
  audited signer (purpose ``backup``: the trail records every backup).

The signing guard and the consensus round state are deliberately not in it: restoring an
older watermark or lock is how a key comes to sign twice (docs/operations.md §8).

A backup is written under ``.partial-…`` and renamed when complete, so a directory named
``backup-…`` is whole. ``verify_backup`` checks one offline: manifest fields, signature, the
size and SHA-256 of every file, nothing unlisted, and the chain in the checkpoint (head as
the manifest says, every block present, hash-linked, proposer-signed, with a certificate of
its own id and height).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trusted_ledger.chain import ChainHead, ChainSigner, ChainStore
from trusted_ledger.custody import AuditLog, PublicKey, verify_trail
from trusted_ledger.custody.audit import canonical
from trusted_ledger.errors import InvalidInput, TrustedLedgerError, VerificationFailed
from trusted_ledger.storage import RocksDatabase
from trusted_ledger.storage.rocks_readonly import ReadOnlyRocksDatabase

BACKUP_FORMAT = "trusted-ledger-node-backup"
BACKUP_VERSION = 1
MANIFEST_DOMAIN = b"trusted-ledger/backup-manifest/v1\n"
PURPOSE_BACKUP = "backup"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
CHAIN_DIR = "chain"
TRAIL_PATH = "audit/key-usage.jsonl"
BACKUP_PREFIX = "backup-"
PARTIAL_PREFIX = ".partial-"
_MANIFEST_FIELDS = frozenset(
    {
        "format", "version", "chain_id", "created_us", "height", "head", "state_root",
        "trail", "files", "key", "algorithm", "public_key",
    }
)  # fmt: skip
_TRAIL_FIELDS = frozenset({"path", "next_seq", "head"})
_FILE_FIELDS = frozenset({"path", "size", "sha256"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
_hash_chunk_bytes = 1 << 20


def manifest_digest(manifest_bytes: bytes) -> bytes:
    """D, the digest the node key signs: SHA-256(domain || the manifest file's bytes)."""
    return hashlib.sha256(MANIFEST_DOMAIN + manifest_bytes).digest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_hash_chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    pruned: tuple[Path, ...] = ()
    """Older backups removed after this one was complete (``keep``)."""
    hashed_bytes: int = 0
    """Bytes read to hash them; the rest had their hash from the previous backup."""
    reused_from: Path | None = None
    """The previous backup whose table-file hashes were taken over, if any."""

    def summary(self) -> dict[str, Any]:
        return {
            "pruned": [str(path) for path in self.pruned],
            "hashed_bytes": self.hashed_bytes,
            "hashes_reused_from": None if self.reused_from is None else str(self.reused_from),
            "path": str(self.path),
            "height": self.manifest["height"],
            "head": self.manifest["head"],
            "trail_records": self.manifest["trail"]["next_seq"],
            "files": len(self.manifest["files"]),
            "bytes": sum(entry["size"] for entry in self.manifest["files"]),
            "key": self.manifest["key"],
        }


def create_backup(
    *,
    db: RocksDatabase,
    audit: AuditLog,
    signer: ChainSigner,
    chain_id: str,
    into: Path,
    clock: Callable[[], float] = time.time,
) -> BackupResult:
    """Write a backup of the running node into a new directory under ``into``."""
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    created_us = int(clock() * 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created_us / 1_000_000))
    partial = into / f"{PARTIAL_PREFIX}{stamp}-{os.getpid()}-{created_us % 1_000_000:06d}"
    partial.mkdir(mode=0o700)
    try:
        db.checkpoint(partial / CHAIN_DIR)
        (partial / "audit").mkdir(mode=0o700)
        next_seq, trail_head = audit.copy_to(partial / TRAIL_PATH)
        head = _chain_head(partial / CHAIN_DIR, chain_id)
        key = signer.public_key
        previous, known = _reusable_hashes(into, chain_id, key)
        files, hashed_bytes = _listing(partial, known)
        manifest: dict[str, Any] = {
            "format": BACKUP_FORMAT,
            "version": BACKUP_VERSION,
            "chain_id": chain_id,
            "created_us": created_us,
            "height": head.number,
            "head": head.block_id.hex(),
            "state_root": head.state_root.hex(),
            "trail": {"path": TRAIL_PATH, "next_seq": next_seq, "head": trail_head},
            "files": files,
            "key": key.fingerprint,
            "algorithm": key.algorithm.value,
            "public_key": key.spki_der.hex(),
        }
        manifest_bytes = canonical(manifest) + b"\n"
        signature = signer.sign(manifest_digest(manifest_bytes), purpose=PURPOSE_BACKUP)
        _write_synced(partial / MANIFEST_NAME, manifest_bytes)
        _write_synced(partial / SIGNATURE_NAME, signature.raw.hex().encode("ascii") + b"\n")
        final = into / f"{BACKUP_PREFIX}{chain_id}-h{head.number}-{stamp}"
        suffix = 1
        while final.exists():
            suffix += 1
            final = into / f"{BACKUP_PREFIX}{chain_id}-h{head.number}-{stamp}-{suffix}"
        partial.rename(final)
        _fsync_dir(into)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupResult(final, manifest, hashed_bytes=hashed_bytes, reused_from=previous)


def prune_backups(result: BackupResult, into: Path, chain_id: str, keep: int) -> BackupResult:
    """Remove the oldest complete backups of ``chain_id`` in ``into`` until ``keep`` remain
    (``result``'s own always among them). Only directories named ``backup-<chain_id>-…``
    whose manifest reads as this chain's are candidates, ordered by its ``created_us``:
    anything else there, partial or foreign, is left alone."""
    if keep < 1:
        raise InvalidInput(f"keep must be at least 1, got {keep}")
    found = [path for _, path in _complete_backups(into, chain_id) if path != result.path]
    doomed = found[: max(0, len(found) - (keep - 1))]
    for path in doomed:
        shutil.rmtree(path)
    return BackupResult(
        result.path, result.manifest, tuple(doomed), result.hashed_bytes, result.reused_from
    )


def _complete_backups(into: Path, chain_id: str) -> list[tuple[int, Path]]:
    """(created_us, path) of the complete backups of ``chain_id`` in ``into``, oldest first:
    directories named ``backup-<chain_id>-…`` whose manifest reads as this chain's."""
    found: list[tuple[int, Path]] = []
    for candidate in into.glob(f"{BACKUP_PREFIX}{chain_id}-h*"):
        if not candidate.is_dir():
            continue
        try:
            manifest = json.loads((candidate / MANIFEST_NAME).read_bytes())
            created = manifest["created_us"]
            if manifest["format"] != BACKUP_FORMAT or manifest["chain_id"] != chain_id:
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(created, int):
            found.append((created, candidate))
    found.sort()
    return found


@dataclass(frozen=True)
class _KnownFile:
    device: int
    inode: int
    size: int
    sha256: str


def _reusable_hashes(
    into: Path, chain_id: str, key: PublicKey
) -> tuple[Path | None, dict[str, _KnownFile]]:
    """The table files (``chain/*.sst``) of the newest complete backup of this chain in
    ``into`` whose manifest is well formed and signed by ``key``: that backup, and by path
    each file's device, inode, size and hash as that manifest lists it.

    Why a hash may be taken over: a checkpoint hard-links table files when it is on the
    database's file system, and RocksDB never changes a table file once written. A file of
    the new checkpoint that *is* one of these (same device and inode, same size) holds the
    bytes hashed then; reading it again would only repeat the work. Everything else (the
    files RocksDB copies, new tables, the trail, or any backup on another file system) is
    hashed. ``verify_backup`` still reads and hashes every file."""
    for _, candidate in reversed(_complete_backups(into, chain_id)):
        report = BackupReport(candidate)
        manifest = _read_manifest(candidate, report)
        if manifest is None:
            continue
        _check_signature(candidate, manifest, [key], report)
        if not report.ok:
            continue
        known: dict[str, _KnownFile] = {}
        for entry in manifest["files"]:
            name = entry["path"]
            if not (name.startswith(f"{CHAIN_DIR}/") and name.endswith(".sst")):
                continue
            if not isinstance(entry["size"], int) or not isinstance(entry["sha256"], str):
                continue
            try:
                stat = (candidate / name).stat()
            except OSError:
                continue
            known[name] = _KnownFile(stat.st_dev, stat.st_ino, entry["size"], entry["sha256"])
        return candidate, known
    return None, {}


def _chain_head(chain_dir: Path, chain_id: str) -> ChainHead:
    db = ReadOnlyRocksDatabase(chain_dir)
    try:
        head = ChainStore(db, chain_id).head
    finally:
        db.close()
    if head is None:
        raise InvalidInput(f"the checkpoint in {chain_dir} has no chain head")
    return head


def _listing(
    root: Path, known: dict[str, _KnownFile] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Every regular file under ``root`` but the manifest and its signature, by path; and
    the bytes hashed (a file that is one of ``known``, by inode, keeps its known hash)."""
    entries = []
    hashed_bytes = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative in (MANIFEST_NAME, SIGNATURE_NAME):
            continue
        stat = path.stat()
        same = (known or {}).get(relative)
        if same is not None and (same.device, same.inode, same.size) == (
            stat.st_dev,
            stat.st_ino,
            stat.st_size,
        ):
            sha256 = same.sha256
        else:
            sha256 = file_sha256(path)
            hashed_bytes += stat.st_size
        entries.append({"path": relative, "size": stat.st_size, "sha256": sha256})
    return entries, hashed_bytes


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- offline check ----------------------------------------------------------------------------


@dataclass
class BackupReport:
    """What ``verify_backup`` found: ``problems`` empty means the backup is whole."""

    path: Path
    manifest: dict[str, Any] | None = None
    key: PublicKey | None = None
    problems: list[str] = field(default_factory=list)
    blocks_checked: int = 0
    trail_records: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        manifest = self.manifest or {}
        return {
            "backup": str(self.path),
            "ok": self.ok,
            "chain_id": manifest.get("chain_id"),
            "height": manifest.get("height"),
            "head": manifest.get("head"),
            "key": self.key.fingerprint if self.key is not None else None,
            "blocks_checked": self.blocks_checked,
            "trail_records": self.trail_records,
            "problems": self.problems,
        }


def verify_backup(
    path: Path,
    *,
    trusted_keys: Sequence[PublicKey] | None = None,
    chain_id: str | None = None,
) -> BackupReport:
    """Check the backup in ``path`` offline; every problem found, not just the first.

    ``trusted_keys``: the node keys the signature must be by (restore passes the node's own);
    None: the manifest's key is used and the caller must show its fingerprint."""
    report = BackupReport(path)
    manifest = _read_manifest(path, report)
    if manifest is None:
        return report
    report.manifest = manifest
    if chain_id is not None and manifest["chain_id"] != chain_id:
        report.problems.append(
            f"manifest.json: chain_id {manifest['chain_id']!r} is not this node's {chain_id!r}"
        )
    _check_signature(path, manifest, trusted_keys, report)
    _check_files(path, manifest, report)
    if report.ok:  # the contents are the ones signed: now what they say
        _check_trail(path, manifest, report)
        _check_chain(path, manifest, report)
    return report


def _read_manifest(path: Path, report: BackupReport) -> dict[str, Any] | None:
    if not path.is_dir():
        report.problems.append(f"{path} is not a directory")
        return None
    try:
        data = (path / MANIFEST_NAME).read_bytes()
    except OSError as exc:
        report.problems.append(f"manifest.json: cannot be read: {exc}")
        return None
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        report.problems.append(f"manifest.json: not JSON: {exc}")
        return None
    problem = _manifest_problem(manifest, data)
    if problem is not None:
        report.problems.append(f"manifest.json: {problem}")
        return None
    return manifest  # type: ignore[no-any-return]


def _manifest_problem(manifest: Any, data: bytes) -> str | None:  # noqa: PLR0911
    if not isinstance(manifest, dict) or set(manifest) != _MANIFEST_FIELDS:
        return f"must be an object with exactly the fields {', '.join(sorted(_MANIFEST_FIELDS))}"
    if data != canonical(manifest) + b"\n":
        return "not canonical JSON followed by one newline (docs/formats.md §10.2)"
    if manifest["format"] != BACKUP_FORMAT or manifest["version"] != BACKUP_VERSION:
        return f"format/version {manifest['format']!r}/{manifest['version']!r} unknown"
    for name in ("height", "created_us"):
        if not isinstance(manifest[name], int) or manifest[name] < 0:
            return f"{name} must be a non-negative integer"
    for name in ("head", "state_root", "key"):
        if not isinstance(manifest[name], str) or not _HEX64.fullmatch(manifest[name]):
            return f"{name} must be 64 lowercase hex characters"
    trail = manifest["trail"]
    if not isinstance(trail, dict) or set(trail) != _TRAIL_FIELDS or trail["path"] != TRAIL_PATH:
        return f"trail must be an object {{path: {TRAIL_PATH!r}, next_seq, head}}"
    files = manifest["files"]
    if not isinstance(files, list) or not all(
        isinstance(e, dict) and set(e) == _FILE_FIELDS for e in files
    ):
        return "files must be a list of {path, size, sha256} objects"
    paths = [e["path"] for e in files]
    if paths != sorted(set(paths)) or not all(isinstance(p, str) for p in paths):
        return "files must be sorted by path, each path once"
    return None


def _check_signature(
    path: Path,
    manifest: dict[str, Any],
    trusted_keys: Sequence[PublicKey] | None,
    report: BackupReport,
) -> None:
    try:
        key = PublicKey.from_spki(bytes.fromhex(manifest["public_key"]))
    except (ValueError, TrustedLedgerError) as exc:
        report.problems.append(f"manifest.json: public_key is not a usable key: {exc}")
        return
    if key.fingerprint != manifest["key"] or key.algorithm.value != manifest["algorithm"]:
        report.problems.append("manifest.json: key/algorithm do not match public_key")
        return
    report.key = key
    if trusted_keys is not None and key not in trusted_keys:
        known = ", ".join(k.fingerprint[:16] for k in trusted_keys)
        report.problems.append(
            f"manifest.json: signed by key {key.fingerprint[:16]}…, not by this node's "
            f"key(s) {known}: a backup of another node, or forged"
        )
    try:
        signature = bytes.fromhex((path / SIGNATURE_NAME).read_text("ascii").strip())
        key.verify(manifest_digest((path / MANIFEST_NAME).read_bytes()), signature)
    except (OSError, ValueError, VerificationFailed, InvalidInput) as exc:
        report.problems.append(
            "manifest.json, manifest.sig: the signature over manifest.json does not verify "
            f"(one of the two was changed): {exc}"
        )


def _check_files(path: Path, manifest: dict[str, Any], report: BackupReport) -> None:
    listed = {entry["path"]: entry for entry in manifest["files"]}
    present = {
        p.relative_to(path).as_posix()
        for p in path.rglob("*")
        if p.is_file() and p.name not in (MANIFEST_NAME, SIGNATURE_NAME)
    }
    for extra in sorted(present - set(listed)):
        report.problems.append(f"{extra}: not listed in the manifest")
    for name, entry in listed.items():
        file = path / name
        if name not in present:
            report.problems.append(f"{name}: listed in the manifest but missing")
        elif file.stat().st_size != entry["size"]:
            report.problems.append(
                f"{name}: {file.stat().st_size} bytes, the manifest says {entry['size']}"
            )
        elif file_sha256(file) != entry["sha256"]:
            report.problems.append(f"{name}: SHA-256 differs from the manifest (changed)")
    if TRAIL_PATH not in listed:
        report.problems.append(f"{TRAIL_PATH}: missing from the manifest")


def _check_trail(path: Path, manifest: dict[str, Any], report: BackupReport) -> None:
    lines = (path / TRAIL_PATH).read_bytes().splitlines(keepends=True)
    # The trail's own checkpoint keys: its bytes are covered by the signed manifest already,
    # and checkpoints made before a key swap are signed by the key of their time.
    trail = verify_trail(lines, None)
    report.trail_records = trail.records
    for line, problem in trail.problems[:20]:
        report.problems.append(f"{TRAIL_PATH}: record {line}: {problem}")
    expected = manifest["trail"]
    if trail.records != expected["next_seq"]:
        report.problems.append(
            f"{TRAIL_PATH}: {trail.records} records, the manifest says {expected['next_seq']}"
        )
    elif lines and json.loads(lines[-1]).get("hash") != expected["head"]:
        report.problems.append(f"{TRAIL_PATH}: the last record's hash is not the manifest's head")


def _check_chain(path: Path, manifest: dict[str, Any], report: BackupReport) -> None:
    try:
        db = ReadOnlyRocksDatabase(path / CHAIN_DIR)
    except TrustedLedgerError as exc:
        report.problems.append(f"chain/: cannot be opened: {exc}")
        return
    try:
        _check_store(ChainStore(db, manifest["chain_id"]), manifest, report)
    except TrustedLedgerError as exc:
        report.problems.append(f"chain/: {exc}")
    finally:
        db.close()


def _check_store(store: ChainStore, manifest: dict[str, Any], report: BackupReport) -> None:
    head = store.head
    if head is None:
        report.problems.append("chain/: no chain head (not a node's chain database)")
        return
    if (head.number, head.block_id.hex(), head.state_root.hex()) != (
        manifest["height"], manifest["head"], manifest["state_root"],
    ):  # fmt: skip
        report.problems.append(
            f"chain/: head is block {head.number} {head.block_id.hex()[:16]}…, the manifest "
            f"says {manifest['height']} {manifest['head'][:16]}…"
        )
        return
    previous: bytes | None = None
    for height in range(head.number + 1):
        block = store.block_at(height)
        if block is None:
            report.problems.append(f"chain/: block {height} missing below the head")
            return
        where = f"chain/: block {height}"
        if previous is not None and block.header.previous_block_id != previous:
            report.problems.append(f"{where}: does not link to block {height - 1}")
        block.verify_proposer_signature()
        certificate = store.certificate(block.id)
        if certificate is None:
            report.problems.append(f"{where}: no commit certificate")
        elif (certificate.block_id, certificate.height) != (block.id, height):
            report.problems.append(f"{where}: its certificate is for another block")
        previous = block.id
        report.blocks_checked += 1
    if previous != head.block_id:
        report.problems.append("chain/: the block at the head height is not the head")
