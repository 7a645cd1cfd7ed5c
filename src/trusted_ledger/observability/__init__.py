"""Metrics (every name in one module) and structured logging set-up."""

from trusted_ledger.observability.logging import configure_logging, get_logger
from trusted_ledger.observability.metrics import REGISTRY

__all__ = ["REGISTRY", "configure_logging", "get_logger"]
