"""What a running node tells its operators: readiness, log context, exposure, API security.

``node/runtime.py`` wires these in with one call each, so that the runtime stays about
running the chain:

- ``api_security``: the REST API's TLS context and client access lists from ``[api]``;
- ``warn_exposed_binds``: a warning record for every listener bound beyond loopback (the
  defaults bind to 127.0.0.1 only; anything wider is the operator's explicit choice, and an
  API served beyond loopback without TLS gets a louder one);
- ``node_readiness``: the node's checks behind ``/readyz`` (custody token, publisher or
  consensus, peers for a quorum);
- ``bind_log_context``: every log record names the node and the height and round it is at.

docs/operations.md is the operator's side of all four.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trusted_ledger.api.services import ReadinessCheck
from trusted_ledger.api.tls import (
    ApiTls,
    ClientAccess,
    is_loopback_host,
    parse_client_entries,
    server_ssl_context,
)
from trusted_ledger.node.config import NodeConfig
from trusted_ledger.observability.logging import bind_node_context, get_logger

if TYPE_CHECKING:
    from trusted_ledger.chain import ChainStore
    from trusted_ledger.custody import PublicKey, TokenPool
    from trusted_ledger.node.consortium import Consortium
    from trusted_ledger.node.runtime import PublisherLoop

log = get_logger("node")


@dataclass(frozen=True)
class ApiSecurity:
    """How the REST API is served: HTTPS or HTTP, and who may write and read."""

    ssl_context: ssl.SSLContext | None = None
    access: ClientAccess = field(default_factory=ClientAccess)

    @property
    def scheme(self) -> str:
        return "http" if self.ssl_context is None else "https"


def api_security(config: NodeConfig) -> ApiSecurity:
    """The ``[api]`` TLS set-up (already validated by ``load_config``), loaded: a file that
    cannot be used is a ``ConfigurationError`` naming its key."""
    api = config.api
    if not api.tls_cert_file:
        return ApiSecurity()
    tls = ApiTls(
        cert_file=config.resolve(api.tls_cert_file),
        key_file=config.resolve(api.tls_key_file),
        client_ca_file=config.resolve(api.client_ca_file) if api.client_ca_file else None,
    )
    access = ClientAccess(
        write_clients=parse_client_entries(api.write_clients),
        read_clients=parse_client_entries(api.read_clients),
    )
    return ApiSecurity(server_ssl_context(tls), access)


def exposed_binds(config: NodeConfig) -> list[tuple[str, str]]:
    """``(key, address)`` of every listener this configuration binds beyond loopback."""
    found = []
    if not is_loopback_host(config.api.host):
        found.append(("api.bind", config.api.bind))
    processors = config.processors.bind
    if processors:
        host = processors.removeprefix("tcp://").rpartition(":")[0]
        if not is_loopback_host(host):
            found.append(("processors.bind", processors))
    if config.consensus.mode == "bft" and not is_loopback_host(config.network.host):
        found.append(("network.bind", config.network.bind))
    return found


def warn_exposed_binds(config: NodeConfig) -> None:
    """One warning per listener beyond loopback; an API without TLS among them is named."""
    for key, address in exposed_binds(config):
        plain_api = key == "api.bind" and not config.api.tls_cert_file
        log.warning(
            "config.bind_beyond_loopback",
            key=key,
            address=address,
            advice=(
                "the REST API is served over plain HTTP beyond this machine: set "
                "api.tls_cert_file/tls_key_file (and api.write_clients) or bind 127.0.0.1"
                if plain_api
                else "reachable from other hosts: firewall it to the hosts that need it"
            ),
        )


def quorum_of(members: int) -> int:
    """floor(2n/3) + 1 members: 2f + 1 for n = 3f + 1 (as ``chain.Membership``)."""
    return 2 * members // 3 + 1


def node_readiness(
    token: TokenPool | None,
    publisher: PublisherLoop | None,
    consortium: Consortium | None,
) -> list[ReadinessCheck]:
    """The node's checks for ``/readyz``: ``custody``; single mode ``publisher``; bft mode
    ``consensus`` (running, not catching up) and ``peers`` (enough for a quorum)."""
    checks = []
    if token is not None:
        available = token.is_available
        checks.append(
            ReadinessCheck(
                "custody",
                available,
                f"token {token.token_label} reachable"
                if available
                else f"token {token.token_label} unavailable; custody retries with backoff",
            )
        )
    if consortium is None:
        running = publisher is not None and publisher.running
        checks.append(ReadinessCheck("publisher", running, "running" if running else "not running"))
        return checks
    height, consensus_round = consortium.height, consortium.round
    deciding = height is not None
    checks.append(
        ReadinessCheck(
            "consensus",
            deciding,
            f"deciding height {height}, round {consensus_round}"
            if deciding
            else "catching up (or stopping): not deciding blocks",
        )
    )
    members = len(consortium.members)
    needed = quorum_of(members) - 1  # this node is one of the quorum
    connected = consortium.peers_connected
    checks.append(
        ReadinessCheck(
            "peers",
            connected >= needed,
            f"{connected} of {members - 1} peers connected; a quorum needs {needed}",
        )
    )
    return checks


def bind_log_context(
    store: ChainStore,
    public_key: PublicKey,
    consortium: Consortium | None,
) -> str:
    """Name the node in every log record (its member name in bft mode, else the start of
    its key's fingerprint) with the height and round it is at; return the name."""
    fingerprint = public_key.fingerprint
    name = f"node-{fingerprint[:12]}"
    if consortium is not None:
        name = next((m.name for m in consortium.members if m.fingerprint == fingerprint), name)

        def position() -> tuple[int | None, int | None]:
            return consortium.height, consortium.round

        bind_node_context(name, position)
        return name

    def head_position() -> tuple[int | None, int | None]:
        head = store.head
        return (None if head is None else head.number + 1), None

    bind_node_context(name, head_position)
    return name
