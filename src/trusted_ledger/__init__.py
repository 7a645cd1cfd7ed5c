"""Trusted Ledger: a permissioned BFT ledger for bank consortia, every key in hardware.

Layers, bottom up (a layer imports only layers below it): hashing, custody, storage, state,
txn, processing, chain, consensus, network, api, audit, node; observability and errors are
shared leaves; cli sits on top. See docs/architecture.md.
"""

from trusted_ledger._version import __version__

__all__ = ["__version__"]
