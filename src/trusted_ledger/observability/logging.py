"""structlog set-up: JSON lines to stderr for machines, or readable console output for people.

Context: ``bind_node_context`` names the node once and hands in where it stands (height,
round); every record of every thread then carries ``node``, ``height`` and ``round`` (a
record's own fields of those names win). Request- or task-local context is bound with
``structlog.contextvars``. Nothing secret (PINs, key material) is ever passed to a logger;
the ``_redact`` processor is a second line of defence that blanks any field whose name
suggests a secret.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

_SECRET_FIELD_MARKERS = ("pin", "password", "secret", "private", "passphrase")

Position = tuple[int | None, int | None]
"""(height, round) a node is at; None for what it does not know (catching up, single mode)."""
_node_context: dict[str, Any] = {}
_position: list[Callable[[], Position]] = []


def bind_node_context(node: str, position: Callable[[], Position] | None = None) -> None:
    """Name this process's node in every record, and (with ``position``, called per record
    from any thread: it must be cheap and never raise) the height and round it is at."""
    _node_context.clear()
    _node_context["node"] = node
    _position.clear()
    if position is not None:
        _position.append(position)


def clear_node_context() -> None:
    _node_context.clear()
    _position.clear()


def _add_node_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in _node_context.items():
        event.setdefault(key, value)
    if _position:
        try:
            height, consensus_round = _position[0]()
        except Exception:  # a log record must never fail for its context
            return event
        if height is not None:
            event.setdefault("height", height)
        if consensus_round is not None:
            event.setdefault("round", consensus_round)
    return event


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
            _add_node_context,
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
