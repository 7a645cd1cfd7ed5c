"""The HTTP plumbing every handler shares: the error middleware (docs/api.md's error shape,
the one place errors become statuses), bounded body readers, the commit signal long-polls
wait on, and the server's state flags.

Split from ``api/app.py`` so that the handlers module holds handlers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from aiohttp import hdrs, web

from trusted_ledger.api import params as p
from trusted_ledger.api import render as r
from trusted_ledger.api.openapi import STATUS_TITLES, Handler
from trusted_ledger.errors import (
    BatchListFault,
    ClientNotAuthorized,
    NodeNotReady,
    PoolFull,
    RequestInvalid,
    RequestTooLarge,
    ResourceNotFound,
    StorageFailure,
    StorageNeedsRestart,
    UnsupportedContentType,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import API_REQUEST_SECONDS, API_REQUESTS_TOTAL

_log = get_logger("api")

retry_after_seconds = 1
"""Retry-After of a 429 (full pool) or 503: about one block interval and commit."""
json_body_bytes_max = 256 * 1024
"""POST /batch_statuses and /receipts bodies: 1,000 ids of 131 JSON bytes fit with room."""

ROUTE_KEY = web.RequestKey("route", str)
"""The route template a request matched, for metric labels (absent: unmatched)."""
OCTET_STREAM = "application/octet-stream"
JSON = "application/json"


class CommitSignal:
    """Wakes every waiting long-poll at once. Used on the event loop's thread only; other
    threads reach ``wake`` through ``loop.call_soon_threadsafe`` (``ApiServer``).

    ``generation`` counts wake-ups, so a long-poll that read statuses while a commit landed
    (and so missed its wake-up) sees the count moved and reads again at once.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._event: asyncio.Event | None = None

    def wake(self) -> None:
        self.generation += 1
        if self._event is not None:
            self._event.set()
            self._event = None  # the next waiter gets a fresh event

    async def wait(self, seen_generation: int, timeout_seconds: float) -> None:
        """Return on the next wake-up after ``seen_generation``, or after the timeout."""
        if self.generation != seen_generation:
            return
        if self._event is None:
            self._event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_seconds)


class ApiState:
    """What the server toggles while the app runs: readiness and shutdown."""

    def __init__(self) -> None:
        self.ready = True
        self.stopping = False
        self.commits = CommitSignal()


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    title = STATUS_TITLES.get(status, "Error")
    return web.json_response(r.error_body(status, title, message), status=status, headers=headers)


_STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (RequestInvalid, 400),
    (BatchListFault, 400),
    (ClientNotAuthorized, 403),
    (ResourceNotFound, 404),
    (RequestTooLarge, 413),
    (UnsupportedContentType, 415),
    (PoolFull, 429),
    (NodeNotReady, 503),
    # The disk refused a write (full: ENOSPC): nothing was queued, come back later.
    (StorageFailure, 503),
    # A failed write reached the disk after all: the node stops for a restart; come back.
    (StorageNeedsRestart, 503),
)
"""The errors a handler raises on purpose, by HTTP status; anything else is a 500."""


def status_of(exc: Exception) -> int:
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer in docs/api.md's error shape, and counted by route template."""
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # the router's 404 and 405, aiohttp's own 413
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = {
            404: f"no route {request.path}; GET /openapi.json lists every route",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(exc.status, exc.reason)
        if headers:
            message += f" (allowed: {headers['Allow']})"
        response = error_response(exc.status, message, headers)
    except Exception as exc:
        status = status_of(exc)
        # Both are "come back later": one block interval and commit is a fair first retry.
        headers = {"Retry-After": str(retry_after_seconds)} if status in (429, 503) else None
        if status == 500:
            _log.exception("api_request_failed", method=request.method, path=request.path)
            message = "the node failed to answer; the error is in its log"
        else:
            message = str(exc)
        response = error_response(status, message, headers)
    route = request.get(ROUTE_KEY, "unmatched")
    API_REQUESTS_TOTAL.labels(route, request.method, str(response.status)).inc()
    API_REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
    return response


async def read_body(request: web.Request, bytes_max: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``bytes_max`` (from the
    Content-Length header before reading, or while reading a chunked body)."""
    declared = request.content_length
    if declared is not None and declared > bytes_max:
        raise RequestTooLarge(f"a body of {declared} bytes; at most {bytes_max} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > bytes_max:
            raise RequestTooLarge(f"a body over {bytes_max} bytes; at most that is accepted")
        chunks.append(chunk)
    return b"".join(chunks)


def require_content_type(request: web.Request, wanted: str) -> None:
    # aiohttp reports a missing header as application/octet-stream; the contract wants it said.
    if hdrs.CONTENT_TYPE not in request.headers or request.content_type != wanted:
        given = request.headers.get(hdrs.CONTENT_TYPE, "none")
        raise UnsupportedContentType(f"Content-Type {given!r}; this route takes {wanted}")


async def read_json_ids(request: web.Request) -> list[str]:
    """A JSON array of ids (POST /batch_statuses and /receipts), checked like ``id``."""
    require_content_type(request, JSON)
    body = await read_body(request, json_body_bytes_max)
    try:
        ids = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestInvalid(f"not JSON ({exc})", parameter="body") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
        raise RequestInvalid("must be a non-empty JSON array of id strings", parameter="body")
    unique = list(dict.fromkeys(ids))
    if len(unique) > p.ids_per_request_max:
        raise RequestInvalid(
            f"{len(unique)} ids, at most {p.ids_per_request_max}", parameter="body"
        )
    p.check_ids("body", unique)
    return unique
