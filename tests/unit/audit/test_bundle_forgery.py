"""Forgeries that keep every manifest hash right and every signature valid: the deeper
checks must find them, and name the part and field. Plus the export's other paths: a
height range, a trusted genesis id, a non-member's anchor, and reading a live RocksDB."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.audit.support import CHAIN_ID, Consortium, _bank, build_consortium
from tests.unit.audit.tamper import read_parts, replace_part, rewrite
from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.audit import ReadOnlyRocksDatabase, export_bundle, verify_bundle
from trusted_ledger.audit.bundle_format import (
    Part,
    block_part,
    canonical_json,
    certificate_part,
    membership_part,
)
from trusted_ledger.audit.chain_facts import MEMBERS_ADDRESS
from trusted_ledger.audit.report import BundleReport
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    Block,
    ChainStore,
    CommitCertificate,
    Vote,
    vote_digest,
)
from trusted_ledger.chain.proofs import state_proof
from trusted_ledger.custody.audit import canonical, checkpoint_digest, record_hash
from trusted_ledger.hashing import sha256
from trusted_ledger.storage import RocksDatabase

TRAILS = ("bank-a", "bank-b", "bank-d")


def _vote(signer: SoftwareSigner, height: int, consensus_round: int, block_id: bytes) -> Vote:
    """A vote signed outside the guard: what a forger holding member keys could make."""
    digest = vote_digest(CHAIN_ID, height, consensus_round, block_id)
    signature = signer.sign(digest, purpose="vote")
    return Vote(bytes.fromhex(signer.public_key.fingerprint), signature.raw)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Consortium, Path]:
    directory = tmp_path_factory.mktemp("forgery")
    consortium = build_consortium(directory)
    out = directory / "bundle.tar"
    export_bundle(
        consortium.store, out, bootstrap=consortium.founders, trails=consortium.trails(*TRAILS)
    )
    return consortium, out


def _part(source: Path, name: str) -> bytes:
    return next(p.data for p in read_parts(source)[1] if p.name == name)


def _fields(report: BundleReport, part: str) -> set[str]:
    return {f.field for f in report.findings if f.part == part}


def test_block_that_breaks_the_hash_link_is_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    """A block 3 signed by its rightful proposer and certified by the right membership,
    but linking to block 1: only the hash link (and block 4's link to it) can tell."""
    consortium, source = built
    real = consortium.store.block_at(3)
    parent = consortium.store.block_at(1)
    assert real is not None and parent is not None
    header = dataclasses.replace(real.header, previous_block_id=parent.id, consensus_round=1)
    header_bytes = header.encode()
    signature = consortium.rotated_key.sign(sha256(header_bytes), purpose="block")
    forged = Block(header, header_bytes, signature.raw, real.batches)
    votes = [_vote(consortium.signer_of(m), 3, 1, forged.id) for m in consortium.members]
    certificate = CommitCertificate.from_votes(CHAIN_ID, 3, 1, forged.id, votes)

    def change(parts: list[Part]) -> list[Part]:
        parts = replace_part(block_part(3), forged.encode())(parts)
        return replace_part(certificate_part(3), certificate.encode())(parts)

    target = tmp_path / "forged.tar"
    rewrite(source, target, change, rehash=True)
    report = verify_bundle(target)
    assert "header.previous_block_id" in _fields(report, block_part(3))
    assert "header.previous_block_id" in _fields(report, block_part(4))
    assert report.certificates_verified == 6  # the forgery is certified: the link finds it


def test_certificate_by_the_old_membership_is_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    """Block 3 is after bank-d's rotation: votes of the founders (bank-d's old key among
    them) are valid signatures, but not a quorum of the membership at height 3."""
    consortium, source = built
    block = consortium.store.block_at(3)
    assert block is not None
    old_d = consortium.founder_signers["bank-d"]
    voters = [consortium.founder_signers[n] for n in ("bank-a", "bank-b")] + [old_d]
    votes = [_vote(s, 3, 0, block.id) for s in voters]
    forged = CommitCertificate.from_votes(CHAIN_ID, 3, 0, block.id, votes)
    target = tmp_path / "forged.tar"
    rewrite(source, target, replace_part(certificate_part(3), forged.encode()), rehash=True)
    report = verify_bundle(target)
    assert _fields(report, certificate_part(3)) == {"votes"}
    assert [f.part for f in report.findings] == [certificate_part(3)]


def test_hidden_membership_change_is_found(built: tuple[Consortium, Path], tmp_path: Path) -> None:
    """Dropping the rotation's proof (and rewriting the manifest's history to match) is
    seen: block 2 declares an output on the setting, and from height 3 the certificates
    carry a vote of a key the pre-rotation membership does not hold."""
    _, source = built
    target = tmp_path / "forged.tar"

    def drop(parts: list[Part]) -> list[Part]:
        return [p for p in parts if p.name != membership_part(2)]

    def history(fields: dict[str, Any]) -> None:
        fields["membership_history"] = fields["membership_history"][:1]
        fields["members"] = ["bank-a", "bank-b", "bank-c", "bank-d"]

    rewrite(source, target, drop, rehash=True, manifest_change=history)
    report = verify_bundle(target)
    assert "membership" in _fields(report, membership_part(2))
    for height in (3, 4, 5):
        assert "votes" in _fields(report, certificate_part(height))


def test_membership_proof_of_another_block_is_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    _, source = built
    other = _part(source, membership_part(0))
    target = tmp_path / "forged.tar"
    rewrite(source, target, replace_part(membership_part(2), other), rehash=True)
    report = verify_bundle(target)
    assert "block.header" in _fields(report, membership_part(2))


def test_manifest_history_that_differs_from_the_chain_is_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    _, source = built

    def later(fields: dict[str, Any]) -> None:
        fields["membership_history"][1]["height"] = 4

    target = tmp_path / "forged.tar"
    rewrite(source, target, lambda parts: parts, rehash=True, manifest_change=later)
    report = verify_bundle(target)
    assert [(f.part, f.field) for f in report.findings] == [("manifest.json", "membership_history")]


def _rewrite_trail(consortium: Consortium, data: bytes, edit_seq: int) -> bytes:
    """bank-a rewrites its own trail: edits record ``edit_seq``, re-chains every hash and
    re-signs every checkpoint with its own key. Alone, the trail verifies."""
    records = [json.loads(line) for line in data.splitlines()]
    records[edit_seq]["latency_us"] += 1
    key = consortium.founder_signers["bank-a"]
    prev = "0" * 64
    for record in records:
        record["prev"] = prev
        if record["kind"] == "checkpoint":
            record["head"] = records[record["head_seq"]]["hash"]
            digest = checkpoint_digest(record["head_seq"], record["head"])
            record["signature"] = key.sign(digest, purpose="checkpoint").raw.hex()
        elif record["purpose"] == "checkpoint":
            following = records[record["seq"] + 1]
            head = records[following["head_seq"]]["hash"]
            record["digest"] = checkpoint_digest(following["head_seq"], head).hex()
        record.pop("hash")
        record["hash"] = prev = record_hash(record)
    return b"".join(canonical(record) + b"\n" for record in records)


def test_trail_rewritten_after_anchoring_is_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    consortium, source = built
    name = "trails/bank-a.jsonl"
    rewritten = _rewrite_trail(consortium, _part(source, name), edit_seq=1)
    target = tmp_path / "forged.tar"
    rewrite(source, target, replace_part(name, rewritten), rehash=True)
    report = verify_bundle(target)
    assert report.trails["bank-a"] > 0
    assert {(f.part, f.field) for f in report.findings} == {(name, "hash")}
    assert all("rewritten after anchoring" in f.message for f in report.findings)
    assert len(report.findings) == 2  # both of bank-a's anchors (blocks 1 and 4)


def test_truncated_trail_is_found(built: tuple[Consortium, Path], tmp_path: Path) -> None:
    _, source = built
    name = "trails/bank-a.jsonl"
    lines = _part(source, name).splitlines(keepends=True)
    target = tmp_path / "cut.tar"
    rewrite(source, target, replace_part(name, b"".join(lines[:6])), rehash=True)
    report = verify_bundle(target)
    assert any(
        f.part == name and f.field == "records" and "truncated" in f.message
        for f in report.findings
    ), report.findings


def test_untrusted_genesis_is_found(built: tuple[Consortium, Path]) -> None:
    _, source = built
    report = verify_bundle(source, trusted_genesis=bytes(32))
    assert [(f.part, f.field) for f in report.findings] == [(block_part(0), "block_id")]


def test_partial_range_verifies_and_says_what_it_took_on_trust(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    consortium, _ = built
    out = tmp_path / "range.tar"
    export_bundle(consortium.store, out, bootstrap=consortium.founders, from_height=3, to_height=4)
    report = verify_bundle(out)
    assert report.ok, report.findings
    assert (report.from_height, report.to_height, report.blocks) == (3, 4, 2)
    assert any("taken from the manifest" in note for note in report.notes)


def test_anchor_by_a_non_member_is_flagged(tmp_path: Path) -> None:
    consortium = build_consortium(tmp_path)
    outsider = _bank(tmp_path, "outsider")
    outsider.use(2)
    height = consortium.commit([outsider.anchor_batch()], "bank-b")
    out = tmp_path / "bundle.tar"
    export_bundle(consortium.store, out, bootstrap=consortium.founders)
    report = verify_bundle(out)
    fingerprint = outsider.signer.public_key.fingerprint
    assert [(f.field, f.index) for f in report.findings] == [("public_key", height)]
    assert fingerprint in report.findings[0].part


def test_export_reads_a_live_rocksdb_read_only(tmp_path: Path) -> None:
    """The node keeps its database open (and its LOCK held) while the operator exports."""
    database = RocksDatabase(tmp_path / "chain", CHAIN_COLUMN_FAMILIES, create=True)
    consortium = build_consortium(tmp_path, database)
    reader = ReadOnlyRocksDatabase(tmp_path / "chain")
    try:
        store = ChainStore(reader, CHAIN_ID)
        out = tmp_path / "bundle.tar"
        export_bundle(store, out, bootstrap=consortium.founders, trails=consortium.trails(*TRAILS))
    finally:
        reader.close()
        database.close()
    report = verify_bundle(out)
    assert report.ok, report.findings
    assert report.blocks == 6


def test_anchor_by_a_members_retired_key_is_a_note(tmp_path: Path) -> None:
    """After a rotation the node keeps signing its checkpoints with its old key until the
    operator switches: such an anchor is bank-d's own, reported as a note, not a fault."""
    consortium = build_consortium(tmp_path)
    bank_d = consortium.banks["bank-d"]
    bank_d.signer = consortium.founder_signers["bank-d"]
    height = consortium.commit([bank_d.anchor_batch()], "bank-a")
    out = tmp_path / "bundle.tar"
    export_bundle(
        consortium.store, out, bootstrap=consortium.founders, trails=consortium.trails("bank-d")
    )
    report = verify_bundle(out)
    assert report.ok, report.findings
    assert any(f"block {height}: bank-d anchored with its retired key" in n for n in report.notes)


def test_missing_anchor_proof_and_extra_membership_proof_are_found(
    built: tuple[Consortium, Path], tmp_path: Path
) -> None:
    consortium, source = built
    proof = state_proof(consortium.store, MEMBERS_ADDRESS, 1)
    assert proof is not None
    dropped = next(p.name for p in read_parts(source)[1] if p.name.startswith("anchors/"))

    def change(parts: list[Part]) -> list[Part]:
        kept = [p for p in parts if p.name != dropped]
        return [*kept, Part(membership_part(1), canonical_json(proof))]

    target = tmp_path / "forged.tar"
    rewrite(source, target, change, rehash=True)
    report = verify_bundle(target)
    assert [(f.part, f.field) for f in report.findings] == [
        (membership_part(1), "membership"),
        (dropped, "anchor"),
    ]
    assert "cannot change the setting" in report.findings[0].message
    assert "missing" in report.findings[1].message
