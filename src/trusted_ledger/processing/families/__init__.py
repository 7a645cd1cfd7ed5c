"""The built-in transaction families; payload and state formats in docs/families.md."""

from __future__ import annotations

from trusted_ledger.processing.families.asset_handler import AssetHandler
from trusted_ledger.processing.families.audit_anchor import AuditAnchorHandler
from trusted_ledger.processing.families.identity import IdentityHandler, IdentitySubmissionPolicy
from trusted_ledger.processing.families.intkey import IntkeyHandler
from trusted_ledger.processing.families.settings import SettingsHandler
from trusted_ledger.processing.handler import HandlerRegistry


def builtin_registry() -> HandlerRegistry:
    """A registry serving every built-in family."""
    return HandlerRegistry(
        [
            IntkeyHandler(),
            AssetHandler(),
            SettingsHandler(),
            IdentityHandler(),
            AuditAnchorHandler(),
        ]
    )


__all__ = [
    "AssetHandler",
    "AuditAnchorHandler",
    "IdentityHandler",
    "IdentitySubmissionPolicy",
    "IntkeyHandler",
    "SettingsHandler",
    "builtin_registry",
]
