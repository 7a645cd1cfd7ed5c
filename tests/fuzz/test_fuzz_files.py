"""Fuzz targets: files read from disk that an operator or an auditor may be handed: the
key-usage audit trail (verified offline), the consortium members file, the node's TOML
configuration.

Documented: ``verify_trail`` never raises, it reports every problem with its record number
(a forged trail is exactly what it must describe); ``load_members`` and ``load_config``
raise ``ConfigurationError`` naming the file and the key. The audit trail's record hashes
are unkeyed, so a forger can make edited records hash correctly: the structure-aware
target edits field values and then re-hashes, which reaches the checkpoint checks.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.harness import fuzz_settings, inputs, run_decoder
from tests.unit.custody.test_audit import SoftwareNodeKey
from trusted_ledger.custody import PublicKey
from trusted_ledger.custody.audit import AuditLog, canonical, record_hash
from trusted_ledger.custody.audit_verify import AuditReport, verify_trail
from trusted_ledger.errors import ConfigurationError
from trusted_ledger.node.config import CustodySection, NodeConfig, load_config, render_config
from trusted_ledger.node.members import Member, load_members, render_members

WORK = Path(tempfile.mkdtemp(prefix="tl-fuzz-files-"))


def _trail() -> tuple[list[bytes], PublicKey]:
    path = WORK / "audit.jsonl"
    clock = iter(range(1_700_000_000, 1_800_000_000)).__next__
    log = AuditLog(path, checkpoint_every_records=3, clock=lambda: float(clock()))
    key = SoftwareNodeKey(log)
    log.set_checkpoint_signer(key)
    for i in range(7):
        log.record_use(
            key_fingerprint=key.public.fingerprint, purpose="vote",
            digest=hashlib.sha256(bytes([i])).digest(), position=[i, 0, 1] if i % 2 else None,
            result="ok", error=None, latency_us=10 + i,
        )  # fmt: skip
    log.close()
    return path.read_bytes().splitlines(), key.public


TRAIL, TRAIL_KEY = _trail()
RECORDS: list[dict[str, Any]] = [json.loads(line) for line in TRAIL]
_CHECKPOINTS = [r for r in RECORDS if r["kind"] == "checkpoint"]
_HOSTILE_JSON = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**66), 2**66), st.floats(allow_nan=False),
    st.text(max_size=40), st.lists(st.integers(), max_size=3), st.dictionaries(
        st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["checkpoint", "use", "ok", "00" * 32, "zz", "", -1, -2, 0, 2**63]),
)  # fmt: skip


def test_seed_trail_verifies() -> None:
    report = verify_trail(TRAIL, TRAIL_KEY)
    assert report.ok and report.checkpoints == 2, report.problems


@fuzz_settings()
@given(inputs([b"\n".join(TRAIL)], arbitrary_max=2048))
def test_audit_trail_bytes(data: bytes) -> None:
    report = run_decoder(
        "custody.audit_verify.verify_trail[bytes]",
        lambda raw: verify_trail(raw.splitlines(), TRAIL_KEY),
        data,
        (),
    )
    assert report is not None
    _assert_covered_records_unchanged(data, report)


def _assert_covered_records_unchanged(data: bytes, report: AuditReport) -> None:
    """A trail that verifies may differ from the real one only after its last checkpoint
    (records not yet signed) or by its end (truncation needs the ledger anchor to see)."""
    if report.ok:
        covered = report.records - report.uncovered_records
        parsed = [json.loads(line) for line in data.splitlines()]
        assert parsed[:covered] == RECORDS[:covered]


@st.composite
def edited_trails(draw: st.DrawFn) -> bytes:
    """The real trail with records dropped, duplicated, truncated to a prefix, replaced by a
    checkpoint, or with a field removed or set to a hostile value, then re-hashed (as a
    forger would)."""
    records = [dict(r) for r in RECORDS]
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(records) - 1)) if records else 0
        action = draw(
            st.sampled_from(["set", "drop_field", "drop", "dup", "prefix", "rehash", "move"])
        )
        if not records:
            break
        record = records[index]
        if action == "set":
            record[draw(st.sampled_from(sorted(record)))] = draw(_HOSTILE_JSON)
        elif action == "drop_field":
            record.pop(draw(st.sampled_from(sorted(record))))
        elif action == "drop":
            del records[index]
        elif action == "dup":
            records.insert(index, dict(record))
        elif action == "prefix":
            del records[index + 1 :]
        elif action == "move":  # a checkpoint record placed anywhere, even first
            checkpoint = dict(draw(st.sampled_from(_CHECKPOINTS)))
            records[index] = record = checkpoint
        if draw(st.booleans()) or action == "rehash":
            body = {k: v for k, v in record.items() if k != "hash"}
            record["hash"] = record_hash(body)
    return b"\n".join(canonical(r) for r in records)


@fuzz_settings()
@given(edited_trails())
def test_audit_trail_records(data: bytes) -> None:
    report = run_decoder(
        "custody.audit_verify.verify_trail[records]",
        lambda raw: verify_trail(raw.splitlines(), TRAIL_KEY),
        data,
        (),
    )
    assert report is not None
    _assert_covered_records_unchanged(data, report)


# --- TOML files ---------------------------------------------------------------------------


def _spki(seed: int) -> PublicKey:
    key = ec.derive_private_key(seed, ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey.from_spki(der)


MEMBERS_TEXT = render_members(
    [Member(f"bank-{i}", _spki(1000 + i), f"127.0.0.1:{7000 + i}") for i in range(4)]
).encode()
CONFIG_TEXT = render_config(
    NodeConfig(path=WORK / "node.toml", custody=CustodySection(pin_env="TL_PIN"))
).encode()
_HOSTILE_TOML = st.sampled_from([
    '"²"', '"127.0.0.1:²"', '"h:٣"', '"[::1]:0"', '":"', '"host:99999"', "-1", "0",
    "9223372036854775807", "1e999", "nan", "inf", "true", "[]", "{}", '""', '"x"',
    '"\\u0000"', "[1, 2]", '["a", 1]', "2026-01-01T00:00:00Z", '"' + "a" * 5000 + '"',
])  # fmt: skip


@st.composite
def toml_values(draw: st.DrawFn, text: bytes) -> bytes:
    """The file with some ``key = value`` lines given a hostile value (wrong type, bad
    port, unicode digits, huge or negative numbers, dates, empty strings...)."""
    lines = text.split(b"\n")
    assignments = [i for i, line in enumerate(lines) if b" = " in line]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.sampled_from(assignments))
        key = lines[i].split(b" = ")[0]
        lines[i] = key + b" = " + draw(_HOSTILE_TOML).encode()
    return b"\n".join(lines)


def _load(loader: Any, name: str) -> Any:
    def load(raw: bytes) -> Any:
        path = WORK / name
        path.write_bytes(raw)
        return loader(path)

    return load


def test_seed_files_load() -> None:
    assert len(_load(load_members, "members.toml")(MEMBERS_TEXT)) == 4
    assert _load(load_config, "node.toml")(CONFIG_TEXT).api.port == 8008


@fuzz_settings()
@given(st.one_of(inputs([MEMBERS_TEXT], arbitrary_max=1024), toml_values(MEMBERS_TEXT)))
def test_members_file(data: bytes) -> None:
    run_decoder("node.members.load_members", _load(load_members, "members.toml"), data,
                (ConfigurationError,))  # fmt: skip


@fuzz_settings()
@given(st.one_of(inputs([CONFIG_TEXT], arbitrary_max=1024), toml_values(CONFIG_TEXT)))
def test_config_file(data: bytes) -> None:
    run_decoder("node.config.load_config", _load(load_config, "node.toml"), data,
                (ConfigurationError,))  # fmt: skip
