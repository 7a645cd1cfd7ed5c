"""``/healthz`` and ``/readyz`` on a real API server: which checks fail, and how it says so."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tests.unit.api.schema_check import schema_errors
from tests.unit.api.support import ApiChain, api_client, make_chain, run
from trusted_ledger.api import ApiServer
from trusted_ledger.api.services import ReadinessCheck


def _with_readiness(chain: ApiChain, checks: list[ReadinessCheck]) -> ApiChain:
    """``chain`` served by a server whose node reports ``checks`` (changeable in place)."""

    def readiness() -> Sequence[ReadinessCheck]:
        return list(checks)

    services = dataclasses.replace(chain.server._handlers.services, readiness=readiness)
    return dataclasses.replace(chain, server=ApiServer(services))


def test_ready_node_answers_200_with_every_check() -> None:
    checks = [ReadinessCheck("custody", True, "token tl-node reachable")]
    chain = _with_readiness(make_chain(), checks)

    async def scenario() -> None:
        async with api_client(chain) as client:
            health = await client.get("/healthz")
            assert health.status == 200
            assert (await health.json())["data"] == {"alive": True}
            ready = await client.get("/readyz")
            assert ready.status == 200
            data = (await ready.json())["data"]
            assert data["ready"] is True
            assert data["failing"] == []
            assert [c["name"] for c in data["checks"]] == ["api", "chain", "custody"]
            assert data["checks"][1]["detail"] == "head at block 0"

    run(scenario())


def test_failing_checks_are_named_in_a_503() -> None:
    checks = [
        ReadinessCheck("custody", False, "token tl-node unavailable"),
        ReadinessCheck("publisher", True, "running"),
    ]
    chain = _with_readiness(make_chain(), checks)

    async def scenario() -> None:
        async with api_client(chain) as client:
            document = await (await client.get("/openapi.json")).json()
            schema = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
            answer = await client.get("/readyz")
            assert answer.status == 503
            assert answer.headers["Retry-After"] == "1"
            body = await answer.json()
            assert schema_errors(body, schema["application/json"]["schema"], document) == []
            assert body["data"]["ready"] is False
            assert body["data"]["failing"] == ["custody"]
            metrics = await (await client.get("/metrics")).text()
            assert 'tl_node_ready{check="custody"} 0.0' in metrics
            assert 'tl_node_ready{check="publisher"} 1.0' in metrics
            # The token comes back: ready again, without a restart.
            checks[0] = ReadinessCheck("custody", True, "token tl-node reachable")
            assert (await client.get("/readyz")).status == 200
            # Not ready (catching up, stopping): the api check fails; liveness holds.
            chain.server.set_ready(False)
            body = await (await client.get("/readyz")).json()
            assert body["data"]["failing"] == ["api"]
            assert (await client.get("/healthz")).status == 200

    run(scenario())


def test_no_genesis_fails_the_chain_check() -> None:
    chain = make_chain(genesis=False)

    async def scenario() -> None:
        async with api_client(chain) as client:
            answer = await client.get("/readyz")
            assert answer.status == 503
            data = (await answer.json())["data"]
            assert data["failing"] == ["chain"]
            assert data["checks"][1] == {"name": "chain", "ok": False, "detail": "no genesis block"}

    run(scenario())
