"""The offline compliance bundle's container: an uncompressed POSIX tar with a fixed
member order and fixed metadata, and the manifest that names and hashes every other part.

Why tar: an auditor can list and unpack it with standard tools, and with every header
field fixed (mode 0644, uid/gid 0, empty owner names, mtime 0) the same content always
gives the same bytes. Format: docs/formats.md §9.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusted_ledger.errors import InvalidInput

BUNDLE_FORMAT = "trusted-ledger/audit-bundle/v1"
MANIFEST_NAME = "manifest.json"
BLOCKS_DIR = "blocks"
CERTIFICATES_DIR = "certificates"
MEMBERSHIP_DIR = "membership"
ANCHORS_DIR = "anchors"
TRAILS_DIR = "trails"
HEIGHT_DIGITS = 20
"""Heights are written zero-padded to 20 digits (u64), so names sort as heights do."""
bundle_parts_max = 1_000_000
"""Parts read from one bundle: far above any export, low enough to bound the reader."""
part_bytes_max = 64 * 1024 * 1024
"""Largest part: a block is at most 32 MiB; a trail file is what grows."""
MANIFEST_FIELDS = frozenset(
    (
        "format", "chain_id", "genesis_block_id", "from_height", "to_height",
        "initial_members", "membership_history", "members", "parts",
    )
)  # fmt: skip


def canonical_json(value: object) -> bytes:
    """docs/formats.md §7.1 canonical JSON (sorted keys, no spaces, ASCII escapes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def height_name(directory: str, height: int, suffix: str) -> str:
    return f"{directory}/{height:0{HEIGHT_DIGITS}d}{suffix}"


def block_part(height: int) -> str:
    return height_name(BLOCKS_DIR, height, ".tlbk")


def certificate_part(height: int) -> str:
    return height_name(CERTIFICATES_DIR, height, ".tlcc")


def membership_part(height: int) -> str:
    return height_name(MEMBERSHIP_DIR, height, ".json")


def anchor_part(height: int, fingerprint: str) -> str:
    return height_name(ANCHORS_DIR, height, f"-{fingerprint}.json")


def trail_part(name: str) -> str:
    return f"{TRAILS_DIR}/{name}.jsonl"


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bytes": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


def manifest_bytes(fields: dict[str, Any], parts: Sequence[Part]) -> bytes:
    """The manifest part: ``fields`` plus the list of every other part, canonical + 0a."""
    return canonical_json({**fields, "parts": [part.entry() for part in parts]}) + b"\n"


def container_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """The canonical tar of ``members`` (name, data) in order: USTAR, fixed metadata (mode
    0644, mtime 0, uid/gid 0, no user or group names), as ``audit export`` writes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_container(path: Path, manifest: bytes, parts: Iterable[Part]) -> None:
    """Write the tar: the manifest first, then ``parts`` in the order given."""
    data = container_bytes(((MANIFEST_NAME, manifest), *((p.name, p.data) for p in parts)))
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(data)
    temporary.replace(path)


def container_is_canonical(path: Path, members: Sequence[ContainerMember]) -> bool:
    """Whether the file is exactly the canonical tar of its members: then no byte outside
    the parts (headers, padding, end-of-archive blocks, trailing bytes) can differ unseen."""
    try:
        return path.read_bytes() == container_bytes((m.name, m.data) for m in members)
    except OSError:
        return False


@dataclass(frozen=True)
class ContainerMember:
    """A part as found in the tar, with where its bytes start in the file."""

    name: str
    data: bytes
    offset: int


def read_container(path: Path) -> list[ContainerMember]:
    """Every member of the tar in file order. ``InvalidInput`` if the file is not a tar
    this format allows (the verifier reports that as a finding on the container)."""
    members: list[ContainerMember] = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if len(members) >= bundle_parts_max:
                    raise InvalidInput(f"more than {bundle_parts_max} parts")
                if not info.isreg():
                    raise InvalidInput(f"member {info.name!r} is not a regular file")
                if info.size > part_bytes_max:
                    raise InvalidInput(f"member {info.name!r} exceeds {part_bytes_max} bytes")
                handle = tar.extractfile(info)
                assert handle is not None  # a regular file always has content
                members.append(ContainerMember(info.name, handle.read(), info.offset_data))
    except (tarfile.TarError, OSError) as exc:
        raise InvalidInput(
            f"{path} is not a readable bundle (uncompressed tar): {exc}",
            hint="pass the file `trusted-ledger audit export` wrote, unmodified",
        ) from exc
    return members


def parse_manifest(data: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """The manifest object and the problems with its form (JSON, canonical, fields)."""
    problems: list[str] = []
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        return None, ["not JSON"]
    if not isinstance(manifest, dict):
        return None, ["not a JSON object"]
    if canonical_json(manifest) + b"\n" != data:
        problems.append("not in canonical JSON (docs/formats.md §7.1) followed by one 0a")
    missing, unknown = MANIFEST_FIELDS - set(manifest), set(manifest) - MANIFEST_FIELDS
    if missing or unknown:
        problems.append(f"missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    if manifest.get("format") != BUNDLE_FORMAT:
        problems.append(f"format {manifest.get('format')!r} is not {BUNDLE_FORMAT!r}")
    return manifest, problems
