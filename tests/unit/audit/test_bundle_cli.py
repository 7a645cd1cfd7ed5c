"""``audit verify-bundle``: human and JSON reports, exit status 0 only when clean; and
``audit export LOG`` still exports one trail as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.audit.support import build_consortium
from tests.unit.audit.tamper import flip, read_parts, replace_part, rewrite
from trusted_ledger.audit import export_bundle
from trusted_ledger.audit.bundle_format import certificate_part
from trusted_ledger.cli import main


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    consortium = build_consortium(directory)
    out = directory / "bundle.tar"
    export_bundle(consortium.store, out, bootstrap=consortium.founders,
                  trails=consortium.trails("bank-a"))  # fmt: skip
    return out


def test_clean_bundle_exits_zero(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify-bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "bundle: ok" in out
    assert "6 certificates verified" in out
    assert "membership changes from heights: 3" in out
    assert main(["audit", "verify-bundle", str(bundle), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["findings"] == []
    assert (
        report["trails"] == {"bank-a": report["trails"]["bank-a"]}
        and report["anchors_matched"] == 2
    )


def test_tampered_bundle_exits_one_naming_the_part(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = certificate_part(5)  # a block without membership or anchor proofs
    data = next(p.data for p in read_parts(bundle)[1] if p.name == name)
    target = tmp_path / "bad.tar"
    rewrite(bundle, target, replace_part(name, flip(data, len(data) - 1, 1)), rehash=True)
    assert main(["audit", "verify-bundle", str(target), "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [(f["part"], f["index"], f["field"]) for f in findings] == [(name, 5, "votes")]
    assert main(["audit", "verify-bundle", str(target)]) == 1
    assert f"FINDING {name} [5] votes:" in capsys.readouterr().out


def test_not_a_bundle_and_bad_arguments(
    tmp_path: Path, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    assert main(["audit", "verify-bundle", str(junk)]) == 1
    assert "FINDING container tar:" in capsys.readouterr().out
    assert main(["audit", "verify-bundle", str(tmp_path / "absent.tar")]) == 1
    assert "no bundle at" in capsys.readouterr().err
    assert main(["audit", "verify-bundle", str(bundle), "--trusted-genesis", "abc"]) == 1
    assert "64 hex characters" in capsys.readouterr().err
    assert main(["audit", "export"]) == 1
    assert "--config and --out" in capsys.readouterr().err


def test_single_trail_export_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    consortium = build_consortium(tmp_path)
    path = consortium.banks["bank-b"].path
    out = tmp_path / "trail.csv"
    assert main(["audit", "export", str(path), "--format", "csv", "--output", str(out)]) == 0
    assert out.read_text().startswith("seq,time_us,kind")
    assert main(["audit", "verify", str(path)]) == 0
    assert "audit trail: ok" in capsys.readouterr().out
