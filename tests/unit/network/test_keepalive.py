"""Keepalive: a quiet but healthy link stays up; a silent partition is noticed and dropped.

The partition is real: a ``FaultProxy`` on loopback between the two peers that swallows
every byte without closing anything (no FIN, no RST), which TCP alone would not notice for
many minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.network.test_peer import HOST, Consortium, run
from trusted_ledger.errors import InvalidInput
from trusted_ledger.network import MessageType, connect, serve
from trusted_ledger.observability.metrics import REGISTRY
from trusted_ledger.testing.faultproxy import FaultMode, ProxyLoop

pytestmark = pytest.mark.timeout(60)
FAST = {"keepalive_interval_s": 0.05, "idle_timeout_s": 0.5}


@pytest.fixture
def proxies() -> Iterator[ProxyLoop]:
    with ProxyLoop() as loop:
        yield loop


def _pings_out() -> float:
    return (
        REGISTRY.get_sample_value("tl_network_messages_total", {"direction": "out", "type": "PING"})
        or 0.0
    )


def test_a_quiet_link_outlives_the_idle_timeout_on_pings() -> None:
    c = Consortium()
    pings_before = _pings_out()

    async def scenario() -> None:
        server = await serve(HOST, 0, c.server_settings(**FAST))
        client = await connect(HOST, server.port, c.client_settings(**FAST))
        accepted = await asyncio.wait_for(server.accept(), 5)
        await asyncio.sleep(4 * FAST["idle_timeout_s"])  # nothing sent by the application
        assert client.closed_reason is None and accepted.closed_reason is None
        client.send(MessageType.CONSENSUS, b"still here")
        while (message := await asyncio.wait_for(accepted.receive(), 5)) is not None:
            if message.type is MessageType.CONSENSUS:
                break
        assert message is not None and message.payload == b"still here"
        client.close()
        accepted.close()
        await server.close()

    run(scenario())
    assert _pings_out() > pings_before


def test_a_silent_partition_drops_both_ends_as_idle(proxies: ProxyLoop) -> None:
    c = Consortium()

    async def scenario() -> tuple[Any, Any]:
        server = await serve(HOST, 0, c.server_settings(**FAST))
        proxy = proxies.proxy(f"{HOST}:{server.port}")
        client = await connect(HOST, proxy.port, c.client_settings(**FAST))
        accepted = await asyncio.wait_for(server.accept(), 5)
        client.send(MessageType.CONSENSUS, b"before the cut")
        assert (await asyncio.wait_for(accepted.receive(), 5)).payload == b"before the cut"
        proxy.cut(FaultMode.BLACKHOLE)
        client.send(MessageType.CONSENSUS, b"into the void")
        await asyncio.wait_for(client.wait_closed(), 10)
        await asyncio.wait_for(accepted.wait_closed(), 10)
        await server.close()
        return client.closed_reason, accepted.closed_reason

    assert run(scenario()) == ("idle_timeout", "idle_timeout")


@pytest.mark.parametrize(("interval", "idle"), [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (-1.0, 5.0)])
def test_a_keepalive_that_could_not_keep_a_link_alive_is_refused(
    interval: float, idle: float
) -> None:
    c = Consortium()
    with pytest.raises(InvalidInput, match="keepalive_interval_s"):
        c.client_settings(keepalive_interval_s=interval, idle_timeout_s=idle)
