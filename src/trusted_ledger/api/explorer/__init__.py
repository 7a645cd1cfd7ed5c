"""The explorer: a self-contained web page the node serves at ``/explorer/`` (docs/explorer.md).

Static files only (HTML, JavaScript, CSS), shipped as package data and read once: the page
reads the same REST API any client reads, from the same origin, and checks proofs itself in
the browser. No build step, no CDN, no external fonts, so it works on an air-gapped network.

Every answer carries a strict Content-Security-Policy: scripts only from this origin (no
inline script, no ``eval``), requests only to this origin, no frames. The page never writes
data through ``innerHTML``, so a hostile value in a transaction cannot run as script even
before the policy stops it.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

from trusted_ledger.api.openapi import Handler, Route

EXPLORER_PATH = "/explorer/"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Everything from this origin, nothing inline, nothing elsewhere (docs/explorer.md)."""

ASSETS: dict[str, tuple[str, str, str]] = {
    "explorer.js": ("text/javascript", "getExplorerScript", "The explorer's user interface."),
    "verify.js": (
        "text/javascript",
        "getExplorerVerifier",
        "The explorer's in-browser proof verifier (WebCrypto).",
    ),
    "proofs.js": (
        "text/javascript",
        "getExplorerProofs",
        "The explorer's proof and chain format checks.",
    ),
    "audit.js": (
        "text/javascript",
        "getExplorerAudit",
        "The explorer's key-usage trail consistency checks (canonical JSON, §8.5).",
    ),
    "ui.js": ("text/javascript", "getExplorerUi", "The explorer's DOM and API helpers."),
    "explorer.css": ("text/css", "getExplorerStyle", "The explorer's style sheet."),
}
"""Files under /explorer/ besides the page: media type, operation id, summary."""
PAGE = "index.html"


@functools.cache
def asset_bytes(name: str) -> bytes:
    """One packaged file's bytes, read once (they never change while the node runs)."""
    return resources.files(__name__).joinpath(name).read_bytes()


def _handler(name: str, media_type: str) -> Handler:
    async def serve(_request: web.Request) -> web.Response:
        body = asset_bytes(name)
        return web.Response(
            body=body,
            content_type=media_type,
            charset="utf-8",
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                # revalidate each load: a node upgrade must not leave a stale script behind
                "Cache-Control": "no-cache",
            },
        )

    return serve


def explorer_routes() -> list[Route]:
    """The page and its assets, for the API's route table (served even while not ready:
    the page then shows the node's /status and waits)."""
    routes = [
        Route(
            "GET", EXPLORER_PATH, _handler(PAGE, "text/html"), "getExplorer",
            "The explorer web page (docs/explorer.md).",
            content_type="text/html", errors=(), always_served=True,
        ),
    ]  # fmt: skip
    for name, (media_type, operation_id, summary) in ASSETS.items():
        routes.append(
            Route(
                "GET", EXPLORER_PATH + name, _handler(name, media_type), operation_id, summary,
                content_type=media_type, errors=(), always_served=True,
            )
        )  # fmt: skip
    return routes


__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "EXPLORER_PATH", "PAGE", "explorer_routes"]
