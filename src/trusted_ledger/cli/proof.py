"""``trusted-ledger proof batch|transaction|state|audit|verify``: fetch proofs, check them here.

The fetching commands ask a node for a proof document (docs/formats.md §8), verify it
locally with the same node-free verifier ``proof verify`` uses on a saved file, print what
was proven, and with ``--out`` keep the document for anyone to check again offline.

What makes a block proof trustworthy is the commit certificate checked against the
membership: ``--members FILE`` (the consortium's members TOML file, or a JSON list of hex
DER public keys). Without it the proof is checked for consistency with the block header it
carries and the output says the block is NOT certified. An audit proof is checked against
``--public-key PEM`` (the node key), else against the key it carries, and says which.
Exit status: 0 proven; 1 the proof failed (the message names the field) or bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trusted_ledger.chain import Membership
from trusted_ledger.chain.proof_verify import VerifiedProof, verify_proof
from trusted_ledger.cli.client_common import ledger_client as _client
from trusted_ledger.cli.client_common import node_options as _node_options
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import ConfigurationError, InvalidInput, ProofMalformed
from trusted_ledger.node.members import load_members

proof_file_bytes_max = 256 * 1024 * 1024
"""Largest proof file read (an audit proof of 100,000 records is ~40 MB)."""
members_file_bytes_max = 1024 * 1024


def register(subparsers: Any) -> None:
    proof = subparsers.add_parser(
        "proof", help="fetch and verify proofs of batches, transactions, state and audit trail"
    )
    sub = proof.add_subparsers(dest="proof_command", metavar="ACTION", required=True)

    batch = sub.add_parser("batch", help="prove a committed batch is in its block")
    batch.add_argument("batch_id", help="batch id (128 hex chars)")
    transaction = sub.add_parser(
        "transaction", help="prove a committed transaction is in its batch and block"
    )
    transaction.add_argument("transaction_id", help="transaction id (128 hex chars)")
    state = sub.add_parser("state", help="prove the value (or absence) at a state address")
    state.add_argument("address", help="state address (70 hex chars)")
    state.add_argument("--block", type=int, help="block number (default: the head)")
    audit = sub.add_parser(
        "audit", help="prove the node's key-usage trail extends an earlier checkpoint"
    )
    audit.add_argument("--from-seq", type=int, help="earlier checkpoint record's seq")
    audit.add_argument("--to-seq", type=int, help="later checkpoint record's seq")
    for parser, handler in (
        (batch, _cmd_batch), (transaction, _cmd_transaction), (state, _cmd_state),
        (audit, _cmd_audit),
    ):  # fmt: skip
        _node_options(parser)
        parser.add_argument("--out", type=Path, help="also write the proof document here")
        _trust_options(parser)
        parser.set_defaults(handler=handler)

    verify = sub.add_parser("verify", help="verify a saved proof file offline (no node)")
    verify.add_argument("file", type=Path, help="a proof document (JSON)")
    _trust_options(verify)
    verify.set_defaults(handler=_cmd_verify)


def _trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--members",
        type=Path,
        help="membership to check the commit certificate against: the consortium's members "
        "TOML file, or a JSON list of hex DER public keys",
    )
    parser.add_argument(
        "--public-key", type=Path, help="audit proofs: the node key (PEM) the checkpoints need"
    )
    parser.add_argument("--json", action="store_true", help="print the facts proven as JSON")


def load_membership(path: Path) -> Membership:
    """A members TOML file (docs/consortium.md) or a JSON array of hex SPKI DER keys."""
    try:
        data = path.read_bytes()[: members_file_bytes_max + 1]
    except OSError as exc:
        raise ConfigurationError(f"cannot read members file {path}: {exc.strerror}") from exc
    if data.lstrip().startswith(b"["):
        try:
            entries = json.loads(data)
            keys = [PublicKey.from_spki(bytes.fromhex(entry)) for entry in entries]
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"members file {path}: not a JSON list of hex DER public keys ({exc})"
            ) from None
        return Membership(keys)
    return Membership(member.public_key for member in load_members(path))


def _node_key(args: argparse.Namespace) -> PublicKey | None:
    if args.public_key is None:
        return None
    try:
        return PublicKey.from_pem(args.public_key.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read {args.public_key}: {exc.strerror}") from exc


def _check(args: argparse.Namespace, proof: dict[str, Any]) -> int:
    membership = None if args.members is None else load_membership(args.members)
    result = verify_proof(proof, membership, _node_key(args))
    if getattr(args, "out", None) is not None:
        args.out.write_text(json.dumps(proof, indent=1, sort_keys=True) + "\n")
    _report(args, result, membership)
    return 0


def _report(args: argparse.Namespace, result: VerifiedProof, membership: Membership | None) -> None:
    if args.json:
        print(json.dumps({"type": result.type, "proven": True, **result.facts}, sort_keys=True))
        return
    print(f"PROVEN: {result.statement}")
    if result.block is None:
        return
    if membership is not None:
        print(
            f"block {result.block.number} certified by a quorum ({membership.quorum}) of "
            f"{membership.size} members"
        )
    else:
        print(
            f"NOT certified: block {result.block.number} was not checked against a membership "
            "(give --members FILE to check its commit certificate)",
            file=sys.stderr,
        )


def _cmd_batch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        proof = client.batch_proof(args.batch_id)
    return _check(args, proof)


def _cmd_transaction(args: argparse.Namespace) -> int:
    with _client(args) as client:
        proof = client.transaction_proof(args.transaction_id)
    return _check(args, proof)


def _cmd_state(args: argparse.Namespace) -> int:
    with _client(args) as client:
        proof = client.state_proof(args.address, args.block)
    return _check(args, proof)


def _cmd_audit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        proof = client.audit_proof(args.from_seq, args.to_seq)
    return _check(args, proof)


def _cmd_verify(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        with path.open("rb") as handle:
            data = handle.read(proof_file_bytes_max + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read proof file {path}: {exc.strerror}") from exc
    if len(data) > proof_file_bytes_max:
        raise ProofMalformed(f"more than {proof_file_bytes_max} bytes", field=str(path))
    try:
        proof = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProofMalformed(f"not JSON ({exc})", field=str(path)) from None
    return _check(args, proof)
