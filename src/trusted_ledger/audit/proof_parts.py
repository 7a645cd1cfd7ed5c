"""Checking a state-proof part of a bundle against the block the bundle carries.

A membership or anchor part is a ``state`` proof document (docs/formats.md §8.4) in
canonical JSON. Beyond the proof's own checks, its block object must be byte for byte the
bundle's block header, proposer signature and certificate at that height: the certificate
is checked once, against the membership, in the chain pass; here it must just be the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from trusted_ledger.audit.bundle_format import canonical_json
from trusted_ledger.audit.report import BundleReport
from trusted_ledger.chain.proof_verify import verify_state_proof
from trusted_ledger.errors import TrustedLedgerError


@dataclass(frozen=True)
class BlockFacts:
    """What a proof's block object must equal: the bundle's own parts at one height."""

    height: int
    header: bytes
    proposer_signature: bytes | None
    certificate: bytes | None


@dataclass(frozen=True)
class ProvenValue:
    value: bytes | None
    """The value at the address, None when proven absent."""


def check_state_proof_part(
    report: BundleReport, part: str, data: bytes, block: BlockFacts, address: str
) -> ProvenValue | None:
    """The value the part proves at ``address`` in block ``block.height``'s state; None
    (with findings added) if the part does not prove it."""
    height = block.height
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        report.add(part, "document", "not JSON", height)
        return None
    if not isinstance(document, dict):
        report.add(part, "document", "not a JSON object", height)
        return None
    if canonical_json(document) != data:
        report.add(part, "document", "not in canonical JSON (docs/formats.md §7.1)", height)
    try:
        verified = verify_state_proof(document)
    except TrustedLedgerError as exc:
        report.add(part, getattr(exc, "field", "proof"), str(exc), height)
        return None
    ok = True
    block_object = document["block"]
    expected = {
        "header": block.header.hex(),
        "proposer_signature": None if block.proposer_signature is None
        else block.proposer_signature.hex(),
        "certificate": None if block.certificate is None else block.certificate.hex(),
    }  # fmt: skip
    for name, value in expected.items():
        if value is not None and block_object.get(name) != value:
            report.add(part, f"block.{name}", f"differs from the bundle's block {height}", height)
            # The value is proven under the header's state root: only another header (or
            # address, below) makes it a proof of something else.
            ok = ok and name != "header"
    if document.get("address") != address:
        report.add(part, "address", f"is not the expected address {address}", height)
        ok = False
    if not ok:
        return None
    value = verified.facts["value"]
    return ProvenValue(None if value is None else bytes.fromhex(value))
