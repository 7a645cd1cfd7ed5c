"""``node init``: everything a new node needs, made once, in order, refusing to overwrite.

With no HSM named, the node gets an *embedded* SoftHSM token of its own under
``DIR/hsm/`` (its configuration, token files and random PINs in mode-600 files): the
development default that lets one command start a working ledger. With ``--token`` an
existing token of any profile is used instead (a production HSM, or the TPM). Either way the
node key is generated on the token (never extractable), its signing guard is created, and
the genesis block is signed through custody and committed before the configuration file is
written — so a ``node.toml`` exists only for a node that is whole.

Genesis state: the ``admin`` identity role and the settings voters hold one client key
(secp256k1, ``DIR/keys/admin.priv``) unless admin keys are given; the default identity
policies let anyone submit to ``asset`` and ``intkey`` and only admins to ``identity`` and
``settings``.
"""

from __future__ import annotations

import os
import secrets
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from trusted_ledger.chain import CHAIN_COLUMN_FAMILIES, ChainStore, build_genesis
from trusted_ledger.custody import (
    KeyAlgorithm,
    Pin,
    SigningGuard,
    load_profile,
)
from trusted_ledger.custody.module_admin import init_token
from trusted_ledger.errors import ConfigurationError, InvalidInput
from trusted_ledger.node.config import (
    CONFIG_FILE_NAME,
    ApiSection,
    CustodySection,
    NodeConfig,
    NodeSection,
    ProcessingSection,
    ProcessorsSection,
    config_from_mapping,
    render_config,
)
from trusted_ledger.node.custody_setup import (
    node_chain_signer,
    open_audit_log,
    open_token,
    use_softhsm_conf,
)
from trusted_ledger.processing.families.identity import identity_genesis_changes
from trusted_ledger.processing.families.settings import AUTHORIZED_KEYS, settings_genesis_changes
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.state import StateUpdate
from trusted_ledger.storage import RocksDatabase
from trusted_ledger.txn import SigningKey

_PIN_BYTES = 16
ADMIN_KEY_NAME = "admin"


@dataclass(frozen=True)
class InitOptions:
    directory: Path
    chain_id: str = "trusted-ledger-dev"
    api_bind: str = "127.0.0.1:8008"
    scheduler: str = "serial"
    processors_bind: str = "tcp://127.0.0.1:4004"
    admin_keys: Sequence[str] = ()
    """Compressed secp256k1 public keys of the first admins; empty: make ``keys/admin``."""
    profile: str | None = None
    """With ``token``: an existing token of this profile; None with no token: embedded SoftHSM."""
    token: str | None = None
    pin_env: str | None = None
    pin_file: Path | None = None
    key_label: str = "node-signing"
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    genesis_block_id: bytes
    node_fingerprint: str
    admin_key_file: Path | None


def write_private(path: Path, text: str) -> None:
    """Write a secret (PIN, client key) once: mode 600 from creation, never overwriting."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_softhsm_conf(hsm: Path) -> Path:
    """A SoftHSM configuration whose token store is ``hsm/tokens`` (created here)."""
    tokens = hsm / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    conf = hsm / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens.resolve()}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n",
        encoding="utf-8",
    )
    return conf


def create_softhsm_token(directory: Path, label: str) -> Pin:
    """A new SoftHSM token ``label`` with random PINs kept in ``directory/secrets/`` (mode
    600); SOFTHSM2_CONF must already name the store. Returns the user PIN."""
    user_pin = secrets.token_hex(_PIN_BYTES)
    so_pin = secrets.token_hex(_PIN_BYTES)
    write_private(directory / "secrets" / "user.pin", user_pin + "\n")
    write_private(directory / "secrets" / "so.pin", so_pin + "\n")
    init_token(load_profile("softhsm2"), label, Pin(so_pin), Pin(user_pin))
    return Pin(user_pin)


def _embedded_softhsm(directory: Path) -> tuple[CustodySection, Pin]:
    """A private SoftHSM token for this node: configuration, token store and PINs."""
    conf = write_softhsm_conf(directory / "hsm")
    section = CustodySection(
        profile="softhsm2",
        token="tl-node",  # noqa: S106 - a token label, not a secret
        pin_file="secrets/user.pin",
        softhsm_conf="hsm/softhsm2.conf",
    )
    use_softhsm_conf(conf)
    return section, create_softhsm_token(directory, section.token)


def make_admin_key(directory: Path) -> tuple[str, Path]:
    """A new client key (secp256k1) in ``directory/keys/admin.priv``: the first admin."""
    key = SigningKey.generate()
    path = directory / "keys" / f"{ADMIN_KEY_NAME}.priv"
    write_private(path, key.secret_hex() + "\n")
    (path.with_suffix(".pub")).write_text(key.public_key_hex + "\n", encoding="utf-8")
    return key.public_key_hex, path


def _admin_keys(options: InitOptions) -> tuple[list[str], Path | None]:
    if options.admin_keys:
        return list(options.admin_keys), None
    public_key, path = make_admin_key(options.directory)
    return [public_key], path


def genesis_state(store: ChainStore, admin_keys: Sequence[str]) -> StateUpdate:
    """The initial state: ``admin_keys`` hold the identity ``admin`` role and are the
    settings voters. Every node of a consortium computes it alike (same root)."""
    return genesis_update(
        store.state,
        identity_genesis_changes(admin_keys),
        settings_genesis_changes({AUTHORIZED_KEYS: ",".join(admin_keys)}),
    )


def _check_options(options: InitOptions) -> None:
    if (options.directory / CONFIG_FILE_NAME).exists():
        raise InvalidInput(
            f"{options.directory / CONFIG_FILE_NAME} exists: this directory already holds a node",
            hint="run it with `trusted-ledger node run --config ...`, or choose another --dir",
        )
    if options.directory.exists() and any(options.directory.iterdir()):
        raise InvalidInput(
            f"{options.directory} is not empty",
            hint="node init writes a whole node directory; point --dir at a new or empty one",
        )
    if options.token is None and (options.pin_env or options.pin_file or options.profile):
        raise ConfigurationError(
            "--profile/--pin-env/--pin-file name an existing token's access: give --token too",
            hint="without --token, node init creates an embedded SoftHSM token",
        )
    if options.token is not None and bool(options.pin_env) == bool(options.pin_file):
        raise ConfigurationError("an existing --token needs exactly one of --pin-env, --pin-file")


def init_node(options: InitOptions, *, clock_ms: int | None = None) -> InitResult:
    """Create a node directory with its key, guard, genesis block and ``node.toml``."""
    _check_options(options)
    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if options.token is None:
        custody, _ = _embedded_softhsm(directory)
    else:
        custody = CustodySection(
            profile=options.profile or "softhsm2",
            token=options.token,
            pin_env=options.pin_env or "",
            pin_file=str(options.pin_file.resolve()) if options.pin_file else "",
        )
    custody = replace(custody, key_label=options.key_label)
    config = NodeConfig(
        path=(directory / CONFIG_FILE_NAME).resolve(),
        node=NodeSection(chain_id=options.chain_id),
        custody=custody,
        api=ApiSection(bind=options.api_bind),
        processing=ProcessingSection(scheduler=options.scheduler),
        processors=ProcessorsSection(bind=options.processors_bind),
    )
    # Validate the whole configuration before the first irreversible step.
    config_from_mapping(tomllib.loads(render_config(config)), config.path)

    pool = open_token(config)
    key = pool.generate_key(custody.key_label, options.key_algorithm)
    config.guard_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    SigningGuard.create(config.guard_path, key.fingerprint)
    admin_keys, admin_file = _admin_keys(options)

    audit = open_audit_log(config)
    try:
        signer = node_chain_signer(config, pool, audit)
        db = RocksDatabase(config.chain_dir, CHAIN_COLUMN_FAMILIES, create=True)
        try:
            store = ChainStore(db, options.chain_id)
            initial = genesis_state(store, admin_keys)
            now = clock_ms if clock_ms is not None else int(time.time() * 1000)
            block, certificate = build_genesis(signer, options.chain_id, initial, now)
            store.commit(block, certificate, initial, {})
        finally:
            db.close()
    finally:
        audit.close()
    # Last: the configuration names a node only once the node is whole.
    config.path.write_text(render_config(config), encoding="utf-8")
    return InitResult(config.path, block.id, key.fingerprint, admin_file)
