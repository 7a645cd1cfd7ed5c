"""Fuzz target: the audit bundle an auditor is handed (docs/formats.md §9).

Documented: ``verify_bundle`` never raises; whatever the bytes, it returns a report of
findings (part, field, message), and only an untouched bundle is ``ok``. Seeds are two real
bundles of a 4-member chain with anchors and a key rotation (tests/unit/audit/support.py),
one whole and one of a partial height range; mutations flip, insert, delete and splice bytes
anywhere, tar headers included.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given

from tests.fuzz.harness import fuzz_settings, inputs, run_decoder
from tests.unit.audit.support import build_consortium
from trusted_ledger.audit import BundleReport, export_bundle, verify_bundle

WORK = Path(tempfile.mkdtemp(prefix="tl-fuzz-bundle-"))


def _seeds() -> list[bytes]:
    (WORK / "chain").mkdir()
    consortium = build_consortium(WORK / "chain")
    whole, partial = WORK / "whole.tar", WORK / "partial.tar"
    export_bundle(
        consortium.store, whole, bootstrap=consortium.founders,
        trails=consortium.trails("bank-a", "bank-d"),
    )  # fmt: skip
    export_bundle(consortium.store, partial, bootstrap=consortium.founders, from_height=2)
    return [whole.read_bytes(), partial.read_bytes()]


SEEDS = _seeds()


def _verify(data: bytes) -> BundleReport:
    path = WORK / "input.tar"
    path.write_bytes(data)
    return verify_bundle(path)


def test_seed_bundles_verify() -> None:
    assert all(_verify(seed).ok for seed in SEEDS)


def _difference(data: bytes) -> str:
    seed = min(SEEDS, key=lambda s: abs(len(s) - len(data)))
    at = next((i for i, (a, b) in enumerate(zip(seed, data, strict=False)) if a != b), None)
    return f"{len(data)} bytes vs a seed of {len(seed)}, first difference at {at}"


@fuzz_settings()
@given(inputs(SEEDS, arbitrary_max=4096))
def test_audit_bundle(data: bytes) -> None:
    report = run_decoder(
        "audit.verify_bundle", _verify, data, (), alloc_per_byte=64,
        classify=lambda r: "ok" if r.ok else "findings",
    )  # fmt: skip
    assert report is not None
    if data not in SEEDS:
        # A changed bundle is never clean: every byte is covered by the manifest's hashes,
        # the tar framing or the parts' own checks.
        assert not report.ok, f"a changed bundle verified clean: {_difference(data)}"
