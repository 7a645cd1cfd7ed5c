"""State updates per second for 10k-key blocks: our compressed tree vs a Sawtooth-style one.

    python bench/state.py [--quick] [--blocks N] [--keys-per-block K]

Each block sets K random intkey-style addresses (half new, half overwritten) on top of the
state the previous blocks built. Three ways, same blocks, same process:

- ours: ``StateStore.update`` (compressed trie, one byte per level), nodes committed to RocksDB
  in one synced batch per block, as the chain will;
- sawtooth-style: an uncompressed 256-ary trie, 35 levels, one node per address byte (the
  layout of Sawtooth's MerkleDatabase) updated incrementally in memory, same hashing and
  same node encoding, no disk: only the tree work is timed, in its favour;
- rebuild: the state root recomputed from the whole state by the reference model (what a
  validator without a tree would do).

Reports seconds per block, address updates per second and nodes written per block. The
rebuild's cost grows with the whole state (O(state)), the trees' with the block (O(block x
depth)); at the small states this bench reaches, rebuilding is still cheap.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from trusted_ledger.hashing import tagged_digest
from trusted_ledger.state import (
    EMPTY_ROOT,
    NODE_HASH_DOMAIN,
    STATE_NODES_COLUMN_FAMILY,
    StateStore,
    encode_leaf,
)
from trusted_ledger.storage import RocksDatabase, WriteBatch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.unit.state import reference_model


class SawtoothStyleTrie:
    """One node per address byte, 35 levels, children map of byte -> hash: no compression."""

    def __init__(self) -> None:
        self.children: dict[bytes, dict[int, bytes]] = {b"": {}}  # path -> {byte: child hash}
        self.nodes_written = 0

    def update(self, changes: dict[bytes, bytes]) -> bytes:
        touched: set[bytes] = set()
        for address, value in changes.items():
            leaf = tagged_digest(NODE_HASH_DOMAIN, encode_leaf(value))
            self.nodes_written += 1
            self.children.setdefault(address[:34], {})[address[34]] = leaf
            touched.update(address[:depth] for depth in range(35))
        for path in sorted(touched, key=len, reverse=True):  # deepest first
            kids = self.children.setdefault(path, {})
            encoding = b"\x02" + len(kids).to_bytes(2, "big")
            encoding += b"".join(b"\x01" + bytes([b]) + kids[b] for b in sorted(kids))
            digest = tagged_digest(NODE_HASH_DOMAIN, encoding)
            self.nodes_written += 1
            if path:
                self.children.setdefault(path[:-1], {})[path[-1]] = digest
            else:
                root = digest
        return root


def make_blocks(blocks: int, per_block: int, seed: int = 1) -> list[dict[str, bytes]]:
    rng = random.Random(seed)
    known: list[str] = []
    out = []
    for number in range(blocks):
        changes: dict[str, bytes] = {}
        while len(changes) < per_block:
            if known and rng.random() < 0.5:
                address = rng.choice(known)
            else:
                address = "1cf126" + rng.randbytes(32).hex()
                known.append(address)
            changes[address] = b"%d:%d" % (number, rng.randrange(10**9))
        out.append(changes)
    return out


def run(blocks: list[dict[str, bytes]], rebuild: bool) -> None:
    keys = len(blocks[0])
    ours: list[float] = []
    ours_compute: list[float] = []
    ours_nodes: list[int] = []
    naive: list[float] = []
    naive_nodes: list[int] = []
    rebuilt: list[float] = []
    state: dict[str, bytes] = {}
    trie = SawtoothStyleTrie()
    with tempfile.TemporaryDirectory() as tmp:
        db = RocksDatabase(Path(tmp) / "db", [STATE_NODES_COLUMN_FAMILY], create=True)
        store = StateStore(db)
        root = EMPTY_ROOT
        for changes in blocks:
            started = time.perf_counter()
            update = store.update(root, changes)
            ours_compute.append(time.perf_counter() - started)
            batch = WriteBatch()
            update.add_to(batch)
            db.write(batch, sync=True)
            ours.append(time.perf_counter() - started)
            ours_nodes.append(len(update.node_writes))
            root = update.root

            before = trie.nodes_written
            started = time.perf_counter()
            trie.update({bytes.fromhex(a): v for a, v in changes.items()})
            naive.append(time.perf_counter() - started)
            naive_nodes.append(trie.nodes_written - before)

            state.update(changes)
            if rebuild:
                started = time.perf_counter()
                expected = reference_model.state_root(state)
                rebuilt.append(time.perf_counter() - started)
                assert expected == root, "tree and reference model disagree"
        db.close()
    print(f"{len(blocks)} blocks of {keys} updates; state grows to {len(state)} addresses")
    print(f"{'method':<34}{'s/block (median)':>18}{'updates/s':>12}{'nodes/block':>13}")
    rows = [
        ("ours (compressed, RocksDB commit)", ours, statistics.median(ours_nodes)),
        ("  of which computing the new root", ours_compute, statistics.median(ours_nodes)),
        ("sawtooth-style 35 levels, memory", naive, statistics.median(naive_nodes)),
    ]
    if rebuild:
        rows.append(("rebuild from whole state (model)", rebuilt, float("nan")))
    for name, times, nodes in rows:
        median = statistics.median(times)
        print(f"{name:<34}{median:>18.3f}{keys / median:>12,.0f}{nodes:>13,.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 blocks of 2,000")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--keys-per-block", type=int, default=10_000)
    parser.add_argument("--no-rebuild", action="store_true", help="skip the reference rebuild")
    args = parser.parse_args()
    blocks, keys = (3, 2_000) if args.quick else (args.blocks, args.keys_per_block)
    run(make_blocks(blocks, keys), rebuild=not args.no_rebuild)
    return 0


if __name__ == "__main__":
    sys.exit(main())
