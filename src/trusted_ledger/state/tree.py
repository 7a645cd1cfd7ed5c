"""The Merkle-radix tree over 35-byte addresses: read views at a root, and batch updates.

Shape: a compressed (Patricia) trie with one address *byte* per radix step, as in Sawtooth,
but a chain of single-child nodes is stored as one labelled edge. The root is always a
branch (possibly with 0 or 1 children); every other branch has at least 2 children; leaves
sit at depth 35 and hold the value. The shape depends only on the set of addresses, so the
root depends only on the state's content, never on the order it was written in.

Nodes are content addressed (key = node hash) in one column family and never overwritten or
deleted, so every root ever committed stays readable. ``update`` does not write: it returns
the new nodes, for the caller to put into the same ``WriteBatch`` as the block that commits
them.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from trusted_ledger.errors import InvalidInput, StateCorrupted, UnknownStateRoot
from trusted_ledger.observability.metrics import (
    STATE_NODE_READS_TOTAL,
    STATE_NODES_WRITTEN_TOTAL,
    STATE_UPDATE_SECONDS,
)
from trusted_ledger.state.addresses import (
    ADDRESS_BYTES,
    address_from_bytes,
    address_to_bytes,
    validate_prefix,
)
from trusted_ledger.state.encoding import (
    EMPTY_BRANCH_ENCODING,
    EMPTY_ROOT,
    NODE_HASH_BYTES,
    Branch,
    Edge,
    Leaf,
    Node,
    decode_node,
    encode_branch,
    encode_leaf,
    node_hash,
    node_hashes,
    value_bytes_max,
)
from trusted_ledger.storage import Database, WriteBatch

STATE_NODES_COLUMN_FAMILY = "state_nodes"
node_cache_entries_max = 200_000
"""Decoded nodes kept in memory (content addressed, so never stale): ~100 MB at the most."""

Changes = Mapping[str, bytes | None]
"""address -> new value, or None to delete the address."""


@dataclass(frozen=True)
class StateUpdate:
    """The result of ``StateStore.update``: the new root and the nodes that must be stored."""

    root: bytes
    node_writes: Mapping[bytes, bytes]  # node hash -> encoding

    def add_to(self, batch: WriteBatch, column_family: str = STATE_NODES_COLUMN_FAMILY) -> None:
        """Put the new nodes into ``batch`` (sorted: the batch bytes are reproducible)."""
        for key in sorted(self.node_writes):
            batch.put(column_family, key, self.node_writes[key])


def _common_prefix_len(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class StateStore:
    """Reads and computes Merkle-radix trees stored in one column family of ``db``."""

    def __init__(self, db: Database, column_family: str = STATE_NODES_COLUMN_FAMILY) -> None:
        self._db = db
        self._column_family = column_family
        self._cache: OrderedDict[bytes, Node] = OrderedDict()
        db.get(column_family, EMPTY_ROOT)  # fails now, clearly, if the family is missing

    # --- reading -----------------------------------------------------------------------

    def has_root(self, root: bytes, pending: Mapping[bytes, bytes] | None = None) -> bool:
        if root == EMPTY_ROOT or (pending is not None and root in pending):
            return True
        # Not the node cache: it also holds nodes of updates that were never committed, and
        # a root exists only once it is stored (or handed in as pending).
        return self._db.get(self._column_family, root) is not None

    def view(self, root: bytes, pending: Mapping[bytes, bytes] | None = None) -> StateView:
        """The state as of ``root``; ``pending`` holds node writes not yet committed."""
        if not isinstance(root, bytes) or len(root) != NODE_HASH_BYTES:
            raise InvalidInput(f"a state root is {NODE_HASH_BYTES} bytes, got {root!r}")
        if not self.has_root(root, pending):
            raise UnknownStateRoot(
                f"state root {root.hex()} is not in this node's state store",
                hint="use a root of a block this node has committed",
            )
        return StateView(self, root, pending)

    def load(self, key: bytes, pending: Mapping[bytes, bytes] | None = None) -> Node:
        """The node stored under ``key``, checked against its hash."""
        node = self._cache.get(key)
        if node is not None:
            # Readers may run in several threads (parallel scheduler): a node evicted by
            # another thread between get and move_to_end is still a valid hit.
            with contextlib.suppress(KeyError):
                self._cache.move_to_end(key)
            return node
        encoding = pending.get(key) if pending is not None else None
        if encoding is None:
            encoding = self._db.get(self._column_family, key)
            STATE_NODE_READS_TOTAL.inc()
        if encoding is None:
            if key == EMPTY_ROOT:
                encoding = EMPTY_BRANCH_ENCODING
            else:
                raise StateCorrupted(
                    f"state node {key.hex()} is missing",
                    hint="the state store lost data; rebuild it from the chain",
                )
        if node_hash(encoding) != key:
            raise StateCorrupted(f"state node stored under {key.hex()} has another hash")
        node = decode_node(encoding)
        self._remember(key, node)
        return node

    def load_branch(self, key: bytes, pending: Mapping[bytes, bytes] | None) -> Branch:
        node = self.load(key, pending)
        if not isinstance(node, Branch):
            raise StateCorrupted(f"state node {key.hex()} is a leaf above depth {ADDRESS_BYTES}")
        return node

    def _remember(self, key: bytes, node: Node) -> None:
        self._cache[key] = node
        if len(self._cache) > node_cache_entries_max:
            with contextlib.suppress(KeyError):  # emptied by another thread meanwhile
                self._cache.popitem(last=False)

    # --- updating ------------------------------------------------------------------------

    def update(
        self, root: bytes, changes: Changes, pending: Mapping[bytes, bytes] | None = None
    ) -> StateUpdate:
        """Apply ``changes`` to the state at ``root``; return the new root and nodes.

        Deleting an absent address is a no-op. The result depends only on the state at
        ``root`` and the mapping's content, not on its iteration order.
        """
        self.view(root, pending)  # the root must exist
        started = time.perf_counter()
        updates = sorted(_checked_change(address, value) for address, value in changes.items())
        run = _UpdateRun(self, pending, [value for _, value in updates if value is not None])
        children = dict(self.load_branch(root, pending).children)
        run.apply_children(children, 0, updates)
        new_root = run.put_branch(children)  # the root stays a branch, even with one child
        STATE_UPDATE_SECONDS.observe(time.perf_counter() - started)
        STATE_NODES_WRITTEN_TOTAL.inc(len(run.writes))
        return StateUpdate(new_root, run.writes)

    def commit(self, update: StateUpdate, *, sync: bool = True) -> None:
        """Write ``update`` alone (tests, tools); the chain adds it to its block batch instead."""
        batch = WriteBatch()
        update.add_to(batch, self._column_family)
        self._db.write(batch, sync=sync)


def _checked_change(address: str, value: bytes | None) -> tuple[bytes, bytes | None]:
    raw = address_to_bytes(address)
    if value is not None:
        if not isinstance(value, bytes):
            raise InvalidInput(f"state values are bytes, not {type(value).__name__}")
        if len(value) > value_bytes_max:
            raise InvalidInput(
                f"value of {len(value)} bytes for {address} exceeds "
                f"value_bytes_max={value_bytes_max}"
            )
    return raw, value


Update = tuple[bytes, bytes | None]


class _UpdateRun:
    """One ``update`` call: walks the old tree along sorted updates, collects new nodes."""

    def __init__(
        self, store: StateStore, pending: Mapping[bytes, bytes] | None, values: list[bytes]
    ) -> None:
        self._store = store
        self._pending = pending
        self.writes: dict[bytes, bytes] = {}
        # Every leaf this run may create, hashed up front in one native call.
        encodings = {value: encode_leaf(value) for value in values}
        hashes = node_hashes(list(encodings.values()))
        self._leaves = {
            value: (encoding, key)
            for (value, encoding), key in zip(encodings.items(), hashes, strict=True)
        }

    def put_leaf(self, value: bytes) -> bytes:
        encoding, key = self._leaves[value]
        self.writes[key] = encoding
        self._store._remember(key, Leaf(value))
        return key

    def put_branch(self, children: dict[int, Edge]) -> bytes:
        return self._put(encode_branch(children), Branch(children))

    def _put(self, encoding: bytes, node: Node) -> bytes:
        key = node_hash(encoding)
        self.writes[key] = encoding
        self._store._remember(key, node)
        return key

    def apply_children(self, children: dict[int, Edge], depth: int, updates: list[Update]) -> None:
        """Apply ``updates`` (sorted, all below a branch at ``depth``) to its children."""
        for first, group in itertools.groupby(updates, key=lambda u: u[0][depth]):
            batch = list(group)
            edge = children.get(first)
            new = self.build(depth, batch) if edge is None else self.apply_edge(edge, depth, batch)
            if new is None:
                children.pop(first, None)
            else:
                children[first] = new

    def apply_edge(self, edge: Edge, depth: int, updates: list[Update]) -> Edge | None:
        """The edge (starting at ``depth``) after ``updates``, which all start with label[0]."""
        label, child = edge
        shared = len(label)
        for address, _ in updates:
            if not address.startswith(label[:shared], depth):
                shared = _common_prefix_len(label[:shared], address[depth:])
        if shared < len(label):
            # An update leaves the label part-way: split it with a branch at depth + shared.
            children = {label[shared]: (label[shared:], child)}
            self.apply_children(children, depth + shared, updates)
            return self.make_edge(label[:shared], children)
        end = depth + len(label)
        if end == ADDRESS_BYTES:
            ((_, value),) = updates  # addresses are unique and this label spells one whole
            return None if value is None else (label, self.put_leaf(value))
        children = dict(self._store.load_branch(child, self._pending).children)
        self.apply_children(children, end, updates)
        return self.make_edge(label, children)

    def make_edge(self, label: bytes, children: dict[int, Edge]) -> Edge | None:
        """An edge ``label`` to a branch of ``children``, collapsing branches of 0 or 1."""
        if not children:
            return None
        if len(children) == 1:
            ((child_label, child),) = children.values()
            return label + child_label, child
        return label, self.put_branch(children)

    def build(self, depth: int, updates: list[Update]) -> Edge | None:
        """A new subtree holding the sets among ``updates`` (deletes of nothing vanish)."""
        sets = [(address, value) for address, value in updates if value is not None]
        if not sets:
            return None
        if len(sets) == 1:
            address, value = sets[0]
            return address[depth:], self.put_leaf(value)
        # Sorted: what the first and last share, all share.
        shared = _common_prefix_len(sets[0][0][depth:], sets[-1][0][depth:])
        split = depth + shared
        children: dict[int, Edge] = {}
        for first, group in itertools.groupby(sets, key=lambda u: u[0][split]):
            edge = self.build(split, list(group))
            assert edge is not None
            children[first] = edge
        return sets[0][0][depth:split], self.put_branch(children)


class StateView:
    """Read-only state as of one root."""

    def __init__(
        self, store: StateStore, root: bytes, pending: Mapping[bytes, bytes] | None = None
    ) -> None:
        self._store = store
        self._pending = pending
        self.root = root

    def get(self, address: str) -> bytes | None:
        """The value at ``address``, or None if nothing is stored there."""
        return self.get_raw(address_to_bytes(address))

    def get_raw(self, address: bytes) -> bytes | None:
        node: Node = self._store.load_branch(self.root, self._pending)
        depth = 0
        while isinstance(node, Branch):
            edge = node.children.get(address[depth])
            if edge is None:
                return None
            label, child = edge
            if not address.startswith(label, depth):
                return None
            depth += len(label)
            node = self._store.load(child, self._pending)
        if depth != ADDRESS_BYTES:
            raise StateCorrupted(f"a leaf at depth {depth} under root {self.root.hex()}")
        return node.value

    def items(self, prefix: str = "", start: str | None = None) -> Iterator[tuple[str, bytes]]:
        """(address, value) for every address starting with hex ``prefix``, in address order,
        from address ``start`` on (included): subtrees wholly before it are not visited, so a
        page from the middle costs what the page costs."""
        validate_prefix(prefix)
        lowest = address_to_bytes(start) if start is not None else b""
        stack: list[tuple[bytes, bytes]] = [(b"", self.root)]  # (path so far, node hash)
        while stack:
            path, key = stack.pop()
            node = self._store.load(key, self._pending)
            if isinstance(node, Leaf):
                if len(path) != ADDRESS_BYTES:
                    raise StateCorrupted(f"a leaf at depth {len(path)} under {self.root.hex()}")
                if path >= lowest:
                    yield address_from_bytes(path), node.value
                continue
            # Pushed in reverse so that the smallest child is popped (visited) first.
            for first in sorted(node.children, reverse=True):
                label, child = node.children[first]
                below = path + label
                if below < lowest[: len(below)]:
                    continue  # every address below sorts before ``start``
                below_hex = below.hex()
                if below_hex.startswith(prefix) or prefix.startswith(below_hex):
                    stack.append((below, child))

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self.get(address) is not None

    def __repr__(self) -> str:
        return f"StateView(root={self.root.hex()})"
