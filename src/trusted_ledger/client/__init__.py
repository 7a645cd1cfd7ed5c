"""The client side of a node: its REST API, client key files and the ``asset`` family.

``LedgerClient`` speaks docs/api.md over HTTP with the standard library only; ``AssetClient``
builds and signs asset actions with a client key (``keys``) and submits them. The
``trusted-ledger`` client commands (``cli/client.py``) are thin over these. Nothing here
imports the node's own layers (api, node, chain): a client needs only the package's
transaction format and family helpers.
"""

from trusted_ledger.client.asset import (
    AssetClient,
    Payment,
    asset_info,
    format_amount,
    holding,
    parse_amount,
    parse_payments,
)
from trusted_ledger.client.http import (
    DEFAULT_URL,
    URL_ENV,
    BatchStatusReport,
    LedgerClient,
    NodeStatus,
    StateEntry,
    parse_retry_after,
)
from trusted_ledger.client.keys import (
    KEY_DIR_ENV,
    KeyFiles,
    default_key_dir,
    load_signing_key,
    resolve_account,
    resolve_key,
    write_key_files,
)
from trusted_ledger.client.progress import ProgressBar

__all__ = [
    "DEFAULT_URL",
    "KEY_DIR_ENV",
    "URL_ENV",
    "AssetClient",
    "BatchStatusReport",
    "KeyFiles",
    "LedgerClient",
    "NodeStatus",
    "Payment",
    "ProgressBar",
    "StateEntry",
    "asset_info",
    "default_key_dir",
    "format_amount",
    "holding",
    "load_signing_key",
    "parse_amount",
    "parse_payments",
    "parse_retry_after",
    "resolve_account",
    "resolve_key",
    "write_key_files",
]
