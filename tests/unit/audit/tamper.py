"""Rewriting a bundle the way a forger would: change parts, and optionally recompute the
manifest's part hashes so that only the deeper checks can notice."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

from trusted_ledger.audit.bundle_format import (
    MANIFEST_NAME,
    Part,
    canonical_json,
    write_container,
)


def read_parts(path: Path) -> tuple[bytes, list[Part]]:
    with tarfile.open(path, "r:") as tar:
        members = []
        for info in tar:
            handle = tar.extractfile(info)
            assert handle is not None
            members.append(Part(info.name, handle.read()))
    assert members[0].name == MANIFEST_NAME
    return members[0].data, members[1:]


def rewrite(
    source: Path,
    target: Path,
    change: Callable[[list[Part]], list[Part]],
    *,
    rehash: bool,
    manifest_change: Callable[[dict[str, object]], None] | None = None,
) -> None:
    """``target`` = ``source`` with its parts passed through ``change``; with ``rehash`` the
    manifest's part list is recomputed (and ``manifest_change`` applied) to match."""
    manifest, parts = read_parts(source)
    parts = change(parts)
    if rehash or manifest_change is not None:
        fields = json.loads(manifest)
        if rehash:
            fields["parts"] = [part.entry() for part in parts]
        if manifest_change is not None:
            manifest_change(fields)
        manifest = canonical_json(fields) + b"\n"
    write_container(target, manifest, parts)


def flip(data: bytes, offset: int, mask: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def replace_part(name: str, data: bytes) -> Callable[[list[Part]], list[Part]]:
    def change(parts: list[Part]) -> list[Part]:
        assert any(p.name == name for p in parts), name
        return [Part(p.name, data) if p.name == name else p for p in parts]

    return change


def write_manifest(source: Path, target: Path, manifest: bytes) -> None:
    _, parts = read_parts(source)
    write_container(target, manifest, parts)
