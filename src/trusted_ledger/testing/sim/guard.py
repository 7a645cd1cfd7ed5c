"""An in-memory signing guard with exactly the real guard's rule.

The rule is ``custody.guard.decide`` itself, not a re-implementation: a simulated node may
sign at a position above its watermark (the advance is written to the node's "disk" before
the signature exists), may re-sign the very same digest at the watermark (Ed25519 gives the
same bytes again), and is refused anything below the watermark or a different digest at it.
What differs from ``custody.SigningGuard`` is only where the watermark lives: in the
simulated disk, which survives a simulated crash, instead of an fsynced file.
"""

from __future__ import annotations

from collections.abc import Callable

from trusted_ledger.custody.guard import Decision, Position, Watermark, decide
from trusted_ledger.errors import InvalidInput, SigningRefused

DIGEST_BYTES = 32


class MemoryGuard:
    """Authorises signatures against a watermark that ``persist`` writes durably."""

    def __init__(self, watermark: Watermark | None, persist: Callable[[Watermark], None]) -> None:
        self._watermark = watermark
        self._persist = persist
        self.refusals = 0

    @property
    def watermark(self) -> Watermark | None:
        return self._watermark

    def authorise(self, position: Position, digest: bytes) -> Decision:
        """Allow signing ``digest`` at ``position`` or raise ``SigningRefused``; an advance
        is persisted before this returns, as the real guard's fsync is."""
        if len(digest) != DIGEST_BYTES:
            raise InvalidInput(f"digest must be {DIGEST_BYTES} bytes, got {len(digest)}")
        decision = decide(self._watermark, position, digest)
        if decision is Decision.ADVANCE:
            advanced = Watermark(position, digest)
            self._persist(advanced)
            self._watermark = advanced
        elif decision is not Decision.REPEAT:
            self.refusals += 1
            w = self._watermark
            assert w is not None
            raise SigningRefused(
                f"refusing to sign at ({position.height}, {position.round}, {position.step}): "
                f"{decision.value.replace('_', ' ')}; watermark is "
                f"({w.position.height}, {w.position.round}, {w.position.step})"
            )
        return decision
