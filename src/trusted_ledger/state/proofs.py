"""State proofs: the nodes on the radix path from a state root to one address.

A proof is the list of node encodings (docs/formats.md §5.3) met when walking from the root
towards the address: the root branch first, then each child the address's bytes select,
ending at the leaf (the address holds a value) or at the branch where the walk stops (no
child for the next byte, or the child's label leaves the address: the address is absent).

``verify_state_path`` needs nothing but the root and the encodings: it re-hashes every node,
so it runs without a node or a database, and a browser can do the same with SHA-256 alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trusted_ledger.errors import ProofMalformed, ProofRejected, StateCorrupted
from trusted_ledger.state.addresses import ADDRESS_BYTES, address_to_bytes
from trusted_ledger.state.encoding import (
    EMPTY_BRANCH_ENCODING,
    EMPTY_ROOT,
    Leaf,
    Node,
    decode_node,
    encode_branch,
    encode_leaf,
    node_hash,
)

if TYPE_CHECKING:  # only for the annotation: verifying needs no store
    from trusted_ledger.state.tree import StateStore

state_proof_nodes_max = ADDRESS_BYTES + 1
"""Most nodes on one path: every branch below the root consumes at least one address byte,
so a path holds the root, at most 34 more branches and the leaf."""


def _encoding_of(node: Node) -> bytes:
    if isinstance(node, Leaf):
        return encode_leaf(node.value)
    return encode_branch(node.children)


def prove_address(store: StateStore, root: bytes, address: str) -> list[bytes]:
    """The node encodings on the path from ``root`` to ``address`` (present or absent)."""
    raw = address_to_bytes(address)
    store.view(root)  # raises UnknownStateRoot for a root this store never committed
    path: list[bytes] = []
    key = root
    depth = 0
    while True:
        node = store.load(key)
        encoding = EMPTY_BRANCH_ENCODING if key == EMPTY_ROOT else _encoding_of(node)
        if node_hash(encoding) != key:  # the encoding is canonical, so this cannot differ
            raise StateCorrupted(f"state node {key.hex()} re-encodes to another hash")
        path.append(encoding)
        if isinstance(node, Leaf):
            return path
        edge = node.children.get(raw[depth])
        if edge is None:
            return path
        label, child = edge
        if not raw.startswith(label, depth):
            return path
        depth += len(label)
        key = child


def verify_state_path(
    root: bytes, address: str, nodes: Sequence[bytes], field: str = "nodes"
) -> bytes | None:
    """The value ``nodes`` prove at ``address`` under ``root`` (None: proven absent).

    Raises ``ProofMalformed`` for an encoding that is not canonical and ``ProofRejected``
    when a node does not hash to the hash its parent names, or the path ends too early or
    carries nodes past its end."""
    try:
        raw = address_to_bytes(address)
    except ValueError as exc:
        raise ProofMalformed(str(exc), field="address") from None
    if not 1 <= len(nodes) <= state_proof_nodes_max:
        raise ProofMalformed(
            f"{len(nodes)} nodes; a path has 1..{state_proof_nodes_max}", field=field
        )
    expected = root
    depth = 0
    for index, encoding in enumerate(nodes):
        where = f"{field}[{index}]"
        found = node_hash(encoding)
        if found != expected:
            parent = "the state root" if index == 0 else f"the edge in {field}[{index - 1}]"
            raise ProofRejected(
                f"node hashes to {found.hex()}, {parent} names {expected.hex()}", field=where
            )
        node = _decode(encoding, where)
        last = index == len(nodes) - 1
        if isinstance(node, Leaf):
            if depth != ADDRESS_BYTES:
                raise ProofRejected(f"a leaf at depth {depth}, leaves are at 35", field=where)
            if not last:
                raise ProofRejected("nodes follow the leaf", field=f"{field}[{index + 1}]")
            return node.value
        if index > 0 and len(node.children) < 2:
            raise ProofRejected("a branch below the root with fewer than 2 children", field=where)
        if depth >= ADDRESS_BYTES:
            raise ProofRejected(f"a branch at depth {depth}", field=where)
        edge = node.children.get(raw[depth])
        if edge is None or not raw.startswith(edge[0], depth):
            # The walk stops here: no child for the next byte, or its label diverges.
            if not last:
                raise ProofRejected(
                    "the address leaves the tree at the node before; nothing may follow",
                    field=f"{field}[{index + 1}]",
                )
            return None
        label, expected = edge
        depth += len(label)
        if last:
            raise ProofRejected(
                f"the path ends at depth {depth - len(label)}, but the branch has a child "
                f"on the address's path (hash {expected.hex()})",
                field=field,
                hint="a state proof must end at the leaf, or where the address leaves the tree",
            )
    raise AssertionError("unreachable: the loop returns or raises at its last node")


def _decode(encoding: bytes, where: str) -> Node:
    try:
        node = decode_node(encoding)
    except StateCorrupted as exc:
        raise ProofMalformed(
            exc.message.removeprefix("stored state node is malformed: "), field=where
        ) from None
    return node
