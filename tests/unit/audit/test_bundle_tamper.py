"""A changed byte anywhere in a bundle is found, and the finding names the part changed.

Deterministic sweep: for every part (each block, certificate, membership proof, anchor
proof, trail, and the manifest), bytes at the ends, the middle and seeded random offsets are
flipped with varying masks. Each change is verified twice: as is (the manifest's hashes
catch it) and with the manifest's hashes recomputed, so that the part's own checks must
catch it: signatures, hash links, proofs against the block, canonical encodings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.unit.audit.support import Consortium, build_consortium
from tests.unit.audit.tamper import flip, read_parts, replace_part, rewrite, write_manifest
from trusted_ledger.audit import export_bundle, verify_bundle
from trusted_ledger.audit.bundle_format import MANIFEST_NAME

MASKS = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF, 0x5A)
RANDOM_OFFSETS_PER_PART = 6


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Consortium, Path]:
    directory = tmp_path_factory.mktemp("bundle")
    consortium = build_consortium(directory)
    out = directory / "bundle.tar"
    export_bundle(
        consortium.store, out, bootstrap=consortium.founders,
        trails=consortium.trails("bank-a", "bank-b", "bank-d"),
    )  # fmt: skip
    assert verify_bundle(out).ok
    return consortium, out


def _offsets(size: int, rng: random.Random) -> list[int]:
    fixed = {0, 1, size // 2, size - 2, size - 1}
    return sorted({*fixed, *rng.sample(range(size), min(RANDOM_OFFSETS_PER_PART, size))})


def test_every_part_kind_is_in_the_bundle(built: tuple[Consortium, Path]) -> None:
    _, parts = read_parts(built[1])
    kinds = {part.name.split("/")[0] for part in parts}
    assert kinds == {"blocks", "certificates", "membership", "anchors", "trails"}
    names = [part.name for part in parts]
    assert sum(name.startswith("membership/") for name in names) == 2  # genesis, rotation
    assert sum(name.startswith("anchors/") for name in names) == 5


def test_flipped_byte_in_every_part_is_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    _, source = built
    _, parts = read_parts(source)
    rng = random.Random(7)
    target = tmp_path / "tampered.tar"
    checked = 0
    for part in parts:
        for offset in _offsets(len(part.data), rng):
            changed = flip(part.data, offset, rng.choice(MASKS))
            for rehash in (False, True):
                rewrite(source, target, replace_part(part.name, changed), rehash=rehash)
                report = verify_bundle(target)
                where = f"{part.name} byte {offset}, rehash={rehash}: {report.findings}"
                assert not report.ok, where
                assert part.name in report.parts_with_findings(), where
                if rehash:  # the deeper check, not the manifest hash, found it
                    assert any(
                        f.part == part.name and not f.field.startswith("manifest")
                        for f in report.findings
                    ), where
                checked += 1
    assert checked > 2 * 22 * 5


def test_flipped_byte_in_the_manifest_is_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    _, source = built
    manifest, _ = read_parts(source)
    rng = random.Random(11)
    target = tmp_path / "tampered.tar"
    offsets = sorted({*range(0, len(manifest), max(1, len(manifest) // 40)), len(manifest) - 1})
    for offset in offsets:
        write_manifest(source, target, flip(manifest, offset, rng.choice(MASKS)))
        report = verify_bundle(target)
        assert not report.ok, offset
        assert any(
            f.part == MANIFEST_NAME or f.field.startswith("manifest") for f in report.findings
        ), (offset, report.findings)
