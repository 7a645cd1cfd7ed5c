"""The canonical byte encoding of Merkle-radix nodes, and their hashes.

Specified in docs/formats.md §5; this module and that document must agree byte for byte
(the tests recompute roots from the document with an independent model).

    leaf   = 0x01 || u32(len(value)) || value
    branch = 0x02 || u16(n) || n * ( u8(len(label)) || label || child_hash[32] )
             children in strictly increasing order of label[0]
    node_hash = SHA-256( u8(28) || "trusted-ledger/state-node/v1" || encoding )

Integers are unsigned big-endian. A label is the run of address bytes from a branch to its
child (1..35 bytes); its first byte selects the child.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trusted_ledger.errors import StateCorrupted
from trusted_ledger.hashing import digest_many, tagged_digest
from trusted_ledger.state.addresses import ADDRESS_BYTES

NODE_HASH_DOMAIN = "trusted-ledger/state-node/v1"
NODE_HASH_BYTES = 32
LEAF_KIND = 0x01
BRANCH_KIND = 0x02
branch_children_max = 256  # one per possible next address byte
value_bytes_max = 1024 * 1024
"""Largest value one address may hold (1 MiB); bigger data belongs in several addresses."""

Edge = tuple[bytes, bytes]
"""(label, child node hash): the path bytes from a branch down to one child, and the child."""


@dataclass(frozen=True, slots=True)
class Leaf:
    value: bytes


@dataclass(frozen=True, slots=True)
class Branch:
    children: Mapping[int, Edge]  # label[0] -> edge


Node = Leaf | Branch


def encode_leaf(value: bytes) -> bytes:
    return bytes([LEAF_KIND]) + len(value).to_bytes(4, "big") + value


def encode_branch(children: Mapping[int, Edge]) -> bytes:
    parts = [bytes([BRANCH_KIND]), len(children).to_bytes(2, "big")]
    for first in sorted(children):
        label, child = children[first]
        assert label[0] == first and 1 <= len(label) <= ADDRESS_BYTES
        assert len(child) == NODE_HASH_BYTES
        parts += (bytes([len(label)]), label, child)
    return b"".join(parts)


def node_hash(encoding: bytes) -> bytes:
    return tagged_digest(NODE_HASH_DOMAIN, encoding)


_NODE_HASH_TAG = bytes([len(NODE_HASH_DOMAIN)]) + NODE_HASH_DOMAIN.encode("ascii")


def node_hashes(encodings: Sequence[bytes]) -> list[bytes]:
    """``node_hash`` of each encoding, in one native call (a block's leaves, say).

    Same bytes as ``tagged_digest`` hashes; per-call overhead dominates small nodes, so
    hashing a block's new leaves together is several times faster.
    """
    return list(digest_many([_NODE_HASH_TAG + encoding for encoding in encodings]))


EMPTY_BRANCH_ENCODING = encode_branch({})
EMPTY_ROOT = node_hash(EMPTY_BRANCH_ENCODING)
"""The state root of the empty state: the hash of a branch with no children."""


def _corrupt(what: str) -> StateCorrupted:
    return StateCorrupted(
        f"stored state node is malformed: {what}",
        hint="the state store is damaged; rebuild it from the chain or restore a backup",
    )


def decode_node(encoding: bytes) -> Node:
    """Parse an encoding strictly: anything but the one canonical form is rejected."""
    if not encoding:
        raise _corrupt("empty encoding")
    kind = encoding[0]
    if kind == LEAF_KIND:
        if len(encoding) < 5:
            raise _corrupt("leaf shorter than its header")
        size = int.from_bytes(encoding[1:5], "big")
        if len(encoding) != 5 + size:
            raise _corrupt(f"leaf says {size} value bytes, has {len(encoding) - 5}")
        return Leaf(encoding[5:])
    if kind != BRANCH_KIND:
        raise _corrupt(f"unknown node kind 0x{kind:02x}")
    return Branch(_decode_children(encoding))


def _decode_children(encoding: bytes) -> dict[int, Edge]:
    if len(encoding) < 3:
        raise _corrupt("branch shorter than its header")
    count = int.from_bytes(encoding[1:3], "big")
    if count > branch_children_max:
        raise _corrupt(f"branch claims {count} children")
    children: dict[int, Edge] = {}
    offset = 3
    previous = -1
    for _ in range(count):
        if offset >= len(encoding):
            raise _corrupt("branch ends inside its child list")
        size = encoding[offset]
        end = offset + 1 + size + NODE_HASH_BYTES
        if not 1 <= size <= ADDRESS_BYTES or end > len(encoding):
            raise _corrupt(f"child label of {size} bytes at offset {offset}")
        label = encoding[offset + 1 : offset + 1 + size]
        if label[0] <= previous:
            raise _corrupt("children not in strictly increasing order of their first byte")
        previous = label[0]
        children[label[0]] = (label, encoding[offset + 1 + size : end])
        offset = end
    if offset != len(encoding):
        raise _corrupt(f"{len(encoding) - offset} trailing bytes after the child list")
    return children
