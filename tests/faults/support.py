"""What the hardware-fault tests share: a steady HTTP load that records every answer, the
node's height over time, its metrics, and the final whole-node checks."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.checks import ChainAudit, TrailSummary, check_trail
from tests.node.support import IntkeyWriter, NodeProcess, post_batches, request, statuses
from trusted_ledger.custody import PublicKey

BATCHES_PER_POST = 5
POST_PAUSE_S = 0.05


def node_key(url: str) -> PublicKey:
    status, body = request(f"{url}/status")
    assert status == 200, body
    return PublicKey.from_spki(bytes.fromhex(body["data"]["node"]["public_key"]))


def height(url: str) -> int:
    status, body = request(f"{url}/status", timeout=10)
    assert status == 200, body
    return int(body["data"]["head"]["block_num"])


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


@dataclass
class SteadyLoad:
    """A client posting ``BATCHES_PER_POST`` intkey batches every ``POST_PAUSE_S``; every
    answer is counted by status, the ids of accepted (202) batches kept, and the first
    message of every other status kept to show what a client is told."""

    url: str
    writer: IntkeyWriter = field(default_factory=lambda: IntkeyWriter("f"))
    acked: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    messages: dict[int, str] = field(default_factory=dict)
    refused_ids: list[str] = field(default_factory=list)
    events: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, status)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = [self.writer.batch()[0] for _ in range(BATCHES_PER_POST)]
            ids = [b.header_signature for b in batches]
            try:
                status, body = post_batches(self.url, batches)
            except (urllib.error.URLError, OSError):
                status, body = 0, None
            with self._lock:
                self.answers[status] += 1
                self.events.append((time.monotonic(), status))
                if status == 202:
                    self.acked.extend(ids)
                else:
                    self.refused_ids.extend(ids)
                    if status not in self.messages and isinstance(body, dict):
                        error = body.get("error")
                        message = error.get("message") if isinstance(error, dict) else None
                        self.messages[status] = str(message or body)
            self._stop.wait(POST_PAUSE_S)

    def count(self, status: int) -> int:
        with self._lock:
            return self.answers[status]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def wait_for(predicate: object, timeout_s: float, what: str, node: NodeProcess) -> float:
    """Poll ``predicate`` until true; the seconds it took."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, f"{what}: {node.log_tail()}"
        time.sleep(0.05)
    return time.monotonic() - started


def wait_stalled(url: str, quiet_s: float, timeout_s: float) -> tuple[int, float]:
    """Wait until the height has not moved for ``quiet_s``; (that height, seconds waited)."""
    started = time.monotonic()
    last, since = height(url), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() - started < timeout_s, "the node kept committing"
        time.sleep(0.1)
        now = height(url)
        if now != last:
            last, since = now, time.monotonic()
    return last, time.monotonic() - started


def check_everything_committed(url: str, acked: list[str]) -> None:
    """Every acknowledged batch commits (none lost, none invalid)."""
    deadline = time.monotonic() + 60
    while True:
        found = statuses(url, acked, wait_s=2)
        kinds = Counter(entry["status"] for entry in found.values())
        if set(kinds) == {"COMMITTED"} or time.monotonic() > deadline:
            break
    assert set(kinds) == {"COMMITTED"}, kinds


def check_node_whole(node_dir: Path, key: PublicKey) -> tuple[int, TrailSummary]:
    """After the node stopped: the chain replays, the trail verifies and no position was
    signed twice; (height, trail summary)."""
    audit = ChainAudit(node_dir, key)
    top = audit.check()
    return top, check_trail(node_dir, key, audit.checked_ids)


def log_events(node: NodeProcess) -> str:
    return node.log_path.read_text(errors="replace")
