"""Restoring a consortium member from an on-line backup (docs/operations.md §8.3, bft mode).

bank-d of a real 4-member ``net`` is backed up under load, keeps voting for more heights,
is stopped and loses its chain directory; ``node restore`` puts the older backup back (bft:
allowed, with a note that the heights after it come from the peers). Restarted, bank-d
catches up to the others with the same blocks, and then takes part again: with bank-a
stopped, the consortium can only go on with bank-d's votes (3 of 4 needed), and it does.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.node.support import (
    NET_NAMES,
    BatchLoad,
    RunningNet,
    cli,
)

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(180)]


def test_a_member_restored_from_an_older_backup_catches_up_and_votes(
    running_net: RunningNet,
) -> None:
    net = running_net
    member = net.directory / "bank-d"
    with BatchLoad(net, "bank-a") as load:
        net.wait_height(NET_NAMES, 2)
        done = cli("node", "backup", "--dir", str(member), "--json")
        assert done.returncode == 0, done.stderr
        backup = json.loads(done.stdout)
        net.wait_height(NET_NAMES, backup["height"] + 4)  # bank-d signs beyond the backup
        net.down("bank-d")
        shutil.rmtree(member / "chain")
        done = cli("node", "restore", "--dir", str(member), "--from", backup["path"])
        assert done.returncode == 0, done.stderr
        assert "caught up from the peers at start" in done.stdout, done.stdout
        net.up("bank-d")
        target = net.height("bank-a")
        assert target is not None and target > backup["height"] + 3
        net.wait_height(NET_NAMES, target)
    assert load.accepted > 0
    top = net.common_height()
    net.assert_same_chain(NET_NAMES, top)

    # bank-d votes again: without bank-a, 3 of the 4 votes needed include bank-d's.
    net.down("bank-a")
    others = ("bank-b", "bank-c", "bank-d")
    with BatchLoad(net, "bank-b"):
        net.wait_height(others, top + 3)
    net.assert_same_chain(others, top + 3)
