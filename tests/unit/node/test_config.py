"""The node configuration: every key known, typed and range-checked, errors that name the
key; what ``render_config`` writes, ``load_config`` reads back identically."""

from __future__ import annotations

from pathlib import Path

import pytest

from trusted_ledger.errors import ConfigurationError
from trusted_ledger.node import NodeConfig, load_config, render_config
from trusted_ledger.node.config import CustodySection, PublisherSection

MINIMAL = '[custody]\npin_env = "TL_PIN"\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_minimal_file_takes_defaults_and_resolves_paths(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL + '[node]\ndata_dir = "data"\n'))
    assert config.custody.pin_env == "TL_PIN"
    assert config.api.host == "127.0.0.1"
    assert config.api.port == 8008
    assert config.data_dir == tmp_path / "data"
    assert config.chain_dir == tmp_path / "data" / "chain"
    assert config.guard_path == tmp_path / "data" / "guard" / "node-signing.guard"
    assert config.resolve("/abs/file") == Path("/abs/file")


def test_render_then_load_is_identity(tmp_path: Path) -> None:
    config = NodeConfig(
        path=tmp_path / "node.toml",
        custody=CustodySection(pin_file="secrets/user.pin", token='we"ird\\label'),
        publisher=PublisherSection(block_interval_ms=50),
    )
    path = _write(tmp_path, render_config(config))
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nodes]\n", r"unknown section \[nodes\]"),
        (MINIMAL + "[publisher]\nblock_interval=5\n", "unknown key publisher.block_interval"),
        (MINIMAL + '[publisher]\nblock_interval_ms="5"\n', "block_interval_ms must be an integer"),
        (MINIMAL + "[publisher]\nblock_interval_ms=true\n", "block_interval_ms must be an integer"),
        (MINIMAL + "[publisher]\nblock_interval_ms=-1\n", "must not be negative"),
        (MINIMAL + "[pool]\nbatches_max=0\n", "pool.batches_max must be at least 1"),
        (MINIMAL + '[api]\nbind="8008"\n', "api.bind must be HOST:PORT"),
        (MINIMAL + '[api]\nbind="localhost:99999"\n', "api.bind must be HOST:PORT"),
        (MINIMAL + '[processing]\nscheduler="fast"\n', "processing.scheduler must be one of"),
        (MINIMAL + "[processing]\nworkers=65\n", r"processing.workers must be 1\.\.64"),
        (MINIMAL + '[logging]\nlevel="loud"\n', "logging.level must be one of"),
        (MINIMAL + '[consensus]\nmode="raft"\n', "consensus.mode must be one of"),
        (MINIMAL + '[consensus]\nmode="bft"\n', "consensus.members_file must name"),
        (MINIMAL + '[network]\nbind="7000"\n', "network.bind must be HOST:PORT"),
        (MINIMAL + '[processors]\nbind="udp://x:1"\n', "processors.bind must be tcp://"),
        (MINIMAL + "[processors]\nping_interval_ms=0\n", "processors.ping_interval_ms must be"),
        (MINIMAL + "[processors]\nping_misses_max=1001\n", r"ping_misses_max must be 1\.\.1000"),
        ("[custody]\n", "exactly one PIN source"),
        ('[custody]\npin_env="A"\npin_file="b"\n', "exactly one PIN source"),
        (MINIMAL + "node = 3\n", "custody.node"),
        ("node = 3\n" + MINIMAL, r"\[node\] must be a table"),
        ("[node\n", "not valid TOML"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_config(_write(tmp_path, text))


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="node init"):
        load_config(tmp_path / "absent.toml")


def test_control_socket_and_backup_dir_default_into_data_dir(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[custody]\npin_env = "PIN"\n[node]\ndata_dir = "d"\n'))
    assert config.control_socket_path == tmp_path / "d" / "control.sock"
    assert config.backup_dir_path == tmp_path / "d" / "backups"
    config = load_config(
        _write(
            tmp_path,
            '[custody]\npin_env = "PIN"\n[node]\ncontrol_socket = "/run/tl/main.sock"\n'
            'backup_dir = "/var/backups/tl"\n',
        )
    )
    assert config.control_socket_path == Path("/run/tl/main.sock")
    assert config.backup_dir_path == Path("/var/backups/tl")


def test_a_control_socket_path_too_long_for_unix_is_named(tmp_path: Path) -> None:
    deep = "x" * 120
    path = _write(tmp_path, f'[custody]\npin_env = "PIN"\n[node]\ndata_dir = "{deep}"\n')
    with pytest.raises(ConfigurationError, match=r"node\.control_socket") as caught:
        load_config(path)
    assert "shorter path" in str(caught.value)
    # The way out the message gives works.
    fixed = path.read_text() + 'control_socket = "/run/tl.sock"\n'
    path.write_text(fixed)
    assert load_config(path).control_socket_path == Path("/run/tl.sock")
