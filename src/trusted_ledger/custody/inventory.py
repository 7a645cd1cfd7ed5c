"""What custody knows about a key on a token, and the policy its attributes must meet.

Pure data and checks: the token layer fills ``KeyInfo`` from ``C_GetAttributeValue`` and
calls ``check_key_policy`` after generation and every time it loads a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey
from trusted_ledger.errors import InvalidInput, KeyPolicyViolation

# The attributes custody reads back, by the name shown to operators (`keys list`).
POLICY_ATTRIBUTES = (
    "token",
    "private",
    "sensitive",
    "extractable",
    "local",
    "always_sensitive",
    "never_extractable",
    "sign",
)


@dataclass(frozen=True)
class KeyInfo:
    """A private key on a token: its names, algorithm, public half and attributes."""

    label: str
    key_id: str  # CKA_ID, hex
    algorithm: KeyAlgorithm
    public_key: PublicKey
    attributes: dict[str, bool] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint

    def policy_violations(self) -> list[str]:
        return policy_violations(self.attributes)


def policy_violations(attributes: dict[str, bool]) -> list[str]:
    """Every way these attributes break custody policy, in words an operator understands."""
    problems = []
    if attributes.get("extractable", True):
        problems.append("CKA_EXTRACTABLE is true: the private key can leave the token")
    if not attributes.get("local", False):
        problems.append("CKA_LOCAL is false: the key was imported, not generated on the token")
    if not attributes.get("sensitive", False):
        problems.append("CKA_SENSITIVE is false: the key value can be read in clear")
    if not attributes.get("private", False):
        problems.append("CKA_PRIVATE is false: the key is usable without login")
    if not attributes.get("token", False):
        problems.append("CKA_TOKEN is false: the key is a session object")
    return problems


def check_key_policy(label: str, attributes: dict[str, bool], *, allow_unsafe: bool) -> None:
    """Refuse a key whose attributes break policy, unless a developer explicitly allows it."""
    problems = policy_violations(attributes)
    if problems and not allow_unsafe:
        raise KeyPolicyViolation(
            f"key {label!r} refused: " + "; ".join(problems),
            hint="generate a new key with `trusted-ledger keys generate` "
            "(--allow-unsafe-keys exists for development only)",
        )


def unwrap_ec_point(algorithm: KeyAlgorithm, ec_point: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point by the spec, bare on some tokens;
    tell them apart by length, since a bare point may start with the same bytes."""
    bare_len = 32 if algorithm is KeyAlgorithm.ED25519 else 65
    if len(ec_point) == bare_len:
        return ec_point
    if len(ec_point) == bare_len + 2 and ec_point[0] == 0x04 and ec_point[1] == bare_len:
        return ec_point[2:]
    raise InvalidInput(f"unexpected CKA_EC_POINT of {len(ec_point)} bytes for {algorithm.value}")
