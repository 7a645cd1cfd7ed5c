"""Random batches of puts and deletes, and random scans, against a dict model (both engines)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.storage.conftest import ENGINES, FAMILIES, make_opener
from trusted_ledger.storage import WriteBatch

# Short keys over a tiny alphabet, so that prefixes, overwrites and deletes collide often.
keys = st.binary(min_size=0, max_size=4).map(lambda b: bytes(x % 3 for x in b) + b"\x00")
values = st.binary(max_size=16)
families = st.sampled_from(FAMILIES)
put = st.tuples(st.just("put"), families, keys, values)
delete = st.tuples(st.just("delete"), families, keys, st.none())
batch = st.lists(st.one_of(put, delete), max_size=12)
scan = st.tuples(
    st.just("scan"), families, st.binary(max_size=2).map(lambda b: bytes(x % 3 for x in b))
)
step = st.one_of(st.tuples(st.just("batch"), batch), scan)

Model = dict[str, dict[bytes, bytes]]


def apply_to_model(model: Model, entries: list[tuple[str, str, bytes, bytes | None]]) -> None:
    for op, cf, key, value in entries:
        if op == "put":
            assert value is not None
            model[cf][key] = value
        else:
            model[cf].pop(key, None)


@pytest.mark.parametrize("engine", ENGINES)
@given(steps=st.lists(step, max_size=20))
def test_engine_matches_dict_model(engine: str, steps: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        opener, _ = make_opener(engine, Path(tmp))
        with opener() as db:
            model: Model = {cf: {} for cf in FAMILIES}
            for item in steps:
                if item[0] == "batch":
                    entries = item[1]
                    assert isinstance(entries, list)
                    wb = WriteBatch()
                    for op, cf, key, value in entries:
                        if op == "put":
                            wb.put(cf, key, value)
                        else:
                            wb.delete(cf, key)
                    db.write(wb, sync=False)
                    apply_to_model(model, entries)
                else:
                    _, cf, prefix = item
                    assert isinstance(cf, str) and isinstance(prefix, bytes)
                    expected = sorted((k, v) for k, v in model[cf].items() if k.startswith(prefix))
                    assert list(db.iterate(cf, prefix=prefix)) == expected
            for cf in FAMILIES:
                assert list(db.iterate(cf)) == sorted(model[cf].items())
                for key, value in model[cf].items():
                    assert db.get(cf, key) == value
