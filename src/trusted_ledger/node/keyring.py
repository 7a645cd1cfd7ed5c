"""The node's custody keys for consensus: its key, and during a rotation its next key.

A member rotating its key has two keys on its token, each with its own signing guard: the
one in the current membership and the one an approved ``tl.consensus.members`` change puts
in its place. ``NodeKeyRing`` is the ``ChainSigner`` the publisher, the BFT driver and the
peer handshake all hold; at each height the driver calls ``choose`` with that height's
membership and the ring signs with whichever of its keys is a member there (none: the node
is not a member at that height and only follows the chain through certificates). So the
switch happens exactly at the height the new membership takes effect, without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence

from trusted_ledger.chain.membership import MemberList
from trusted_ledger.chain.signing import ChainSigner
from trusted_ledger.custody import Position, PublicKey, Signature
from trusted_ledger.errors import InvalidInput


class NodeKeyRing:
    """A ``ChainSigner`` over one or more node keys; signs with the active one."""

    def __init__(self, signers: Sequence[ChainSigner]) -> None:
        if not signers:
            raise InvalidInput("a node key ring holds at least one key")
        fingerprints = [s.public_key.fingerprint for s in signers]
        if len(set(fingerprints)) != len(fingerprints):
            raise InvalidInput(
                "the node's keys must differ",
                hint="custody.next_key_label must name a key other than custody.key_label",
            )
        self.signers = tuple(signers)
        self._active = self.signers[0]

    @property
    def public_key(self) -> PublicKey:
        """The active key: the one that signs (and authenticates this node to peers)."""
        return self._active.public_key

    @property
    def public_keys(self) -> tuple[PublicKey, ...]:
        return tuple(s.public_key for s in self.signers)

    def sign(self, digest: bytes, *, purpose: str, position: Position | None = None) -> Signature:
        return self._active.sign(digest, purpose=purpose, position=position)

    def choose(self, members: MemberList) -> ChainSigner | None:
        """Make the first of this node's keys that is in ``members`` the active one and
        return it; None (the active key unchanged) if no key of this node is a member."""
        for signer in self.signers:
            if signer.public_key in members:
                self._active = signer
                return signer
        return None


def key_ring(signer: ChainSigner) -> NodeKeyRing:
    """``signer`` as a ring (itself if it is one)."""
    return signer if isinstance(signer, NodeKeyRing) else NodeKeyRing([signer])
