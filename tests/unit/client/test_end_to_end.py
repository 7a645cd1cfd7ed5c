"""The client commands against the real REST API over a real in-process chain.

A single node as ``node run`` wires it, minus custody and RocksDB: chain store on a memory
database, pending pool, the publisher over the built-in families with identity enforcement
(genesis lets anyone submit ``asset``), the API server on its own asyncio loop in a thread
and the node's publisher loop in another. The CLI is driven through ``cli.main`` exactly as a
user would, over HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.api import ApiServer, NodeServices
from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    BatchPool,
    BlockPublisher,
    ChainStore,
    PublisherLimits,
    build_genesis,
)
from trusted_ledger.chain.processing_executor import ProcessingBlockExecutor
from trusted_ledger.cli import main
from trusted_ledger.client.asset import AssetClient
from trusted_ledger.client.http import LedgerClient
from trusted_ledger.client.keys import resolve_key
from trusted_ledger.processing.families import IdentitySubmissionPolicy, builtin_registry
from trusted_ledger.processing.families.asset import Holding, holding_address
from trusted_ledger.processing.families.identity import identity_genesis_changes
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.storage import MemoryDatabase
from trusted_ledger.txn import SigningKey, build_batch_list

CHAIN_ID = "client-e2e"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PublisherThread:
    """Publishes whenever a block is due, as the node's publisher loop does (without its
    logging, which would share stdout with the commands under test)."""

    def __init__(self, publisher: BlockPublisher, on_commit: Callable[[], None]) -> None:
        self._publisher = publisher
        self._on_commit = on_commit
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.failures: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                block = self._publisher.publish_if_due(_now_ms())
            except BaseException as exc:
                self.failures.append(exc)
                return
            if block is not None:
                self._on_commit()
            else:
                self._wake.wait(0.01)


@dataclass
class LiveNode:
    url: str
    store: ChainStore
    failures: list[BaseException]


@pytest.fixture
def node() -> Iterator[LiveNode]:
    store = ChainStore(MemoryDatabase(CHAIN_COLUMN_FAMILIES), CHAIN_ID)
    signer = SoftwareSigner()
    admin = SigningKey.generate()
    update = genesis_update(store.state, identity_genesis_changes([admin.public_key_hex]))
    genesis, certificate = build_genesis(signer, CHAIN_ID, update, _now_ms())
    store.commit(genesis, certificate, update, {})
    pool = BatchPool()
    executor = ProcessingBlockExecutor(
        builtin_registry(), store.state, policy_factory=IdentitySubmissionPolicy
    )
    publisher = BlockPublisher(store, pool, executor, signer, PublisherLimits(block_interval_ms=20))
    publishers: list[PublisherThread] = []

    def wake() -> None:  # the publisher starts after the API: it must know whom to tell
        publishers[0].wake()

    api = ApiServer(
        NodeServices(
            store=store,
            pool=pool,
            node_public_key=signer.public_key,
            scheduler_name="serial",
            wake_publisher=wake,
        )
    )
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="api-loop", daemon=True)
    loop_thread.start()
    port = asyncio.run_coroutine_threadsafe(api.start("127.0.0.1", 0), loop).result(10)
    publishers.append(PublisherThread(publisher, api.notify_committed))
    failures = publishers[0].failures
    try:
        yield LiveNode(f"http://127.0.0.1:{port}", store, failures)
    finally:
        publishers[0].stop()
        asyncio.run_coroutine_threadsafe(api.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(10)
        loop.close()
    assert not failures, failures


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _balance(capsys: pytest.CaptureFixture[str], url: str, who: str) -> int:
    code, out, _ = _run(capsys, "asset", "balance", "USD", "--account", who, "--url", url, "--json")
    assert code == 0
    return int(json.loads(out)["balance"])


def test_create_issue_transfer_pay_and_inspect(
    node: LiveNode, key_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = node.url
    for name in ("issuer", "alice", "bob", "carol"):
        assert _run(capsys, "keygen", name)[0] == 0
    people = {name: resolve_key(name, key_dir).public_key_hex for name in ("alice", "bob")}

    code, out, _ = _run(
        capsys,
        "asset",
        "create",
        "USD",
        "--kind",
        "currency",
        "--decimals",
        "2",
        "--key",
        "issuer",
        "--url",
        url,
    )
    assert code == 0 and "COMMITTED in block" in out, out
    code, out, _ = _run(
        capsys,
        "asset",
        "issue",
        "USD",
        "--to",
        "alice",
        "--amount",
        "1000",
        "--key",
        "issuer",
        "--url",
        url,
    )
    assert code == 0 and "issue 1000.00 USD" in out, out
    code, out, _ = _run(
        capsys,
        "asset",
        "transfer",
        "USD",
        "--to",
        people["bob"],
        "--amount",
        "12.50",
        "--key",
        "alice",
        "--url",
        url,
        "--json",
    )
    assert code == 0, out
    transfer = json.loads(out)
    assert transfer["status"] == "COMMITTED" and transfer["block_num"] >= 3
    assert _balance(capsys, url, "bob") == 1250
    assert _balance(capsys, url, "alice") == 100_000 - 1250

    # A transfer beyond the balance is judged INVALID by the node: exit 1 with its reason.
    code, out, _ = _run(
        capsys,
        "asset",
        "transfer",
        "USD",
        "--to",
        "bob",
        "--amount",
        "5000",
        "--key",
        "alice",
        "--url",
        url,
    )
    assert code == 1 and "INVALID:" in out, out

    # More precision than the asset has is refused before anything is built.
    code, _, err = _run(
        capsys,
        "asset",
        "transfer",
        "USD",
        "--to",
        "bob",
        "--amount",
        "1.005",
        "--key",
        "alice",
        "--url",
        url,
    )
    assert code == 1 and "allows 2 decimal places" in err

    payments = tmp_path / "payroll.csv"
    rows = ["to,amount"] + [f"{'bob' if n % 2 else 'carol'},{n}.25" for n in range(1, 21)]
    payments.write_text("\n".join(rows) + "\n")
    code, out, err = _run(
        capsys,
        "asset",
        "pay",
        "USD",
        "--file",
        str(payments),
        "--key",
        "alice",
        "--url",
        url,
    )
    assert code == 0, (out, err)
    assert "20 transfers: 20 committed, 0 invalid" in out
    assert "committed: 20/20 100%" in err  # plain progress lines: stderr is not a terminal
    paid_bob = sum(n * 100 + 25 for n in range(1, 21) if n % 2)
    paid_carol = sum(n * 100 + 25 for n in range(1, 21) if not n % 2)
    balances = {who: _balance(capsys, url, who) for who in ("issuer", "alice", "bob", "carol")}
    assert balances["bob"] == 1250 + paid_bob
    assert balances["carol"] == paid_carol

    code, out, _ = _run(capsys, "asset", "info", "USD", "--url", url, "--json")
    info = json.loads(out)
    assert info["supply"] == 100_000 == sum(balances.values())  # supply conserved
    assert info["issuer"] == resolve_key("issuer", key_dir).public_key_hex

    # A payment file with a bad line sends nothing at all.
    bad = tmp_path / "bad.csv"
    bad.write_text("bob,1\ncarol,abc\n")
    code, _, err = _run(
        capsys, "asset", "pay", "USD", "--file", str(bad), "--key", "alice", "--url", url
    )
    assert code == 1 and "line 2" in err and "nothing was sent" in err
    assert _balance(capsys, url, "bob") == balances["bob"]

    _inspect_chain(capsys, url, transfer["id"], transfer["block_num"])


def _inspect_chain(
    capsys: pytest.CaptureFixture[str], url: str, batch_id: str, block_num: int
) -> None:
    code, out, _ = _run(capsys, "batch", "status", batch_id, "--url", url, "--json")
    assert code == 0
    (report,) = json.loads(out)
    assert report["status"] == "COMMITTED" and report["block_num"] == block_num

    code, out, _ = _run(capsys, "block", "show", str(block_num), "--url", url, "--json")
    assert code == 0
    block = json.loads(out)
    assert block["header"]["block_num"] == block_num
    assert batch_id in [b["header_signature"] for b in block["batches"]]
    code, out, _ = _run(capsys, "block", "show", "--url", url)
    assert code == 0 and out.startswith("block ")
    code, out, _ = _run(capsys, "block", "list", "--limit", "3", "--url", url, "--json")
    listed = json.loads(out)
    assert len(listed) == 3
    nums = [b["header"]["block_num"] for b in listed]
    assert nums == sorted(nums, reverse=True)

    code, out, _ = _run(capsys, "status", "--url", url, "--json")
    assert code == 0 and json.loads(out)["head"]["block_num"] == nums[0]
    code, out, _ = _run(capsys, "state", "list", "92a8fd", "--url", url, "--json")
    assert (
        code == 0 and len(json.loads(out)) == 4
    )  # the class and three holdings (the issuer's is empty)


def test_freeze_redeem_and_submit_file(
    node: LiveNode, key_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = node.url
    for name in ("issuer", "alice"):
        assert _run(capsys, "keygen", name)[0] == 0
    base = ("--key", "issuer", "--url", url)
    assert (
        _run(capsys, "asset", "create", "PTS", "--kind", "loyalty", "--decimals", "0", *base)[0]
        == 0
    )
    assert _run(capsys, "asset", "issue", "PTS", "--to", "issuer", "--amount", "50", *base)[0] == 0
    assert _run(capsys, "asset", "issue", "PTS", "--to", "alice", "--amount", "7", *base)[0] == 0
    assert _run(capsys, "asset", "freeze", "PTS", "--account", "alice", *base)[0] == 0
    code, out, _ = _run(capsys, "asset", "balance", "PTS", "--key", "alice", "--url", url)
    assert code == 0 and "7 PTS (FROZEN)" in out
    code, out, _ = _run(
        capsys,
        "asset",
        "transfer",
        "PTS",
        "--to",
        "issuer",
        "--amount",
        "1",
        "--key",
        "alice",
        "--url",
        url,
    )
    assert code == 1 and "INVALID" in out
    assert _run(capsys, "asset", "unfreeze", "PTS", "--account", "alice", *base)[0] == 0
    assert _run(capsys, "asset", "redeem", "PTS", "--amount", "20", *base)[0] == 0
    code, out, _ = _run(capsys, "asset", "info", "PTS", "--url", url, "--json")
    assert json.loads(out)["supply"] == 37

    # A serialized BatchList made elsewhere, sent with `submit`.
    alice = resolve_key("alice", key_dir)
    issuer = resolve_key("issuer", key_dir)
    with LedgerClient(url) as client:
        assets = AssetClient(client, alice)
        batch = assets.batch(assets.transfer_operation("PTS", issuer.public_key_hex, 2))
        path = tmp_path / "one.batches"
        path.write_bytes(build_batch_list([batch]).encode())
        code, out, _ = _run(capsys, "submit", str(path), "--url", url)
        assert code == 0 and f"{batch.id}: COMMITTED in block" in out
        assert assets.balance("PTS") == (5, False)
        value = client.state(holding_address("PTS", issuer.public_key_hex))
        assert value is not None and Holding.decode(value) == Holding(32, False)
        # Resending a committed batch is a replay: the node refuses it with 400.
        code, _, err = _run(capsys, "submit", str(path), "--url", url)
        assert code == 1 and "HTTP 400" in err
