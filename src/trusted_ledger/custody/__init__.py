"""Key custody: every private key lives in a PKCS#11 token and is used only through here.

This is the only package that imports ``pkcs11``. Public surface:

- ``load_profile`` / ``HsmProfile``: per-HSM-family settings from ``hsm_profiles/*.toml``
- ``pin_from_spec`` and friends: where the PIN comes from (never argv, never logged)
- ``TokenPool``: a logged-in token; all PKCS#11 calls pass one gate per module
- ``CustodySigner``: sign digests with one key, guarded and audited
- ``SigningGuard`` / ``Position`` / ``Watermark``: no two signatures for one (height, round,
  step); ``newest_signed_positions``: what the trail says each key last signed
- ``AuditLog`` / ``verify_trail``: the hash-chained key-usage trail and its offline check
- ``PublicKey`` / ``Signature`` / ``KeyAlgorithm``: encodings and verification
"""

from trusted_ledger.custody.audit import AuditLog, newest_signed_positions
from trusted_ledger.custody.audit_verify import AuditReport, export_csv, verify_trail
from trusted_ledger.custody.guard import Position, SigningGuard, Watermark
from trusted_ledger.custody.inventory import KeyInfo
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey, Signature
from trusted_ledger.custody.pin import Pin, pin_from_env, pin_from_file, pin_from_spec
from trusted_ledger.custody.profiles import HsmProfile, load_profile
from trusted_ledger.custody.signer import CustodySigner
from trusted_ledger.custody.token import TokenPool

__all__ = [
    "AuditLog",
    "AuditReport",
    "CustodySigner",
    "HsmProfile",
    "KeyAlgorithm",
    "KeyInfo",
    "Pin",
    "Position",
    "PublicKey",
    "Signature",
    "SigningGuard",
    "TokenPool",
    "Watermark",
    "export_csv",
    "load_profile",
    "newest_signed_positions",
    "pin_from_env",
    "pin_from_file",
    "pin_from_spec",
    "verify_trail",
]
