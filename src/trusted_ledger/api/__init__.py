"""The node's REST API (docs/api.md): a Sawtooth-compatible subset on aiohttp, plus /status,
/receipts, /metrics and an OpenAPI document generated from the route table that serves it.

Imports ``chain``, ``txn``, ``state``, ``custody`` (key types), ``errors`` and
``observability``; the node builds ``NodeServices`` and runs ``ApiServer`` on its loop.
"""

from trusted_ledger.api.openapi import Param, Route, openapi_document
from trusted_ledger.api.server import ApiServer
from trusted_ledger.api.services import NodeServices, wall_clock_ms

__all__ = ["ApiServer", "NodeServices", "Param", "Route", "openapi_document", "wall_clock_ms"]
