"""An independent state-root oracle, written from docs/formats.md §5 alone.

Deliberately shares no code with ``trusted_ledger.state``: hashlib instead of the native
hashing, struct instead of int.to_bytes, recursion over the whole set instead of updates.
"""

from __future__ import annotations

import hashlib
import struct

DOMAIN = b"trusted-ledger/state-node/v1"


def node_hash(encoding: bytes) -> bytes:
    return hashlib.sha256(bytes([len(DOMAIN)]) + DOMAIN + encoding).digest()


def leaf(value: bytes) -> bytes:
    return b"\x01" + struct.pack(">I", len(value)) + value


def branch(edges: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x02" + struct.pack(">H", len(edges))
    for label, child in sorted(edges, key=lambda e: e[0][0]):
        out += struct.pack(">B", len(label)) + label + child
    return out


def groups(pairs: dict[bytes, bytes], at: int) -> list[dict[bytes, bytes]]:
    by_byte: dict[int, dict[bytes, bytes]] = {}
    for address, value in pairs.items():
        by_byte.setdefault(address[at], {})[address] = value
    return [by_byte[b] for b in sorted(by_byte)]


def edge(pairs: dict[bytes, bytes], p: int, nodes: dict[bytes, bytes]) -> tuple[bytes, bytes]:
    """E(T, p) of the spec; also records every node encoding into ``nodes``."""
    addresses = sorted(pairs)
    if len(addresses) == 1:
        encoding = leaf(pairs[addresses[0]])
        nodes[node_hash(encoding)] = encoding
        return addresses[0][p:], node_hash(encoding)
    q = p
    while all(a[q] == addresses[0][q] for a in addresses):
        q += 1
    encoding = branch([edge(group, q, nodes) for group in groups(pairs, q)])
    nodes[node_hash(encoding)] = encoding
    return addresses[0][p:q], node_hash(encoding)


def state_root(state: dict[str, bytes], nodes: dict[bytes, bytes] | None = None) -> bytes:
    """The state root of {hex address: value}."""
    pairs = {bytes.fromhex(address): value for address, value in state.items()}
    assert all(len(a) == 35 for a in pairs)
    sink: dict[bytes, bytes] = {} if nodes is None else nodes
    encoding = branch([edge(group, 0, sink) for group in groups(pairs, 0)])
    sink[node_hash(encoding)] = encoding
    return node_hash(encoding)
