"""Which members decide each height: the one place the chain answers "membership at h".

Rule (docs/consortium.md, "Membership on chain"): the membership in effect at height ``h`` is
the value of the setting ``tl.consensus.members`` in the state block ``h`` builds on — the
state after block ``h - 1``. An approval committed in block ``H`` therefore takes effect from
block ``H + 1``: its proposer, votes and commit certificate are the new membership's. Block 0
builds on nothing; it and every height of a chain without the setting (single-mode chains,
chains made before the setting existed) use the *bootstrap* membership the node was started
with (the members file, or the node's own key).

The answer depends only on committed state, so every node computes the same membership for
a height, and a node catching up computes it from the state it re-executed itself, never
from what a peer claims. Lookups are cached by state root (a membership changes rarely, and
every message and certificate of a height asks).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from trusted_ledger.chain.certificate import Membership
from trusted_ledger.chain.store import ChainStore
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import InvalidInput
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    ChainMember,
    decode_members_setting,
)
from trusted_ledger.processing.families.settings import read_setting

__all__ = ["MEMBERS_SETTING", "ChainMember", "MemberList", "MembershipSchedule"]

memberships_cached_max = 64
"""Memberships kept by state root; a miss costs one state read."""
values_parsed_max = 4
"""Distinct membership values kept parsed (the current one and a few before it)."""


@dataclass(frozen=True)
class MemberList:
    """The members of one height, in proposer-rotation order."""

    members: tuple[ChainMember, ...]
    on_chain: bool
    """True if read from ``tl.consensus.members``; False for the bootstrap membership."""
    membership: Membership = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "membership", Membership(m.public_key for m in self.members))

    @property
    def keys(self) -> tuple[PublicKey, ...]:
        return tuple(m.public_key for m in self.members)

    @property
    def ids(self) -> tuple[bytes, ...]:
        """Consensus member ids (raw key fingerprints) in rotation order."""
        return tuple(bytes.fromhex(m.fingerprint) for m in self.members)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def __contains__(self, key: object) -> bool:
        return key in self.membership

    def by_fingerprint(self, fingerprint: str) -> ChainMember | None:
        return next((m for m in self.members if m.fingerprint == fingerprint), None)


def bootstrap_members(keys: Iterable[PublicKey]) -> tuple[ChainMember, ...]:
    """Members of bare keys (no names known): each named by its fingerprint's first 16 hex."""
    return tuple(ChainMember(key.fingerprint[:16], key) for key in keys)


class MembershipSchedule:
    """``at(height)``: the membership deciding ``height`` of ``store``'s chain. Thread-safe
    (the event loop, the chain worker and catch-up all ask)."""

    def __init__(self, store: ChainStore, bootstrap: Sequence[ChainMember] | Membership) -> None:
        members = (
            bootstrap_members(bootstrap) if isinstance(bootstrap, Membership) else tuple(bootstrap)
        )
        self._store = store
        self.bootstrap = MemberList(members, on_chain=False)
        self._cache: OrderedDict[bytes, MemberList] = OrderedDict()
        self._parsed: OrderedDict[str, MemberList] = OrderedDict()
        self._lock = threading.Lock()

    def at(self, height: int) -> MemberList:
        """The membership of ``height``; block ``height - 1`` must be committed."""
        if height < 0:
            raise InvalidInput(f"no membership at height {height}")
        if height == 0:
            return self.bootstrap
        head = self._store.head
        if head is None or height > head.number + 1:
            raise InvalidInput(
                f"the membership of height {height} is not known yet: it is in the state "
                f"after block {height - 1}, and the head is "
                f"{'absent' if head is None else head.number}"
            )
        if height == head.number + 1:
            return self.at_root(head.state_root)
        parent = self._store.block_at(height - 1)
        if parent is None:
            raise InvalidInput(f"block {height - 1} is not in the store")
        return self.at_root(parent.header.state_root)

    def next(self) -> MemberList:
        """The membership of the height after the head (the one being decided)."""
        head = self._store.head
        return self.at(0 if head is None else head.number + 1)

    def at_root(self, state_root: bytes) -> MemberList:
        """The membership a block building on ``state_root`` is decided by."""
        with self._lock:
            cached = self._cache.get(state_root)
            if cached is not None:
                self._cache.move_to_end(state_root)
                return cached
        value = read_setting(self._store.state.view(state_root), MEMBERS_SETTING)
        with self._lock:
            # Every block has a new root but the membership rarely changes: parse a value
            # (up to 256 keys) once, not once per height.
            members = self.bootstrap if value is None else self._parsed.get(value)
        if members is None:
            assert value is not None
            members = MemberList(decode_members_setting(value), on_chain=True)
        with self._lock:
            if value is not None:
                self._parsed[value] = members
                self._parsed.move_to_end(value)
                while len(self._parsed) > values_parsed_max:
                    self._parsed.popitem(last=False)
            self._cache[state_root] = members
            while len(self._cache) > memberships_cached_max:
                self._cache.popitem(last=False)
        return members
