"""``/healthz`` and ``/readyz``, and who is on the other end of an HTTPS request.

Liveness (``/healthz``) is an answer from the event loop and nothing more: a supervisor
restarts a node whose loop no longer answers. Readiness (``/readyz``) is a list of named
checks, the API's own (``api``: serving, not starting or stopping; ``chain``: a genesis
block) followed by the node's (``NodeServices.readiness``: custody token, publisher or
consensus, peers); 200 when all pass, else 503 with the same body, so a load balancer routes
around a node and an operator reads which check fails. ``tl_node_ready{check}`` mirrors each.
"""

from __future__ import annotations

from aiohttp import web

from trusted_ledger.api.services import NodeServices, ReadinessCheck
from trusted_ledger.api.tls import ClientIdentity, identity_of_certificate
from trusted_ledger.observability.metrics import NODE_READY


def readiness_checks(services: NodeServices, serving: bool) -> list[ReadinessCheck]:
    """The API's checks, then the node's; ``tl_node_ready`` is set from them."""
    head = services.store.head
    checks = [
        ReadinessCheck(
            "api",
            serving,
            "serving" if serving else "not serving (starting, catching up or stopping)",
        ),
        ReadinessCheck(
            "chain",
            head is not None,
            "no genesis block" if head is None else f"head at block {head.number}",
        ),
        *services.readiness(),
    ]
    for check in checks:
        NODE_READY.labels(check.name).set(1 if check.ok else 0)
    return checks


def readyz_response(
    checks: list[ReadinessCheck], link: str, retry_after_seconds: int
) -> web.Response:
    """200 when every check passes, else 503 (with ``Retry-After``); the same body."""
    ready = all(check.ok for check in checks)
    data = {
        "ready": ready,
        "failing": [check.name for check in checks if not check.ok],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
    }
    headers = None if ready else {"Retry-After": str(retry_after_seconds)}
    return web.json_response(
        {"data": data, "link": link}, status=200 if ready else 503, headers=headers
    )


def client_identity(request: web.Request) -> ClientIdentity | None:
    """The verified client certificate of an HTTPS request; None without one (or on HTTP)."""
    transport = request.transport
    ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
    der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
    return None if der is None else identity_of_certificate(der)
