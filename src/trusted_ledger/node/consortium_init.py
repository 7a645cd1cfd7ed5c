"""``net init``: a whole local consortium of N member nodes in one directory, on loopback.

Layout of ``DIR`` (docs/local-consortium.md)::

    members.toml                     every member's name, public key and peer address
    keys/admin.priv                  the client key of the first admin (identity, settings)
    bank-a/ … bank-x/                one node directory per member: hsm/ (its own SoftHSM
                                     store with its one token), secrets/, chain/, guard/,
                                     audit/, node.toml (bft mode)

Tokens: ``SOFTHSM2_CONF`` is read once per process when the module loads, and this one
process must create every member's token and collect every member's genesis vote. So the
tokens (labels ``tl-bank-a`` …, each with its own random PINs, each member's key generated
on its own token and never leaving it) are made in one staging store, ``DIR/.hsm-init``, and
each is moved into its member's own store when init is done with it (``_move_token`` says
why a shared store is not kept).

Genesis is built once: member 0 proposes block 0 at (height 0, round 0, propose) and EVERY
founder signs its commit vote at (0, 0, commit) through its own guarded, audited
``CustodySigner`` - the same signers ``node run`` later uses, so the guards already hold the
genesis positions. The certificate is checked against the N-member ``Membership`` before the
same block, certificate and initial state are committed into every node's chain. The
initial state holds the founders' membership as the setting ``tl.consensus.members`` (names
and keys in members-file order), so from block 1 on the membership comes from the chain and
changes by admin vote (docs/consortium.md); the members file stays the address book. Each
``node.toml`` is written last, so a configuration exists only for a node that is whole, and
``members.toml`` before them, because every configuration names it.
"""

from __future__ import annotations

import string
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from trusted_ledger.chain import (
    CHAIN_COLUMN_FAMILIES,
    GENESIS_PREVIOUS_ID,
    Block,
    ChainStore,
    CommitCertificate,
    CustodyChainSigner,
    Membership,
    sign_commit_vote,
    sign_proposal,
)
from trusted_ledger.custody import AuditLog, KeyAlgorithm, SigningGuard, TokenPool
from trusted_ledger.errors import ConfigurationError, InternalError, InvalidInput
from trusted_ledger.node.bootstrap import (
    create_softhsm_token,
    make_admin_key,
    write_softhsm_conf,
)
from trusted_ledger.node.config import (
    CONFIG_FILE_NAME,
    ApiSection,
    ConsensusSection,
    CustodySection,
    NetworkSection,
    NodeConfig,
    NodeSection,
    ProcessorsSection,
    config_from_mapping,
    load_config,
    render_config,
)
from trusted_ledger.node.custody_setup import (
    node_chain_signer,
    open_audit_log,
    open_token,
    use_softhsm_conf,
)
from trusted_ledger.node.members import Member, load_members, write_members
from trusted_ledger.processing.families.consensus_members import (
    MEMBERS_SETTING,
    ChainMember,
    encode_members_setting,
)
from trusted_ledger.processing.families.identity import identity_genesis_changes
from trusted_ledger.processing.families.settings import AUTHORIZED_KEYS, settings_genesis_changes
from trusted_ledger.processing.genesis import genesis_update
from trusted_ledger.state import StateUpdate
from trusted_ledger.storage import RocksDatabase

MEMBERS_FILE_NAME = "members.toml"
HSM_DIR_NAME = "hsm"
STAGING_HSM_DIR_NAME = ".hsm-init"
LOOPBACK = "127.0.0.1"
CHAIN_ID_DEFAULT = "trusted-ledger-local"
BASE_PORT_DEFAULT = 7700
"""Member i listens for peers on BASE+i, serves its API on BASE+100+i and external
processors on BASE+200+i: three disjoint ranges for up to ``nodes_max`` members."""
API_PORT_OFFSET = 100
PROCESSORS_PORT_OFFSET = 200
nodes_max = 26
"""Members are named bank-a … bank-z; a local net larger than this is no longer a
development setup (and would overlap the port ranges above at 100)."""
TOKEN_LABEL_PREFIX = "tl-"  # noqa: S105 - token labels, not secrets


@dataclass(frozen=True)
class ConsortiumOptions:
    directory: Path
    nodes: int = 4
    chain_id: str = CHAIN_ID_DEFAULT
    base_port: int = BASE_PORT_DEFAULT
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256


@dataclass(frozen=True)
class LocalMember:
    """One member node of a local consortium, as its directory and configuration say."""

    name: str
    directory: Path
    config: NodeConfig

    @property
    def api_url(self) -> str:
        return f"http://{self.config.api.bind}"

    @property
    def peer_address(self) -> str:
        return self.config.network.bind

    @property
    def log_path(self) -> Path:
        return self.directory / "node.log"

    @property
    def pid_path(self) -> Path:
        return self.directory / "node.pid"


@dataclass(frozen=True)
class ConsortiumResult:
    members: tuple[LocalMember, ...]
    genesis_block_id: bytes
    votes: int
    admin_key_file: Path
    members_file: Path


def member_name(index: int) -> str:
    return f"bank-{string.ascii_lowercase[index]}"


def _check_options(options: ConsortiumOptions) -> None:
    if not 1 <= options.nodes <= nodes_max:
        raise InvalidInput(
            f"--nodes must be 1..{nodes_max}, got {options.nodes}",
            hint="4 tolerates one faulty member (n = 3f + 1)",
        )
    top = options.base_port + PROCESSORS_PORT_OFFSET + options.nodes - 1
    if options.base_port < 1024 or top > 65535:
        raise InvalidInput(
            f"--base-port {options.base_port} puts ports outside 1024..65535 (up to {top})"
        )
    if options.directory.exists() and any(options.directory.iterdir()):
        raise InvalidInput(
            f"{options.directory} is not empty",
            hint="net init writes a whole consortium directory; choose a new or empty one",
        )


def _member_config(options: ConsortiumOptions, index: int, directory: Path) -> NodeConfig:
    name = member_name(index)
    port = options.base_port + index
    config = NodeConfig(
        path=(directory / CONFIG_FILE_NAME).resolve(),
        node=NodeSection(chain_id=options.chain_id),
        custody=CustodySection(
            profile="softhsm2",
            token=TOKEN_LABEL_PREFIX + name,
            pin_file="secrets/user.pin",
            softhsm_conf=f"{HSM_DIR_NAME}/softhsm2.conf",
        ),
        api=ApiSection(bind=f"{LOOPBACK}:{port + API_PORT_OFFSET}"),
        processors=ProcessorsSection(bind=f"tcp://{LOOPBACK}:{port + PROCESSORS_PORT_OFFSET}"),
        consensus=ConsensusSection(mode="bft", members_file=f"../{MEMBERS_FILE_NAME}"),
        network=NetworkSection(bind=f"{LOOPBACK}:{port}"),
    )
    # Validate the whole configuration before the first irreversible step.
    config_from_mapping(tomllib.loads(render_config(config)), config.path)
    return config


@dataclass
class _Founder:
    """A member during init: its configuration, token directory, open token and signer."""

    config: NodeConfig
    token_dir: Path
    """The token's directory in the staging store, moved into the member's own at the end."""
    pool: TokenPool
    audit: AuditLog
    signer: CustodyChainSigner

    def close(self) -> None:
        self.audit.close()
        self.pool.close()


def _create_token(directory: Path, label: str, staging_tokens: Path) -> Path:
    """Create token ``label`` in the staging store; return the directory SoftHSM made for it
    (the one that was not there before: SoftHSM names token directories by a random UUID)."""
    before = set(staging_tokens.iterdir())
    create_softhsm_token(directory, label)
    made = set(staging_tokens.iterdir()) - before
    if len(made) != 1:
        raise InternalError(f"SoftHSM made {len(made)} token directories for {label!r}, not 1")
    return made.pop()


def _create_founder(options: ConsortiumOptions, index: int, staging: Path) -> _Founder:
    directory = options.directory / member_name(index)
    directory.mkdir(mode=0o700)
    config = _member_config(options, index, directory)
    token_dir = _create_token(directory, config.custody.token, staging / "tokens")
    # Until the move, the token is in the staging store (already loaded in this process).
    staged = replace(
        config, custody=replace(config.custody, softhsm_conf=str(staging / "softhsm2.conf"))
    )
    pool = open_token(staged)
    try:
        key = pool.generate_key(config.custody.key_label, options.key_algorithm)
        config.guard_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        SigningGuard.create(config.guard_path, key.fingerprint)
        audit = open_audit_log(config)
    except BaseException:
        pool.close()
        raise
    try:
        return _Founder(config, token_dir, pool, audit, node_chain_signer(config, pool, audit))
    except BaseException:
        audit.close()
        pool.close()
        raise


def _move_token(founder: _Founder) -> None:
    """Give the member a SoftHSM store of its own holding only its token.

    Why not leave every token in one shared store: SoftHSM reads *every* token in its store
    when a process loads it, and a process using its own token may rewrite that token's
    files (``token.object`` changed during simultaneous starts); with one store, a node
    starting at such a moment reads a half-written file and fails with CKR_GENERAL_ERROR
    (1 in 160 simultaneous starts of 4 nodes here). A token is a directory that names
    nothing outside itself, so moving it whole is safe.
    """
    own = founder.config.resolve(founder.config.custody.softhsm_conf).parent
    write_softhsm_conf(own)
    founder.token_dir.rename(own / "tokens" / founder.token_dir.name)


def _certified_genesis(
    founders: list[_Founder], chain_id: str, state_root: bytes, timestamp_ms: int
) -> tuple[Block, CommitCertificate]:
    """Block 0 proposed by founder 0, certified by every founder's own commit vote."""
    block = sign_proposal(
        founders[0].signer,
        chain_id=chain_id,
        number=0,
        previous_block_id=GENESIS_PREVIOUS_ID,
        state_root=state_root,
        batches=(),
        timestamp_ms=timestamp_ms,
    )
    consensus_round = block.header.consensus_round
    votes = [
        sign_commit_vote(founder.signer, chain_id, 0, consensus_round, block.id)
        for founder in founders
    ]
    certificate = CommitCertificate.from_votes(chain_id, 0, consensus_round, block.id, votes)
    # All N, not just a quorum: a founder missing from genesis would be a member that never
    # agreed to the chain it is part of.
    certificate.verify(Membership(f.signer.public_key for f in founders), block)
    return block, certificate


def genesis_state(store: ChainStore, admin_keys: list[str], members: list[Member]) -> StateUpdate:
    """The consortium's initial state: ``admin_keys`` are the identity admins and settings
    voters, and ``tl.consensus.members`` is the founders' membership in rotation order."""
    membership = encode_members_setting(ChainMember(m.name, m.public_key) for m in members)
    return genesis_update(
        store.state,
        identity_genesis_changes(admin_keys),
        settings_genesis_changes(
            {AUTHORIZED_KEYS: ",".join(admin_keys), MEMBERS_SETTING: membership}
        ),
    )


def _commit_genesis(
    config: NodeConfig,
    block: Block,
    certificate: CommitCertificate,
    admin_keys: list[str],
    members: list[Member],
) -> None:
    db = RocksDatabase(config.chain_dir, CHAIN_COLUMN_FAMILIES, create=True)
    try:
        store = ChainStore(db, config.node.chain_id)
        initial = genesis_state(store, admin_keys, members)
        if initial.root != block.header.state_root:
            raise InvalidInput(
                f"{config.chain_dir}: genesis state root {initial.root.hex()[:16]} differs "
                f"from the block's {block.header.state_root.hex()[:16]}"
            )
        store.commit(block, certificate, initial, {})
    finally:
        db.close()


def init_consortium(options: ConsortiumOptions, *, clock_ms: int | None = None) -> ConsortiumResult:
    """Create every member node, the members file, the admin key and the certified genesis."""
    _check_options(options)
    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # One process must make every token and collect every vote, and SoftHSM reads its
    # configuration once per process: so all tokens are made in one staging store, and each
    # is moved into its member's own store once nothing here uses it any more.
    # Absolute: the founders' configurations name it while their tokens are made, and a path
    # in a configuration is relative to that file, not to the working directory (a relative
    # --dir, as `make run` gives, failed here).
    staging = (directory / STAGING_HSM_DIR_NAME).resolve()
    use_softhsm_conf(write_softhsm_conf(staging))
    founders: list[_Founder] = []
    try:
        for index in range(options.nodes):
            founders.append(_create_founder(options, index, staging))
        members_file = directory / MEMBERS_FILE_NAME
        founding = [
            Member(member_name(i), f.signer.public_key, f.config.network.bind)
            for i, f in enumerate(founders)
        ]
        write_members(members_file, founding)
        admin_key, admin_file = make_admin_key(directory)
        # The root is computed in a throwaway store first: it is what founder 0 signs, and
        # every node must then arrive at the same root from the same changes.
        first = founders[0].config
        db = RocksDatabase(first.chain_dir, CHAIN_COLUMN_FAMILIES, create=True)
        try:
            state_root = genesis_state(ChainStore(db, options.chain_id), [admin_key], founding).root
        finally:
            db.close()
        now = clock_ms if clock_ms is not None else int(time.time() * 1000)
        block, certificate = _certified_genesis(founders, options.chain_id, state_root, now)
        for founder in founders:
            _commit_genesis(founder.config, block, certificate, [admin_key], founding)
    finally:
        for founder in founders:
            founder.close()
    for founder in founders:
        _move_token(founder)
    # Empty now; rmdir (not rmtree) so that anything unexpected left in it stays and fails.
    (staging / "softhsm2.conf").unlink()
    (staging / "tokens").rmdir()
    staging.rmdir()
    members = []
    for index, founder in enumerate(founders):
        # Last, per node: the configuration names a node only once it is whole.
        founder.config.path.write_text(render_config(founder.config), encoding="utf-8")
        members.append(LocalMember(member_name(index), founder.config.path.parent, founder.config))
    return ConsortiumResult(
        tuple(members), block.id, len(certificate.votes), admin_file, members_file
    )


def local_members(directory: Path) -> tuple[LocalMember, ...]:
    """The members of the local consortium in ``directory``, in members-file order.

    Raise ``ConfigurationError`` if it is not a whole consortium (no members file, or a
    member directory without its ``node.toml``: an interrupted ``net init``).
    """
    members_file = directory / MEMBERS_FILE_NAME
    if not members_file.is_file():
        raise ConfigurationError(
            f"{directory} holds no local consortium ({MEMBERS_FILE_NAME} is missing)",
            hint="create one with `trusted-ledger net init --dir DIR` (or `net up`)",
        )
    members = []
    for member in load_members(members_file):
        config_path = directory / member.name / CONFIG_FILE_NAME
        if not config_path.is_file():
            raise ConfigurationError(
                f"{config_path} is missing: net init did not finish for {member.name}",
                hint=f"remove {directory} and run net init again",
            )
        members.append(LocalMember(member.name, directory / member.name, load_config(config_path)))
    return tuple(members)


def consortium_exists(directory: Path) -> bool:
    return (directory / MEMBERS_FILE_NAME).is_file()
