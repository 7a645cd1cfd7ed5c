"""``trusted-ledger merkle …`` and ``trusted-ledger demo``: Merkle roots and proofs over files.

A file is cut into leaves by lines (``--lines``, the newline excluded) or into fixed-size
chunks (``--chunk-size``, the last chunk may be shorter). Proofs are written as JSON in the
format of docs/formats.md ("Merkle proof file"), so that anyone can check them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from trusted_ledger import hashing
from trusted_ledger.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidProof,
    NativeExtensionError,
)
from trusted_ledger.hashing import HashAlgorithm, reference

PROOF_FORMAT = "trusted-ledger/merkle-inclusion-proof/v1"
CHUNK_SIZE_DEFAULT = 4096
DEMO_LEAVES = 100_000


def register(subparsers: Any) -> None:
    merkle = subparsers.add_parser("merkle", help="Merkle roots and proofs over a file")
    sub = merkle.add_subparsers(dest="merkle_command", metavar="ACTION", required=True)

    root = sub.add_parser("root", help="print the Merkle root of a file's leaves")
    _leaf_options(root)
    root.set_defaults(handler=_cmd_root)

    prove = sub.add_parser("prove", help="write an inclusion proof for one leaf as JSON")
    _leaf_options(prove)
    prove.add_argument("--index", type=int, required=True, help="leaf index, from 0")
    prove.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    prove.set_defaults(handler=_cmd_prove)

    verify = sub.add_parser("verify", help="check a proof file; exit 0 only if it holds")
    verify.add_argument("proof", type=Path, help="a proof written by `merkle prove`")
    verify.add_argument(
        "--root", help="the root you trust, in hex (default: the root inside the proof file)"
    )
    verify.set_defaults(handler=_cmd_verify)

    demo = subparsers.add_parser(
        "demo", help="build a tree over sample transactions, prove and verify a leaf"
    )
    demo.add_argument("--leaves", type=int, default=DEMO_LEAVES, help="number of leaves")
    demo.add_argument("--alg", default="sha256", help="sha256 or sm3")
    demo.set_defaults(handler=_cmd_demo)


def _leaf_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the file to cut into leaves")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lines", action="store_true", help="one leaf per line")
    mode.add_argument(
        "--chunk-size",
        type=int,
        default=CHUNK_SIZE_DEFAULT,
        help=f"bytes per leaf (default {CHUNK_SIZE_DEFAULT})",
    )
    parser.add_argument("--alg", default="sha256", help="sha256 (default) or sm3")


def _read_leaves(args: argparse.Namespace) -> list[bytes]:
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {path}: {exc.strerror}", hint="check the path and permissions"
        ) from exc
    if args.lines:
        return data.splitlines()
    if args.chunk_size < 1:
        raise InvalidInput(f"--chunk-size must be at least 1, got {args.chunk_size}")
    return [data[i : i + args.chunk_size] for i in range(0, len(data), args.chunk_size)]


def _cmd_root(args: argparse.Namespace) -> int:
    alg = HashAlgorithm.from_name(args.alg)
    leaves = _read_leaves(args)
    print(json.dumps({"alg": alg.name.lower(), "tree_size": len(leaves),
                      "root": hashing.merkle_root(leaves, alg).hex()}))  # fmt: skip
    return 0


def proof_document(tree: hashing.MerkleTree, index: int, leaf: bytes) -> dict[str, Any]:
    proof = tree.inclusion_proof(index)
    return {
        "format": PROOF_FORMAT,
        "alg": tree.alg.name.lower(),
        "tree_size": tree.size,
        "index": index,
        "leaf": leaf.hex(),
        "leaf_hash": tree.leaf_hashes[index].hex(),
        "path": [p.hex() for p in proof.path],
        "root": tree.root.hex(),
    }


def _cmd_prove(args: argparse.Namespace) -> int:
    alg = HashAlgorithm.from_name(args.alg)
    leaves = _read_leaves(args)
    if not 0 <= args.index < len(leaves):
        raise InvalidInput(
            f"--index {args.index} is outside the file's {len(leaves)} leaves",
            hint=f"choose 0..{len(leaves) - 1}" if leaves else "the file has no leaves",
        )
    tree = hashing.MerkleTree.from_leaves(leaves, alg)
    text = json.dumps(proof_document(tree, args.index, leaves[args.index]), indent=1) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _hex_field(doc: dict[str, Any], name: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"proof field {name!r} is missing or not a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise InvalidInput(f"proof field {name!r} is not valid hex") from exc


def verify_proof_document(doc: dict[str, Any], trusted_root: bytes | None) -> bytes:
    """Check a proof document; return the root it was checked against. Raises on failure."""
    if doc.get("format") != PROOF_FORMAT:
        raise InvalidInput(f"not a proof file: format must be {PROOF_FORMAT!r}")
    alg = HashAlgorithm.from_name(str(doc.get("alg", "")))
    for name in ("tree_size", "index"):
        if not isinstance(doc.get(name), int):
            raise InvalidInput(f"proof field {name!r} is missing or not an integer")
    if not isinstance(doc.get("path"), list):
        raise InvalidInput("proof field 'path' is missing or not a list")
    path = [_hex_field({"p": p}, "p") for p in doc["path"]]
    leaf_hash = hashing.leaf_hash(_hex_field(doc, "leaf"), alg)
    if leaf_hash != _hex_field(doc, "leaf_hash"):
        raise InvalidProof("leaf_hash does not match H(0x00 || leaf)")
    root = trusted_root if trusted_root is not None else _hex_field(doc, "root")
    hashing.verify_inclusion(leaf_hash, doc["index"], doc["tree_size"], path, root, alg)
    return root


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        doc = json.loads(args.proof.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {args.proof}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{args.proof} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"{args.proof} must hold a JSON object")
    trusted = None
    if args.root is not None:
        try:
            trusted = bytes.fromhex(args.root)
        except ValueError as exc:
            raise InvalidInput("--root must be hex") from exc
    root = verify_proof_document(doc, trusted)
    source = "the given --root" if trusted is not None else "the root inside the file"
    print(f"ok: leaf {doc['index']} of {doc['tree_size']} is under {root.hex()} ({source})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    alg = HashAlgorithm.from_name(args.alg)
    if args.leaves < 1:
        raise InvalidInput("--leaves must be at least 1")
    # Deterministic 32-byte "transaction ids": the leaves of a block's batch tree.
    ids = hashing.digest_fixed(b"".join(i.to_bytes(8, "big") for i in range(args.leaves)), 8)
    started = time.perf_counter()
    tree = hashing.MerkleTree.from_fixed(ids.buffer, 32, alg)
    native_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    expected = reference.merkle_root(list(ids), alg)
    reference_ms = (time.perf_counter() - started) * 1000
    if expected != tree.root:
        raise NativeExtensionError("native and reference roots differ")
    index = args.leaves // 3
    doc = proof_document(tree, index, ids[index])
    verify_proof_document(doc, tree.root)
    print(f"SHA-256 implementation: {hashing.sha256_impl()}")
    print(f"leaves: {tree.size}, algorithm: {alg.name.lower()}")
    print(f"root:   {tree.root.hex()}")
    print(f"native: {native_ms:.1f} ms   pure-Python reference: {reference_ms:.1f} ms "
          f"({reference_ms / max(native_ms, 1e-6):.0f}x)")  # fmt: skip
    print(f"inclusion proof for leaf {index}: {len(doc['path'])} hashes, verified")
    print(json.dumps(doc, indent=1))
    return 0
