"""The merkle commands and the demo, through the real entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trusted_ledger import hashing
from trusted_ledger.cli import main
from trusted_ledger.hashing import reference

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.txt"
    path.write_bytes(b"".join(f"txn {i}: alice -> bob {i * 3}\n".encode() for i in range(37)))
    return path


def test_root_by_lines_matches_reference(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["merkle", "root", str(ledger_file), "--lines"]) == 0
    out = json.loads(capsys.readouterr().out)
    lines = ledger_file.read_bytes().splitlines()
    assert out == {"alg": "sha256", "tree_size": 37, "root": reference.merkle_root(lines).hex()}


def test_root_by_chunks_with_sm3(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merkle", "root", str(ledger_file), "--chunk-size", "100", "--alg", "sm3"]) == 0
    out = json.loads(capsys.readouterr().out)
    data = ledger_file.read_bytes()
    chunks = [data[i : i + 100] for i in range(0, len(data), 100)]
    assert out["root"] == reference.merkle_root(chunks, hashing.HashAlgorithm.SM3).hex()


def test_prove_then_verify_and_tamper(
    ledger_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof_path = tmp_path / "proof.json"
    assert (
        main(
            ["merkle", "prove", str(ledger_file), "--lines", "--index", "20", "-o", str(proof_path)]
        )
        == 0
    )
    doc = json.loads(proof_path.read_text())
    assert doc["leaf"] == ledger_file.read_bytes().splitlines()[20].hex()
    assert main(["merkle", "verify", str(proof_path)]) == 0
    assert main(["merkle", "verify", str(proof_path), "--root", doc["root"]]) == 0
    capsys.readouterr()

    # A different trusted root, a changed leaf, a changed path element: each fails with 1.
    assert main(["merkle", "verify", str(proof_path), "--root", "00" * 32]) == 1
    for field, value in (("leaf", "41"), ("path", ["00" * 32, *doc["path"][1:]])):
        tampered = dict(doc, **{field: value})
        bad = tmp_path / f"bad-{field}.json"
        bad.write_text(json.dumps(tampered))
        assert main(["merkle", "verify", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_bad_input_is_a_one_line_error(
    ledger_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["merkle", "prove", str(ledger_file), "--lines", "--index", "99"]) == 1
    assert "outside the file's 37 leaves" in capsys.readouterr().err
    assert main(["merkle", "root", str(tmp_path / "missing")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["merkle", "root", str(ledger_file), "--alg", "md5"]) == 1
    assert "choose one of: sha256, sm3" in capsys.readouterr().err
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    assert main(["merkle", "verify", str(not_json)]) == 1
    assert "not JSON" in capsys.readouterr().err


def test_demo_through_the_installed_command() -> None:
    exe = shutil.which("trusted-ledger") or str(Path(sys.executable).parent / "trusted-ledger")
    result = subprocess.run(
        [exe, "demo", "--leaves", "5000"], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    doc = json.loads(result.stdout[result.stdout.index("{") :])
    assert doc["tree_size"] == 5000


def test_bench_quick_runs_and_agrees(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hashing.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {row["impl"] for row in rows} >= {"portable"}
