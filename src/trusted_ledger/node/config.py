"""The node's configuration: one TOML file, validated in full before anything starts.

Every key is known: a misspelt key is an error that names it, never silently ignored (a typo
in ``block_interval_ms`` must not leave a production node on the default). Relative paths are
relative to the directory of the configuration file, so a node directory can be moved as a
whole. The format is documented in ``docs/node.md``; ``render_config`` writes what
``load_config`` reads.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trusted_ledger.errors import ConfigurationError, InvalidInput

CONFIG_FILE_NAME = "node.toml"
API_BIND_DEFAULT = "127.0.0.1:8008"
SCHEDULERS = ("serial", "parallel")
LOG_FORMATS = ("json", "console")
CONSENSUS_MODES = ("single", "bft")
unix_socket_path_max = 107
"""sun_path holds 108 bytes on Linux, the last one the terminating NUL."""
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class NodeSection:
    chain_id: str = "trusted-ledger-dev"
    data_dir: str = "."
    """Holds ``chain/`` (RocksDB), ``guard/`` and ``audit/``; relative to the config file."""
    control_socket: str = ""
    """The node's control socket (a Unix socket, mode 600: ``node backup`` talks to it).
    Empty: ``data_dir/control.sock``."""
    backup_dir: str = ""
    """Where ``node backup`` writes when not told otherwise; best on another disk than
    data_dir (a checkpoint is hard links on the same file system, a copy elsewhere).
    Empty: ``data_dir/backups``."""


@dataclass(frozen=True)
class CustodySection:
    profile: str = "softhsm2"
    token: str = "tl-node"  # noqa: S105 - a token label, not a secret
    key_label: str = "node-signing"
    next_key_label: str = ""
    """bft key rotation: a second key on the token (``node new-key``); the node signs with
    whichever of its two keys is in each height's on-chain membership. Empty: none."""
    pin_file: str = ""
    """A mode-600 file holding the user PIN; exactly one of pin_file and pin_env is set."""
    pin_env: str = ""
    module: str = ""
    """PKCS#11 module file; empty: the profile's search list."""
    softhsm_conf: str = ""
    """SoftHSM's configuration (exported as SOFTHSM2_CONF before the module loads)."""
    audit_checkpoint_every_records: int = 1000
    audit_checkpoint_every_s: int = 60
    anchor_every_s: int = 300
    """Seconds between anchors of the audit trail in the ledger (``tl_audit``); 0: off."""


@dataclass(frozen=True)
class ApiSection:
    bind: str = API_BIND_DEFAULT
    tls_cert_file: str = ""
    """PEM certificate (chain) of the operator: the API serves HTTPS only. Empty: HTTP."""
    tls_key_file: str = ""
    """Its PEM private key (mode 600); set with ``tls_cert_file``."""
    client_ca_file: str = ""
    """PEM CA certificate(s) that issue client certificates; needs TLS."""
    write_clients: tuple[str, ...] = ()
    """Clients allowed to ``POST /batches`` (fingerprints ``sha256:HEX`` or RFC 4514
    subjects); empty: any client. Needs ``client_ca_file``."""
    read_clients: tuple[str, ...] = ()
    """If set, only these clients (and the write clients) read the ledger's data."""

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])


@dataclass(frozen=True)
class PoolSection:
    batches_max: int = 50_000
    bytes_max: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class PublisherSection:
    block_batches_max: int = 1000
    block_bytes_max: int = 8 * 1024 * 1024
    block_interval_ms: int = 200


@dataclass(frozen=True)
class ProcessingSection:
    scheduler: str = "serial"
    """Serial by default: with built-in (CPU-bound, GIL-holding) families the parallel
    scheduler is slower inside a busy node (bench/node.py); it pays off for external
    processors, whose round trips it overlaps."""
    workers: int = 2


@dataclass(frozen=True)
class ProcessorsSection:
    bind: str = "tcp://127.0.0.1:4004"
    """Where external transaction processors connect (Sawtooth's TP protocol over ZMQ);
    empty: no external processors. Port 0 picks a free port."""
    request_timeout_ms: int = 30_000
    """A processor that does not answer a transaction in this time is dropped and the
    transaction re-dispatched to another processor of its family."""
    ping_interval_ms: int = 5_000
    """How often each connected processor is sent a PING_REQUEST (anything it sends counts
    as a sign of life)."""
    ping_misses_max: int = 3
    """A processor silent for this many pings in a row is dropped, and what it held is
    re-dispatched: the worst case to notice a hung processor is about the product."""


@dataclass(frozen=True)
class ConsensusSection:
    mode: str = "single"
    """``single``: this node alone proposes and certifies (development, one bank);
    ``bft``: Tendermint among the members listed in ``members_file`` (docs/consensus.md)."""
    members_file: str = ""
    """bft: a TOML file listing every member (name, public key, peer address); the same
    file on every node. Relative to this configuration file."""
    propose_timeout_ms: int = 1000
    vote_timeout_ms: int = 500
    """Prevote and precommit timeouts; each grows by half its base per round."""


@dataclass(frozen=True)
class NetworkSection:
    bind: str = "127.0.0.1:7000"
    """Where peers connect (bft mode); the address other members list for this node."""

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])


@dataclass(frozen=True)
class LoggingSection:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    """The file this was read from; relative paths resolve against its directory."""
    node: NodeSection = field(default_factory=NodeSection)
    custody: CustodySection = field(default_factory=CustodySection)
    api: ApiSection = field(default_factory=ApiSection)
    pool: PoolSection = field(default_factory=PoolSection)
    publisher: PublisherSection = field(default_factory=PublisherSection)
    processing: ProcessingSection = field(default_factory=ProcessingSection)
    processors: ProcessorsSection = field(default_factory=ProcessorsSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    logging: LoggingSection = field(default_factory=LoggingSection)

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.path.parent / candidate

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.node.data_dir)

    @property
    def chain_dir(self) -> Path:
        return self.data_dir / "chain"

    @property
    def guard_path(self) -> Path:
        return self.guard_path_of(self.custody.key_label)

    def guard_path_of(self, key_label: str) -> Path:
        """The signing guard file of the node key labelled ``key_label``."""
        return self.data_dir / "guard" / f"{key_label}.guard"

    @property
    def consensus_state_path(self) -> Path:
        """bft: the consensus machine's durable state (round, step, lock)."""
        return self.data_dir / "consensus" / "state.json"

    @property
    def own_proposal_path(self) -> Path:
        """bft: the last block this member signed as proposer (re-proposed after a crash)."""
        return self.data_dir / "consensus" / "own-proposal.block"

    @property
    def audit_path(self) -> Path:
        return self.data_dir / "audit" / "key-usage.jsonl"

    @property
    def control_socket_path(self) -> Path:
        return self.resolve(self.node.control_socket or str(self.data_dir / "control.sock"))

    @property
    def backup_dir_path(self) -> Path:
        return self.resolve(self.node.backup_dir or str(self.data_dir / "backups"))


_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSection,
    "custody": CustodySection,
    "api": ApiSection,
    "pool": PoolSection,
    "publisher": PublisherSection,
    "processing": ProcessingSection,
    "processors": ProcessorsSection,
    "consensus": ConsensusSection,
    "network": NetworkSection,
    "logging": LoggingSection,
}


def load_config(path: Path) -> NodeConfig:
    """Read and validate ``path``; ``ConfigurationError`` names the first bad key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"configuration file {path} does not exist",
            hint="create a node with `trusted-ledger node init --dir DIR` (writes DIR/node.toml)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read configuration file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc
    return config_from_mapping(raw, path.resolve())


def config_from_mapping(raw: Mapping[str, Any], path: Path) -> NodeConfig:
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown section [{unknown[0]}]",
            hint=f"sections are {', '.join(f'[{name}]' for name in _SECTIONS)}",
        )
    sections: dict[str, Any] = {}
    for name, section_type in _SECTIONS.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ConfigurationError(f"{path}: [{name}] must be a table")
        sections[name] = _section(path, name, section_type, values)
    config = NodeConfig(path=path, **sections)
    _check(config)
    return config


def _section(path: Path, name: str, section_type: type[Any], values: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(section_type)}
    for key, value in values.items():
        if key not in known:
            raise ConfigurationError(
                f"{path}: unknown key {name}.{key}",
                hint=f"[{name}] takes {', '.join(sorted(known))}",
            )
        expected = type(known[key].default)
        if expected is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigurationError(
                    f"{path}: {name}.{key} must be a list of strings, got {value!r}"
                )
            continue
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ConfigurationError(
                f"{path}: {name}.{key} must be {'an integer' if expected is int else 'a string'}, "
                f"got {value!r}"
            )
    return section_type(
        **{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
    )


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system (is_file raises for ENAMETOOLONG)
        return False


def _bad(config: NodeConfig, key: str, problem: str, hint: str | None = None) -> None:
    raise ConfigurationError(f"{config.path}: {key} {problem}", hint=hint)


def _positive(config: NodeConfig, key: str, value: int, high: int | None = None) -> None:
    if value < 1 or (high is not None and value > high):
        bound = f"1..{high}" if high is not None else "at least 1"
        _bad(config, key, f"must be {bound}, got {value}")


def _check_next_key(config: NodeConfig) -> None:
    if config.custody.next_key_label == config.custody.key_label:
        _bad(
            config,
            "custody.next_key_label",
            "must differ from custody.key_label",
            hint="the label of the new key `trusted-ledger node new-key` made, or empty",
        )


def _check_control_socket(config: NodeConfig) -> None:
    if len(os.fsencode(config.control_socket_path)) > unix_socket_path_max:
        _bad(
            config,
            "node.control_socket",
            f"{config.control_socket_path} is longer than a Unix socket path may be "
            f"({unix_socket_path_max} bytes)",
            hint="set node.control_socket to a shorter path, e.g. /run/trusted-ledger/NAME.sock",
        )


def _check(config: NodeConfig) -> None:
    custody = config.custody
    _check_control_socket(config)
    if not custody.token or not custody.key_label or not custody.profile:
        _bad(config, "custody.token/key_label/profile", "must not be empty")
    _check_next_key(config)
    if bool(custody.pin_file) == bool(custody.pin_env):
        _bad(
            config,
            "custody.pin_file/pin_env",
            "must name exactly one PIN source",
            hint="pin_file = a mode-600 file with the user PIN, or pin_env = a variable name",
        )
    _positive(
        config, "custody.audit_checkpoint_every_records", custody.audit_checkpoint_every_records
    )
    _positive(config, "custody.audit_checkpoint_every_s", custody.audit_checkpoint_every_s)
    if custody.anchor_every_s < 0:
        _bad(config, "custody.anchor_every_s", "must be 0 (off) or a number of seconds")
    host, _, port = config.api.bind.rpartition(":")
    # isascii: str.isdigit also accepts digits int() refuses, such as "²".
    if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        _bad(config, "api.bind", f"must be HOST:PORT, got {config.api.bind!r}")
    _check_api_tls(config)
    _positive(config, "pool.batches_max", config.pool.batches_max)
    _positive(config, "pool.bytes_max", config.pool.bytes_max)
    _positive(config, "publisher.block_batches_max", config.publisher.block_batches_max)
    _positive(config, "publisher.block_bytes_max", config.publisher.block_bytes_max)
    if config.publisher.block_interval_ms < 0:
        _bad(config, "publisher.block_interval_ms", "must not be negative")
    if config.processing.scheduler not in SCHEDULERS:
        _bad(config, "processing.scheduler", f"must be one of {SCHEDULERS}")
    _positive(config, "processing.workers", config.processing.workers, 64)
    bind = config.processors.bind
    bind_port = bind.rpartition(":")[2]
    if bind and not (bind.startswith("tcp://") and bind_port.isascii() and bind_port.isdigit()):
        _bad(config, "processors.bind", f"must be tcp://HOST:PORT or empty, got {bind!r}")
    _positive(config, "processors.request_timeout_ms", config.processors.request_timeout_ms)
    _positive(config, "processors.ping_interval_ms", config.processors.ping_interval_ms, 3_600_000)
    _positive(config, "processors.ping_misses_max", config.processors.ping_misses_max, 1_000)
    if config.consensus.mode not in CONSENSUS_MODES:
        _bad(config, "consensus.mode", f"must be one of {CONSENSUS_MODES}")
    if config.consensus.mode == "bft" and not config.consensus.members_file:
        _bad(config, "consensus.members_file", "must name the members file in bft mode")
    _positive(config, "consensus.propose_timeout_ms", config.consensus.propose_timeout_ms)
    _positive(config, "consensus.vote_timeout_ms", config.consensus.vote_timeout_ms)
    peer_host, _, peer_port = config.network.bind.rpartition(":")
    if (
        not peer_host
        or not (peer_port.isascii() and peer_port.isdigit())
        or not 0 <= int(peer_port) <= 65535
    ):
        _bad(config, "network.bind", f"must be HOST:PORT, got {config.network.bind!r}")
    if config.logging.level not in LOG_LEVELS:
        _bad(config, "logging.level", f"must be one of {LOG_LEVELS}")
    if config.logging.format not in LOG_FORMATS:
        _bad(config, "logging.format", f"must be one of {LOG_FORMATS}")


def _check_api_tls(config: NodeConfig) -> None:
    from trusted_ledger.api.tls import parse_client_entry  # noqa: PLC0415 - api loads aiohttp

    api = config.api
    if bool(api.tls_cert_file) != bool(api.tls_key_file):
        _bad(
            config,
            "api.tls_cert_file/tls_key_file",
            "must be set together",
            hint="tls_cert_file = the PEM certificate, tls_key_file = its PEM private key",
        )
    for key in ("tls_cert_file", "tls_key_file", "client_ca_file"):
        value = getattr(api, key)
        if value and not _is_file(config.resolve(value)):
            _bad(config, f"api.{key}", f"names {config.resolve(value)}, which is not a file")
    if api.client_ca_file and not api.tls_cert_file:
        _bad(config, "api.client_ca_file", "needs TLS", hint="set api.tls_cert_file/tls_key_file")
    for key in ("write_clients", "read_clients"):
        entries = getattr(api, key)
        if entries and not api.client_ca_file:
            _bad(
                config,
                f"api.{key}",
                "needs client certificates",
                hint="set api.client_ca_file to the CA that issues the clients' certificates",
            )
        for index, entry in enumerate(entries):
            try:
                parse_client_entry(entry)
            except InvalidInput as exc:
                _bad(config, f"api.{key}[{index}]", exc.message, hint=exc.hint)


def _toml_value(value: int | str | tuple[str, ...]) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, int):
        return str(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_config(config: NodeConfig) -> str:
    """The TOML text of ``config``, every key written out so operators see what is set."""
    lines = ["# Trusted Ledger node configuration (docs/node.md).", ""]
    for name in _SECTIONS:
        section = getattr(config, name)
        lines.append(f"[{name}]")
        lines.extend(f"{f.name} = {_toml_value(getattr(section, f.name))}" for f in fields(section))
        lines.append("")
    return "\n".join(lines)
