"""``verify_bundle``: check a compliance bundle offline, with no node and no database.

Order: the container and manifest (every part listed, in order, with its size and SHA-256),
then the chain (verify_chain.py), then trails and anchors (verify_trails.py). The deeper
passes run even when a manifest hash already failed, so that the report says what a
changed part breaks, not only that it changed. docs/formats.md §9.5 lists every check.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from trusted_ledger.audit.bundle_format import (
    ANCHORS_DIR,
    BLOCKS_DIR,
    CERTIFICATES_DIR,
    HEIGHT_DIGITS,
    MANIFEST_NAME,
    MEMBERSHIP_DIR,
    TRAILS_DIR,
    ContainerMember,
    container_is_canonical,
    parse_manifest,
    read_container,
)
from trusted_ledger.audit.report import BundleReport
from trusted_ledger.audit.verify_chain import verify_chain
from trusted_ledger.audit.verify_trails import verify_anchors, verify_trails
from trusted_ledger.errors import InvalidInput

CONTAINER = "container"


def verify_bundle(path: Path, trusted_genesis: bytes | None = None) -> BundleReport:
    """Every finding about the bundle at ``path``; ``report.ok`` only if there is none.
    ``trusted_genesis``: the genesis block id the auditor trusts (from the consortium)."""
    report = BundleReport()
    try:
        members = read_container(path)
    except InvalidInput as exc:
        report.add(CONTAINER, "tar", exc.message)
        return report
    if not container_is_canonical(path, members):
        report.add(
            CONTAINER,
            "framing",
            "bytes outside the parts (tar headers, padding, end-of-archive blocks or trailing "
            "bytes) differ from the canonical container `audit export` writes",
        )
    if not members or members[0].name != MANIFEST_NAME:
        report.add(CONTAINER, "order", f"the first member must be {MANIFEST_NAME}")
    manifest_member = next((m for m in members if m.name == MANIFEST_NAME), None)
    manifest: dict[str, Any] = {}
    if manifest_member is None:
        report.add(MANIFEST_NAME, "manifest", "missing")
    else:
        parsed, problems = parse_manifest(manifest_member.data)
        for problem in problems:
            report.add(MANIFEST_NAME, "manifest", problem)
        manifest = parsed or {}
    parts = _parts(report, [m for m in members if m is not manifest_member])
    _check_listed(report, manifest, parts)
    heights = _heights(report, manifest, parts)
    _check_part_names(report, parts, heights)
    report.chain_id = str(manifest.get("chain_id", ""))
    report.from_height, report.to_height = heights.start, heights.stop - 1
    view = verify_chain(report, manifest, parts, heights, trusted_genesis)
    trails = verify_trails(report, parts, view)
    verify_anchors(report, parts, view, trails)
    return report


def _parts(report: BundleReport, members: list[ContainerMember]) -> dict[str, bytes]:
    parts: dict[str, bytes] = {}
    for member in members:
        if member.name in parts or member.name == MANIFEST_NAME:
            report.add(member.name, "name", f"appears twice (at byte {member.offset})")
            continue
        parts[member.name] = member.data
    return parts


def _check_listed(report: BundleReport, manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
    listed = manifest.get("parts")
    if not isinstance(listed, list):
        report.add(MANIFEST_NAME, "parts", "must be a list of {name, bytes, sha256}")
        return
    names: list[str] = []
    for index, entry in enumerate(listed):
        if not isinstance(entry, dict) or sorted(entry) != ["bytes", "name", "sha256"]:
            report.add(MANIFEST_NAME, f"parts[{index}]", "must be exactly {name, bytes, sha256}")
            continue
        name = str(entry["name"])
        names.append(name)
        data = parts.get(name)
        if data is None:
            report.add(name, f"manifest parts[{index}]", "listed but not in the bundle")
            continue
        if entry["bytes"] != len(data):
            report.add(
                name, f"manifest parts[{index}].bytes",
                f"{len(data)} bytes, the manifest says {entry['bytes']}",
            )  # fmt: skip
        if entry["sha256"] != hashlib.sha256(data).hexdigest():
            report.add(
                name, f"manifest parts[{index}].sha256",
                "content differs from the manifest's SHA-256",
            )  # fmt: skip
    for name in parts:
        if name not in names:
            report.add(name, "manifest parts", "in the bundle but not listed in the manifest")
    if [name for name in parts if name in names] != [name for name in names if name in parts]:
        report.add(CONTAINER, "order", "parts are not in the manifest's order")


def _heights(report: BundleReport, manifest: dict[str, Any], parts: dict[str, bytes]) -> range:
    first, last = manifest.get("from_height"), manifest.get("to_height")
    if (
        isinstance(first, int)
        and isinstance(last, int)
        and not isinstance(first, bool)
        and not isinstance(last, bool)
        and 0 <= first <= last < 2**64
    ):
        return range(first, last + 1)
    report.add(MANIFEST_NAME, "from_height", "from_height/to_height must be 0 <= from <= to")
    found = sorted(
        int(name[len(BLOCKS_DIR) + 1 : len(BLOCKS_DIR) + 1 + HEIGHT_DIGITS])
        for name in parts
        if name.startswith(BLOCKS_DIR + "/")
        and name[len(BLOCKS_DIR) + 1 :][:HEIGHT_DIGITS].isdigit()
    )
    return range(found[0], found[-1] + 1) if found else range(0)


def _check_part_names(report: BundleReport, parts: dict[str, bytes], heights: range) -> None:
    """Every part is one the format defines, at a height inside the manifest's range: a
    part the passes below would never read must not pass unnoticed."""
    for name in parts:
        directory, _, rest = name.partition("/")
        if directory == TRAILS_DIR:
            if not rest.endswith(".jsonl") or "/" in rest:
                report.add(name, "name", "a trail part is trails/NAME.jsonl")
            continue
        digits = rest[:HEIGHT_DIGITS]
        suffix = _SUFFIXES.get(directory)
        if suffix is None or not digits.isdigit() or not _name_matches(directory, rest, suffix):
            report.add(name, "name", "not a part this bundle format defines")
            continue
        if int(digits) not in heights:
            report.add(name, "name", f"height {int(digits)} is outside the manifest's range")


_SUFFIXES = {
    BLOCKS_DIR: ".tlbk",
    CERTIFICATES_DIR: ".tlcc",
    MEMBERSHIP_DIR: ".json",
    ANCHORS_DIR: ".json",
}


def _name_matches(directory: str, rest: str, suffix: str) -> bool:
    if directory == ANCHORS_DIR:
        fingerprint = rest[HEIGHT_DIGITS + 1 : -len(suffix)]
        return (
            rest[HEIGHT_DIGITS] == "-"
            and len(fingerprint) == 64
            and all(c in "0123456789abcdef" for c in fingerprint)
            and rest.endswith(suffix)
        )
    return rest == rest[:HEIGHT_DIGITS] + suffix
