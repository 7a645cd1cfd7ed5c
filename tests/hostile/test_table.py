"""The hostile-input table in docs/reliability.md cannot rot: every row names at least one
test or is marked pending, and every test it cites exists (file and function)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
# Rows that wait for work other engineers are doing; each must say so and cite nothing.
PENDING: dict[str, str] = {}
# The hostile inputs issue #8 lists: each must have a row.
REQUIRED = (
    "oversized batch list", "duplicate transaction", "replayed transaction",
    "wrong family version", "undeclared address", "high-S", "malformed signatures",
    "wrong batcher", "unknown peer", "expired membership", "forged commit certificate",
    "guard replay", "batches_per_list_max` + 1", "zero transactions", "another batch",
    "unknown (neither committed", "another chain's id", "wrong proposer", "non-member",
    "equivocating vote", "replayed handshake", "frame over the bound",
    "writing outside its declared outputs",
)  # fmt: skip


def _rows() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("<!-- hostile-table:start -->")
    end = text.index("<!-- hostile-table:end -->")
    lines = [line for line in text[start:end].splitlines() if line.startswith("| H")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def _defines(path: Path, name: str) -> bool:
    source = path.read_text(encoding="utf-8")
    return re.search(rf"^(async )?def {name}\(", source, re.MULTILINE) is not None


def test_every_cited_test_exists() -> None:
    rows = _rows()
    assert len(rows) >= len(REQUIRED)
    missing = []
    for row in rows:
        assert len(row) == 5, row
        for path, name in CITATION.findall(row[4]):
            if not (ROOT / path).is_file() or not _defines(ROOT / path, name):
                missing.append(f"{row[0]}: {path}::{name}")
    assert not missing, "docs/reliability.md cites tests that do not exist:\n" + "\n".join(missing)


def test_every_row_is_backed_or_pending() -> None:
    for number, hostile, _where, outcome, backed in _rows():
        if number in PENDING:
            assert PENDING[number] in hostile and "pending" in outcome.lower()
            assert backed == "pending" and not CITATION.findall(backed)
        else:
            assert CITATION.findall(backed), f"{number} cites no test"
            assert CITATION.sub("", backed).strip(" ,") == "", f"{number}: stray text {backed}"


def test_row_numbers_are_unique_and_the_issue_list_is_covered() -> None:
    rows = _rows()
    numbers = [row[0] for row in rows]
    assert len(set(numbers)) == len(numbers)
    hostile = " ".join(row[1] for row in rows)
    assert [item for item in REQUIRED if item not in hostile] == []


def test_the_table_test_sees_a_deleted_test() -> None:
    # The checker itself must be able to fail: a citation of a missing function is caught.
    assert not _defines(ROOT / "tests/hostile/test_table.py", "no_such_test_function")
    assert _defines(ROOT / "tests/hostile/test_table.py", "test_every_cited_test_exists")
