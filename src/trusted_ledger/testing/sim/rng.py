"""One seed, a tree of named random streams.

Every component draws from its own ``random.Random`` derived from the run's seed and a path
name (``"network"``, ``"node/2"``...). Deriving by name rather than by drawing child seeds in
creation order means that adding a component, or drawing more numbers in one, never shifts
another component's stream: a seed that failed yesterday still exercises the same schedule
after an unrelated change to, say, the Byzantine behaviours.
"""

from __future__ import annotations

import hashlib
import random

_DOMAIN = b"trusted-ledger/sim/rng/v1"


class RngTree:
    """The root of a run's randomness; ``child(name)`` is a fresh, independent stream."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _material(self, name: str) -> bytes:
        return hashlib.sha256(
            _DOMAIN + b"\0" + str(self.seed).encode() + b"\0" + name.encode()
        ).digest()

    def child(self, name: str) -> random.Random:
        """The stream for ``name``; the same (seed, name) always gives the same numbers."""
        # Not for secrets: reproducibility is the point.
        return random.Random(int.from_bytes(self._material(name), "big"))  # noqa: S311

    def secret_bytes(self, name: str) -> bytes:
        """32 bytes for ``name`` (an Ed25519 private key): deterministic, not secret at all,
        which is the point in a simulation."""
        return self._material("bytes/" + name)
