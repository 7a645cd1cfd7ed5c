"""Listening ports for processes the tests start, stop and start again.

They are drawn from outside the kernel's ephemeral range. A port inside it can be taken,
while its server is down, as the local end of an outgoing connection (the tests' HTTP
load and the peers' dials make thousands), and the server then cannot bind on restart.
"""

from __future__ import annotations

from pathlib import Path

LOWEST = 10_000


def ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def listening_ports() -> list[int]:
    """The ports from which tests draw, in order: LOWEST up to the ephemeral range, and
    above it if the range ends low enough."""
    low, high = ephemeral_port_range()
    return [port for port in range(LOWEST, 65_000) if not low <= port <= high]
