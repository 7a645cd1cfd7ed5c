"""Semantics every engine shares, checked with the same code on RocksDB and in memory."""

from __future__ import annotations

import pytest

from tests.unit.storage.conftest import OpenDatabase
from trusted_ledger.errors import InvalidInput, StorageClosed, UnknownColumnFamily
from trusted_ledger.observability.metrics import REGISTRY
from trusted_ledger.storage import Database, WriteBatch, key_bytes_max


def test_point_reads_and_writes(db: Database) -> None:
    assert db.get("blocks", b"k") is None
    db.put("blocks", b"k", b"v1")
    db.put("blocks", b"empty", b"")
    assert db.get("blocks", b"k") == b"v1"
    assert db.get("blocks", b"empty") == b""  # an empty value is present, not absent
    db.put("blocks", b"k", b"v2")
    assert db.get("blocks", b"k") == b"v2"
    db.delete("blocks", b"k")
    db.delete("blocks", b"never-there")  # deleting a missing key is a no-op
    assert db.get("blocks", b"k") is None
    assert db.get("blocks", b"empty") == b""


def test_column_families_are_separate(db: Database) -> None:
    db.put("blocks", b"k", b"block")
    db.put("state", b"k", b"state")
    db.put("default", b"k", b"default")
    assert db.get("blocks", b"k") == b"block"
    assert db.get("state", b"k") == b"state"
    assert db.get("default", b"k") == b"default"
    assert db.column_families == frozenset({"default", "blocks", "state"})


def test_iteration_is_in_key_order_within_bounds(db: Database) -> None:
    keys = [b"a", b"ab", b"abc", b"ab\xff", b"ab\xff\xff", b"ac", b"b", b"\x00", b"\xff"]
    batch = WriteBatch()
    for key in reversed(keys):
        batch.put("state", key, key.upper())
    db.write(batch)
    assert [k for k, _ in db.iterate("state")] == sorted(keys)
    assert list(db.iterate("state", prefix=b"ab")) == [
        (b"ab", b"AB"),
        (b"abc", b"ABC"),
        (b"ab\xff", b"AB\xff"),
        (b"ab\xff\xff", b"AB\xff\xff"),
    ]
    assert [k for k, _ in db.iterate("state", prefix=b"ab\xff")] == [b"ab\xff", b"ab\xff\xff"]
    assert [k for k, _ in db.iterate("state", prefix=b"\xff")] == [b"\xff"]
    assert [k for k, _ in db.iterate("state", start=b"ab", stop=b"ac")] == [
        b"ab",
        b"abc",
        b"ab\xff",
        b"ab\xff\xff",
    ]
    assert [k for k, _ in db.iterate("state", prefix=b"a", start=b"abd")] == [
        b"ab\xff",
        b"ab\xff\xff",
        b"ac",
    ]
    assert list(db.iterate("state", start=b"b", stop=b"b")) == []
    assert list(db.iterate("blocks")) == []


def test_batch_is_applied_in_order_across_families(db: Database) -> None:
    db.put("state", b"old", b"x")
    batch = WriteBatch()
    batch.put("blocks", b"k", b"first")
    batch.put("state", b"s", b"1")
    batch.delete("state", b"old")
    batch.put("blocks", b"k", b"second")  # the later entry wins
    batch.put("state", b"gone", b"y")
    batch.delete("state", b"gone")
    assert len(batch) == 6
    db.write(batch, sync=True)
    assert db.get("blocks", b"k") == b"second"
    assert list(db.iterate("state")) == [(b"s", b"1")]


def test_batch_naming_an_unknown_family_applies_nothing(db: Database) -> None:
    batch = WriteBatch()
    batch.put("blocks", b"k", b"v")
    batch.put("receipts", b"k", b"v")
    with pytest.raises(UnknownColumnFamily, match=r"'receipts'.*blocks, default, state"):
        db.write(batch)
    assert db.get("blocks", b"k") is None


def test_unknown_family_errors_say_how_to_fix(db: Database) -> None:
    for call in (
        lambda: db.get("nope", b"k"),
        lambda: db.put("nope", b"k", b"v"),
        lambda: db.iterate("nope"),
    ):
        with pytest.raises(UnknownColumnFamily) as info:
            call()
        assert "column_families when opening" in str(info.value)


def test_bad_keys_and_values_are_rejected(db: Database) -> None:
    with pytest.raises(InvalidInput, match=r"keys are bytes, not str"):
        db.put("state", "k", b"v")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"values are bytes, not bytearray"):
        db.put("state", b"k", bytearray(b"v"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"key_bytes_max"):
        db.get("state", b"k" * (key_bytes_max + 1))
    with pytest.raises(InvalidInput, match=r"WriteBatch"):
        db.write([("state", b"k", b"v")])  # type: ignore[arg-type]


def test_iteration_sees_the_database_as_of_the_call(db: Database) -> None:
    for i in range(10):
        db.put("state", bytes([i]), b"before")
    scan = db.iterate("state")
    first = next(scan)
    db.put("state", b"\x05", b"after")
    db.put("state", b"\x05\x00", b"new")
    db.delete("state", b"\x07")
    rest = list(scan)
    assert [first, *rest] == [(bytes([i]), b"before") for i in range(10)]


def test_snapshot_reads_one_instant_across_families(db: Database) -> None:
    db.put("blocks", b"head", b"1")
    db.put("state", b"root", b"r1")
    with db.snapshot() as snap:
        batch = WriteBatch()
        batch.put("blocks", b"head", b"2")
        batch.put("state", b"root", b"r2")
        batch.put("state", b"extra", b"e")
        db.write(batch)
        assert snap.get("blocks", b"head") == b"1"
        assert snap.get("state", b"root") == b"r1"
        assert snap.get("state", b"extra") is None
        with pytest.raises(UnknownColumnFamily):
            snap.get("nope", b"k")
    with pytest.raises(StorageClosed, match=r"released"):
        snap.get("blocks", b"head")
    assert db.get("blocks", b"head") == b"2"


def test_closed_database_fails_clearly(open_db: OpenDatabase) -> None:
    db = open_db()
    db.put("state", b"a", b"1")
    db.put("state", b"b", b"2")
    scan = db.iterate("state")
    assert next(scan) == (b"a", b"1")
    snap = db.snapshot()
    db.close()
    db.close()  # idempotent
    assert db.closed
    calls = (
        lambda: db.get("state", b"a"),
        lambda: db.put("state", b"a", b"v"),
        lambda: db.delete("state", b"a"),
        lambda: db.write(WriteBatch()),
        lambda: db.iterate("state"),
        db.snapshot,
        lambda: snap.get("state", b"a"),
    )
    for call in calls:
        with pytest.raises(StorageClosed, match=r"is closed.*open a new handle"):
            call()
    # A scan in progress stops with the same error, never stale data or a crash.
    with pytest.raises(StorageClosed):
        next(scan)


def test_context_manager_closes(open_db: OpenDatabase) -> None:
    with open_db() as db:
        db.put("state", b"k", b"v")
    assert db.closed
    assert "closed" in repr(db)


def test_writes_are_counted_in_metrics(db: Database) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"engine": db.engine_name, **labels}) or 0.0

    bytes_before = sample("tl_storage_write_bytes_total")
    synced_before = sample("tl_storage_write_seconds_count", synced="true")
    batch = WriteBatch()
    batch.put("state", b"key", b"value")  # 3 + 5 bytes
    batch.delete("blocks", b"gone")  # 4 bytes
    db.write(batch, sync=True)
    assert sample("tl_storage_write_bytes_total") - bytes_before == 12
    assert sample("tl_storage_write_seconds_count", synced="true") == synced_before + 1
