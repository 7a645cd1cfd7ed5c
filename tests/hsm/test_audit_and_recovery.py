"""Audited signing on real tokens (checkpoints signed by the token key, verified offline
through the CLI), and recovery when the TPM disappears under load."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.hsm.conftest import SoftwareTpm, TokenEnv, shared_pool
from tests.hsm.test_cli import run_cli
from trusted_ledger.custody.audit import AuditLog
from trusted_ledger.custody.audit_verify import verify_trail
from trusted_ledger.custody.guard import Position, SigningGuard
from trusted_ledger.custody.signer import CustodySigner
from trusted_ledger.errors import (
    HsmUnavailable,
    InvalidInput,
    SigningRefused,
    TemporarilyUnavailable,
)
from trusted_ledger.observability.metrics import REGISTRY

pytestmark = pytest.mark.timeout(300)


def test_audited_signing_with_checkpoints_verifies_offline(token: TokenEnv, tmp_path: Path) -> None:
    pool = shared_pool(token)
    label = f"audit-{uuid.uuid4().hex[:8]}"
    key = pool.generate_key(label, token.profile.default_algorithm)
    log = AuditLog(tmp_path / "audit.jsonl", checkpoint_every_records=5)
    guard = SigningGuard.create(tmp_path / "g.state", key.fingerprint)
    signer = CustodySigner(pool, label, audit=log, guard=guard, checkpoints=True)
    for height in range(6):
        digest = hashlib.sha256(f"vote {height}".encode()).digest()
        signer.sign(digest, purpose="vote", position=Position(height, 0, 1))
        signer.sign(hashlib.sha256(digest).digest(), purpose="block")
    with pytest.raises(SigningRefused):
        signer.sign(b"\x01" * 32, purpose="vote", position=Position(2, 0, 1))
    log.checkpoint()
    log.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    results = Counter(r["result"] for r in records if r["kind"] == "use")
    assert results["refused"] == 1
    assert sum(r["purpose"] == "checkpoint" for r in records if r["kind"] == "use") == 3
    report = verify_trail(lines, key.public_key)
    assert report.ok, report.problems
    assert report.checkpoints == 3 and report.uncovered_records == 0

    pem = tmp_path / "node.pem"
    pem.write_text(key.public_key.pem)
    verified = run_cli(token.env, "audit", "verify", str(tmp_path / "audit.jsonl"),
                       "--public-key", str(pem))  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "checkpoints verified: 3" in verified.stdout
    exported = run_cli(token.env, "audit", "export", str(tmp_path / "audit.jsonl"),
                       "--format", "csv")  # fmt: skip
    assert len(exported.stdout.strip().splitlines()) == len(lines) + 1
    tampered = records[4] | {"latency_us": records[4]["latency_us"] + 1}
    lines[4] = json.dumps(tampered, sort_keys=True, separators=(",", ":")).encode()
    (tmp_path / "tampered.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    broken = run_cli(token.env, "audit", "verify", str(tmp_path / "tampered.jsonl"))
    assert broken.returncode == 1
    assert "record 4: record hash mismatch" in broken.stdout


def test_every_consensus_purpose_is_audited_and_unknown_ones_never_sign(
    softhsm: TokenEnv, tmp_path: Path
) -> None:
    """The BFT driver signs proposals, prevotes and precommits: each purpose has its audit
    record; a purpose the trail cannot record is refused before the token is used."""
    pool = shared_pool(softhsm)
    label = f"purpose-{uuid.uuid4().hex[:8]}"
    key = pool.generate_key(label, softhsm.profile.default_algorithm)
    log = AuditLog(tmp_path / "audit.jsonl")
    signer = CustodySigner(pool, label, audit=log)
    with pytest.raises(InvalidInput, match="unknown purpose 'bogus'"):
        signer.sign(b"\x02" * 32, purpose="bogus")
    for result in ("ok", "error"):  # no attempt was made: none was timed
        labels = {"purpose": "bogus", "result": result}
        assert REGISTRY.get_sample_value("tl_custody_sign_seconds_count", labels) is None
    for purpose in ("block", "prevote", "vote"):
        signer.sign(hashlib.sha256(purpose.encode()).digest(), purpose=purpose)
    log.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert [r["purpose"] for r in records] == ["block", "prevote", "vote"]
    assert verify_trail((tmp_path / "audit.jsonl").read_bytes().splitlines(), key.public_key).ok


def _sample(name: str, labels: dict[str, str]) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


@pytest.mark.tpm
@pytest.mark.hsm
def test_tpm_lost_under_load_recovers(tpm: TokenEnv, software_tpm: SoftwareTpm) -> None:
    pool = shared_pool(tpm)
    label = f"rec-{uuid.uuid4().hex[:8]}"
    key = pool.generate_key(label, tpm.profile.default_algorithm)
    signer = CustodySigner(pool, label)
    outcomes: list[str] = []
    stop = threading.Event()
    recoveries_before = _sample("tl_custody_recoveries_total", {"module": "tpm2"})

    def load() -> None:
        i = 0
        while not stop.is_set():
            digest = hashlib.sha256(f"load {i}".encode()).digest()
            i += 1
            try:
                key.public_key.verify(digest, signer.sign(digest, purpose="test").raw)
                outcomes.append("ok")
            except TemporarilyUnavailable as exc:
                outcomes.append(type(exc).__name__)
                time.sleep(0.02)
            except Exception as exc:  # recorded, then asserted absent
                outcomes.append(f"unexpected {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    software_tpm.kill_swtpm()
    time.sleep(1.5)
    down_count = len(outcomes)
    software_tpm.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and outcomes[-1:] != ["ok"]:
        time.sleep(0.1)
    time.sleep(0.3)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    kinds = Counter(outcomes)
    assert not [o for o in outcomes if o.startswith("unexpected")], kinds
    assert kinds["HsmUnavailable"] > 0, kinds  # callers saw the typed error while down
    assert outcomes[-1] == "ok", kinds  # and success once the TPM was back
    assert "ok" in outcomes[:down_count]
    assert _sample("tl_custody_recoveries_total", {"module": "tpm2"}) > recoveries_before
    assert isinstance(HsmUnavailable("x"), TemporarilyUnavailable)


@pytest.mark.hsm
def test_softhsm_token_store_swapped_out_recovers(softhsm: TokenEnv) -> None:
    """SoftHSM's token disappears when its directory is moved away: callers get the typed
    transient error, and signing resumes once the directory is back."""
    pool = shared_pool(softhsm)
    label = f"swap-{uuid.uuid4().hex[:8]}"
    key = pool.generate_key(label, softhsm.profile.default_algorithm)
    signer = CustodySigner(pool, label)
    digest = hashlib.sha256(b"swap").digest()
    for _ in range(4):  # the key's handle cached on every session
        signer.sign(digest, purpose="test")
    recoveries_before = _sample("tl_custody_recoveries_total", {"module": "softhsm2"})
    tokens, away = softhsm.root / "tokens", softhsm.root / "tokens-away"
    tokens.rename(away)
    tokens.mkdir()
    try:
        # SoftHSM notices a vanished store when it next checks the token's files, which a
        # busy machine may delay past the first call: sign until it does (bounded).
        noticed = time.monotonic() + 10
        while True:
            try:
                signer.sign(digest, purpose="test")
            except HsmUnavailable as exc:
                assert re.search("lost|unavailable", str(exc)), str(exc)
                break
            assert time.monotonic() < noticed, "SoftHSM never noticed its token store left"
            time.sleep(0.05)
        time.sleep(0.3)  # past the first back-off: a re-initialisation finds no such token
        with pytest.raises(HsmUnavailable, match="unavailable"):
            signer.sign(digest, purpose="test")
        assert not pool.is_available
    finally:
        tokens.rmdir()
        away.rename(tokens)
    deadline = time.monotonic() + 20
    while True:
        try:
            signature = signer.sign(digest, purpose="test")
            break
        except HsmUnavailable:
            assert time.monotonic() < deadline, "SoftHSM token did not come back"
            time.sleep(0.05)
    key.public_key.verify(digest, signature.raw)
    assert _sample("tl_custody_recoveries_total", {"module": "softhsm2"}) > recoveries_before
    assert _sample("tl_custody_sessions_in_use", {"module": pool.module_path}) == 0
    errors = _sample(
        "tl_custody_module_errors_total",
        {"module": "softhsm2", "error": "ObjectHandleInvalid"},
    )
    assert errors >= 1
