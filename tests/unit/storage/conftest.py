"""One fixture, two engines: every storage test runs against RocksDB and the in-memory DB."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trusted_ledger.storage import Database, MemoryDatabase, RocksDatabase

FAMILIES = ("blocks", "state")
OpenDatabase = Callable[..., Database]

ENGINES = ("memory", "rocksdb")


def make_opener(engine: str, root: Path) -> tuple[OpenDatabase, list[Database]]:
    """A function opening a fresh database of ``engine`` per call, and the list of all opened."""
    opened: list[Database] = []
    counter = itertools.count()

    def open_database(column_families: tuple[str, ...] = FAMILIES) -> Database:
        db: Database
        if engine == "memory":
            db = MemoryDatabase(column_families)
        else:
            db = RocksDatabase(root / f"db{next(counter)}", column_families, create=True)
        opened.append(db)
        return db

    return open_database, opened


@pytest.fixture(params=ENGINES)
def open_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenDatabase]:
    opener, opened = make_opener(request.param, tmp_path)
    yield opener
    for db in opened:
        db.close()


@pytest.fixture
def db(open_db: OpenDatabase) -> Database:
    return open_db()
