"""structlog set-up: JSON lines to stderr for machines, or readable console output for people.

Context (node, height, round) is bound with ``structlog.contextvars``. Nothing secret (PINs,
key material) is ever passed to a logger; the ``_redact`` processor is a second line of
defence that blanks any field whose name suggests a secret.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_FIELD_MARKERS = ("pin", "password", "secret", "private", "passphrase")


def _redact(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_FIELD_MARKERS):
            event[key] = "[redacted]"
    return event


def _current_stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger on whatever ``sys.stderr`` is when the record is written (loggers are not
    cached), so that a replaced stderr (a test's capture, a daemon's redirect) is followed
    and a closed one is never written to."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(*, json: bool = True, level: str = "info") -> None:
    """Route structlog output to stderr, as JSON lines (default) or for a console."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_current_stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound with the emitting component's name."""
    return structlog.get_logger(component=name)
