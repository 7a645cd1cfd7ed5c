"""Export and offline verification of the chain, its commit certificates, the membership
history and the members' key-usage trails: the compliance bundle (docs/formats.md §9).

Imports storage, chain, state, processing and custody; never node, api or cli."""

from trusted_ledger.audit.export import ExportSummary, check_trail_name, export_bundle
from trusted_ledger.audit.report import BundleReport, Finding
from trusted_ledger.audit.verify import verify_bundle
from trusted_ledger.storage.rocks_readonly import ReadOnlyRocksDatabase

__all__ = [
    "BundleReport",
    "ExportSummary",
    "Finding",
    "ReadOnlyRocksDatabase",
    "check_trail_name",
    "export_bundle",
    "verify_bundle",
]
