"""The REST API server: an aiohttp application on the node's event loop.

The publisher commits blocks on its own thread; ``notify_committed`` is its way in, and it
only schedules a wake-up on the loop (``call_soon_threadsafe``), so the publisher never waits
on the API. ``stop`` ends long-polls first (they answer with the statuses as they stand),
then closes the listener and waits for requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from trusted_ledger.api.app import build_app
from trusted_ledger.api.http_common import ApiState
from trusted_ledger.api.openapi import Route
from trusted_ledger.api.services import NodeServices
from trusted_ledger.api.tls import ClientAccess
from trusted_ledger.errors import InternalError

api_workers_max = 4
"""Threads decoding and verifying submissions and serving listings. Signature checks hold
the GIL only partly; more threads would mostly queue behind the publisher's work."""
request_line_bytes_max = 160 * 1024
"""Longest request line: a GET of 1,000 ids (129 KiB of query), and the 202 link of a list
of 256 batches (33 KiB), must reach the handler; aiohttp's default stops at 8 KiB."""
shutdown_timeout_seconds = 5.0
"""Longest ``stop`` waits for requests in flight once long-polls have been ended."""


class ApiServer:
    """The node's REST API (docs/api.md) over ``services``.

    Ready from the start (embedders that never call ``set_ready`` get a working API); the
    node calls ``set_ready(False)`` while it cannot serve (catching up, shutting down), and
    ``stop`` implies it: every route but the probes (/healthz, /readyz), /status, /metrics and
    /openapi.json then answers 503.
    Routes that need the chain answer 503 before genesis whatever the flag says. One
    server serves once: ``stop`` also ends its worker threads.
    """

    def __init__(self, services: NodeServices, access: ClientAccess | None = None) -> None:
        self._services = services
        self._state = ApiState()
        self._executor = ThreadPoolExecutor(api_workers_max, thread_name_prefix="api")
        self._app, self._handlers = build_app(
            services, self._state, self._executor, access or ClientAccess()
        )
        self._app.on_startup.append(self._capture_loop)
        self._app.on_shutdown.append(self._end_long_polls)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def app(self) -> web.Application:
        return self._app

    @property
    def routes(self) -> list[Route]:
        """The route table that serves and documents this API."""
        return self._handlers.routes

    async def _capture_loop(self, _app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()

    async def _end_long_polls(self, _app: web.Application) -> None:
        self._state.stopping = True
        self._state.commits.wake()

    async def start(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Listen on ``host:port`` (0: an ephemeral port); return the bound port. With
        ``ssl_context`` (``api.tls.server_ssl_context``) only HTTPS is served."""
        if self._runner is not None:
            raise InternalError("the API server is already started")
        runner = web.AppRunner(
            self._app,
            shutdown_timeout=shutdown_timeout_seconds,
            access_log=None,
            max_line_size=request_line_bytes_max,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        if not addresses:
            raise InternalError("the API listener has no socket")
        bound: int = addresses[0][1]
        return bound

    async def stop(self) -> None:
        """End long-polls (they answer at once), stop listening, finish requests in flight."""
        self._state.stopping = True
        self._state.commits.wake()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    def notify_committed(self) -> None:
        """A block was committed (any thread): wake /batch_statuses?wait requests."""
        loop = self._loop
        if loop is not None:
            # A loop closed since (node shutting down) has no waiters left to wake; the
            # publisher thread must not fail for it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._state.commits.wake)

    def set_ready(self, ready: bool) -> None:
        """While not ready, every route but the always-served ones is a 503 (and /readyz's
        ``api`` check fails)."""
        self._state.ready = ready
