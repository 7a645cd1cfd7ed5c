"""A local consortium as an operator runs it (issue 6, "Real processes"): ``net init``,
``net up``, ``net status``, ``net down`` - real processes, each member with its own SoftHSM
token, RocksDB chain and ports on loopback, talked to over HTTP.

What the process tests promise is BFT safety and liveness seen from outside: every member
holds the same block at every height (no fork, whatever was killed or stopped), a member
killed with SIGKILL under load comes back and catches up while the others kept committing,
and with f + 1 of 3f + 1 members stopped nothing commits at all until they return.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.node.support import (
    NET_CHAIN_ID,
    NET_NAMES,
    NET_NODES,
    BatchLoad,
    IntkeyWriter,
    RunningNet,
    assert_committed,
    free_base_port,
    init_net,
    run_net,
    submit,
)
from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES, ChainStore, Membership
from trusted_ledger.node import load_config
from trusted_ledger.node.members import load_members
from trusted_ledger.storage import RocksDatabase

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(120)]

NODES = NET_NODES
CHAIN_ID = NET_CHAIN_ID
NAMES = NET_NAMES


# --- net init -----------------------------------------------------------------------------


def test_net_init_makes_members_whose_genesis_every_founder_certified(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    init_net(directory)
    members = load_members(directory / "members.toml")
    assert [m.name for m in members] == list(NAMES)
    membership = Membership(m.public_key for m in members)

    genesis_ids = set()
    binds = set()
    for member in members:
        node_dir = directory / member.name
        config = load_config(node_dir / "node.toml")
        assert config.consensus.mode == "bft"
        assert (
            config.resolve(config.consensus.members_file).resolve()
            == (directory / "members.toml").resolve()
        )
        assert config.network.bind == member.address
        assert config.custody.token == f"tl-{member.name}"
        binds |= {config.api.bind, config.network.bind, config.processors.bind}
        assert (node_dir / "secrets" / "user.pin").stat().st_mode & 0o777 == 0o600
        db = RocksDatabase(config.chain_dir, CHAIN_COLUMN_FAMILIES)
        try:
            store = ChainStore(db, CHAIN_ID)
            head = store.head
            assert head is not None and head.number == 0
            block = store.block_at(0)
            assert block is not None
            certificate = store.certificate(block.id)
            assert certificate is not None
            certificate.verify(membership, block)  # raises unless valid
            assert len(certificate.votes) == NODES  # every founder, not just a quorum
            assert block.header.proposer == members[0].public_key
            genesis_ids.add(block.id)
        finally:
            db.close()
    assert len(genesis_ids) == 1, "every member must commit the same genesis block"
    assert len(binds) == 3 * NODES, "every member needs its own API, peer and processor port"
    assert (directory / "keys" / "admin.priv").stat().st_mode & 0o777 == 0o600
    assert not (directory / ".hsm-init").exists(), "the staging token store is moved out"
    assert _token_keys(directory) == {m.name: [m.fingerprint] for m in members}


_LIST_TOKEN_KEYS = """
import json, sys
from pathlib import Path
from trusted_ledger.node import load_config
from trusted_ledger.node.custody_setup import open_token
pool = open_token(load_config(Path(sys.argv[1])))
print(json.dumps([key.fingerprint for key in pool.list_keys()]))
pool.close()
"""


def _token_keys(directory: Path) -> dict[str, list[str]]:
    """Each member's token's keys, each listed in a child process of its own: SoftHSM reads
    SOFTHSM2_CONF once per process, and every member has its own store."""
    found: dict[str, list[str]] = {}
    for name in NAMES:
        assert len(list((directory / name / "hsm" / "tokens").iterdir())) == 1
        done = subprocess.run(
            [sys.executable, "-c", _LIST_TOKEN_KEYS, str(directory / name / "node.toml")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"},
        )
        assert done.returncode == 0, done.stderr
        found[name] = json.loads(done.stdout)
    return found


def test_net_init_with_a_relative_directory(tmp_path: Path) -> None:
    """``make run`` gives ``--dir var/net``: relative to the working directory, while paths
    inside a node's configuration are relative to that file (this once failed on a fresh
    machine: the staging token store was named relative to the wrong one)."""
    done = subprocess.run(
        [
            sys.executable, "-m", "trusted_ledger.cli", "net", "init", "--dir", "net",
            "--nodes", str(NODES), "--chain-id", CHAIN_ID, "--base-port", str(free_base_port()),
        ],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "net" / ".hsm-init").exists()
    keys = _token_keys(tmp_path / "net")  # each member's own token, through its config
    assert all(len(labels) == 1 for labels in keys.values()), keys


def test_net_init_refuses_a_directory_in_use(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    directory.mkdir()
    (directory / "something").write_text("x")
    done = run_net("init", "--dir", str(directory), "--nodes", "4")
    assert done.returncode == 1
    assert "is not empty" in done.stderr
    assert not (directory / "members.toml").exists()


def test_net_status_and_down_of_a_stopped_net(tmp_path: Path) -> None:
    """Before ``net up`` nothing runs: status says so for every member and down is a no-op
    (and a stale pid file, naming a process that is not this node, is not trusted)."""
    directory = tmp_path / "net"
    init_net(directory)
    (directory / "bank-b" / "node.pid").write_text(f"{os.getpid()}\n")  # not a node
    done = run_net("status", "--dir", str(directory), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert [m["running"] for m in status["members"]] == [False] * NODES
    assert not (directory / "bank-b" / "node.pid").exists()
    done = run_net("down", "--dir", str(directory))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("not running") == NODES


# --- the consortium running ---------------------------------------------------------------


def _stored_height(node_dir: Path) -> int:
    """The head of a stopped member's chain, read from its database (SIGKILL released the
    database lock with the process)."""
    config = load_config(node_dir / "node.toml")
    db = RocksDatabase(config.chain_dir, CHAIN_COLUMN_FAMILIES)
    try:
        head = ChainStore(db, CHAIN_ID).head
        assert head is not None
        return head.number
    finally:
        db.close()


def test_members_commit_the_same_blocks(running_net: RunningNet) -> None:
    net = running_net
    done = run_net("status", "--dir", str(net.directory), "--json")
    status = json.loads(done.stdout)
    assert all(m["running"] for m in status["members"]), done.stdout
    writer = IntkeyWriter("same-")
    submitted = [bid for _ in range(5) for bid in submit(net, "bank-a", writer, 10)]
    # Submitted to bank-a only; committed as every other member sees it too.
    for name in NAMES:
        assert_committed(net, name, submitted)
    top = min(h for h in (net.height(n) for n in NAMES) if h is not None)
    net.assert_same_chain(NAMES, top)
    done = run_net("status", "--dir", str(net.directory), "--json")
    assert json.loads(done.stdout)["agreed"] is True


def test_member_killed_under_load_restarts_and_catches_up(running_net: RunningNet) -> None:
    net = running_net
    with BatchLoad(net, "bank-a") as load_a, BatchLoad(net, "bank-b") as load_b:
        net.wait_height(NAMES, 2)
        net.kill9("bank-d")
        at_kill = net.height("bank-a")
        assert at_kill is not None
        # f = 1 member down: the other three keep committing.
        net.wait_height(("bank-a", "bank-b", "bank-c"), at_kill + 3)
        left_at = _stored_height(net.directory / "bank-d")
        net.up("bank-d")
        target = net.height("bank-a")
        assert target is not None and target > left_at, (left_at, target)
        # What it missed, it fetched with certificates and re-executed.
        net.wait_height(NAMES, target)
    assert load_a.accepted > 0 and load_b.accepted > 0
    top = min(h for h in (net.height(n) for n in NAMES) if h is not None)
    net.assert_same_chain(NAMES, top)


def test_f_plus_one_stopped_halts_without_fork_and_recovers(running_net: RunningNet) -> None:
    net = running_net
    writer = IntkeyWriter("halt-")
    submit(net, "bank-a", writer, 5)
    net.wait_height(NAMES, 1)
    net.down("bank-c", "bank-d")
    # What was decided before the stop may still reach a member that lagged (it was at 1
    # while the others were at 3 once, in CI): let bank-a and bank-b level first. With two
    # of four members down nothing new can be decided, so from here the heights must hold.
    before = net.level(("bank-a", "bank-b"))
    halted = submit(net, "bank-a", writer, 5)
    time.sleep(5)  # several propose and vote timeouts: a quorum of 3 is not there
    after = {name: net.height(name) for name in ("bank-a", "bank-b")}
    assert after == before, f"committed without a quorum: {before} -> {after}"
    net.assert_same_chain(("bank-a", "bank-b"), min(h for h in after.values() if h is not None))
    net.up("bank-c", "bank-d")
    target = max(h for h in after.values() if h is not None) + 1
    net.wait_height(NAMES, target)
    net.assert_same_chain(NAMES, target)
    assert_committed(net, "bank-c", halted)  # accepted while halted, committed after
