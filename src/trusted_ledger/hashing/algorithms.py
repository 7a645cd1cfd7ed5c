"""Hash algorithms the ledger supports. Both produce 32-byte digests."""

from __future__ import annotations

import enum

from trusted_ledger.errors import InvalidInput

DIGEST_SIZE = 32


class HashAlgorithm(enum.IntEnum):
    """Values equal the native ``TL_ALG_*`` constants (checked at import)."""

    SHA256 = 0
    SM3 = 1

    @classmethod
    def from_name(cls, name: str) -> HashAlgorithm:
        """Parse ``sha256`` / ``sha-256`` / ``sm3`` (any case)."""
        key = name.strip().lower().replace("-", "").replace("_", "")
        for alg in cls:
            if alg.name.lower() == key:
                return alg
        choices = ", ".join(a.name.lower() for a in cls)
        raise InvalidInput(f"unknown hash algorithm {name!r}", hint=f"choose one of: {choices}")
