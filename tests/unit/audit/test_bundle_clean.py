"""Export a real consortium chain and verify the bundle offline: clean, and exactly the
facts the chain holds (heights, membership change, anchors matched to trails)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.audit.support import build_consortium
from trusted_ledger.audit import export_bundle, verify_bundle


def test_clean_bundle_verifies(tmp_path: Path) -> None:
    consortium = build_consortium(tmp_path)
    out = tmp_path / "bundle.tar"
    summary = export_bundle(
        consortium.store, out, bootstrap=consortium.founders,
        trails=consortium.trails("bank-a", "bank-b", "bank-d"),
    )  # fmt: skip
    assert (summary.from_height, summary.to_height) == (0, 5)
    report = verify_bundle(out)
    assert report.findings == []
    assert report.ok
    assert report.blocks == 6 and report.certificates_verified == 6
    assert report.membership_changes == [3]
    assert report.anchors_checked == 5 and report.anchors_matched == 5
    assert set(report.trails) == {"bank-a", "bank-b", "bank-d"}
    assert any("bank-c" in note for note in report.notes)
