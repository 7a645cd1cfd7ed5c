from __future__ import annotations

from collections.abc import Iterator

import pytest

from trusted_ledger import hashing


def available_impls() -> list[str]:
    return [name for name in ("portable", "sha-ni") if hashing.sha256_impl_available(name)]


@pytest.fixture(params=available_impls())
def sha256_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once per SHA-256 implementation this CPU has (portable is always there)."""
    before = hashing.sha256_impl()
    hashing.set_sha256_impl(request.param)
    try:
        yield request.param
    finally:
        hashing.set_sha256_impl(before)
