"""A real node (``node init`` + ``node run``, embedded SoftHSM token) and a real headless
Chromium for the explorer tests; one of each per module, since both take seconds to start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.explorer.cdp import CHROMIUM, Chromium
from tests.node.support import NodeProcess, init_node

NODE_CHECKPOINT_EVERY_RECORDS = 6


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    directory = tmp_path_factory.mktemp("explorer-node")
    init_node(directory / "node")
    # Checkpoints every few signatures rather than every 1000, so that the node's trail has
    # several checkpoints (and /proofs/audit records between them) within a test's blocks.
    config = directory / "node" / "node.toml"
    text = config.read_text()
    assert "\naudit_checkpoint_every_records = 1000\n" in text
    config.write_text(
        text.replace(
            "\naudit_checkpoint_every_records = 1000\n",
            f"\naudit_checkpoint_every_records = {NODE_CHECKPOINT_EVERY_RECORDS}\n",
        )
    )
    process = NodeProcess(directory / "node", directory / "node.log")
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.terminate()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    if CHROMIUM is None:
        pytest.skip("the chromium binary is absent (scripts/setup.sh installs Debian's chromium)")
    directory = tmp_path_factory.mktemp("chromium")
    profile = directory / "profile"
    profile.mkdir()
    chromium = Chromium(profile, directory / "chromium.log")
    try:
        yield chromium
    finally:
        chromium.close()
