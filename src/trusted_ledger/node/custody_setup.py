"""The node's key, as ``node init`` and ``node run`` both build it from the configuration.

One construction for both, so the key that signs genesis is exactly the guarded, audited
signer that later signs every block: a ``CustodySigner`` with the node's ``SigningGuard``
and ``AuditLog`` (checkpoints signed by the same key), wrapped in ``CustodyChainSigner``,
which refuses to exist without a guard.
"""

from __future__ import annotations

import os
from pathlib import Path

from trusted_ledger.chain import ChainSigner, CustodyChainSigner
from trusted_ledger.custody import (
    AuditLog,
    CustodySigner,
    Pin,
    SigningGuard,
    TokenPool,
    load_profile,
    pin_from_env,
    pin_from_file,
)
from trusted_ledger.errors import ConfigurationError
from trusted_ledger.node.config import NodeConfig
from trusted_ledger.node.keyring import NodeKeyRing

SOFTHSM_CONF_VARIABLE = "SOFTHSM2_CONF"


def use_softhsm_conf(path: Path) -> None:
    """Point SoftHSM at ``path``; only effective before the module is first loaded, which
    is why the node sets it before it opens any token."""
    if not path.is_file():
        raise ConfigurationError(
            f"SoftHSM configuration {path} does not exist",
            hint="custody.softhsm_conf must name the node's softhsm2.conf",
        )
    os.environ[SOFTHSM_CONF_VARIABLE] = str(path.resolve())


def pin_for(config: NodeConfig) -> Pin:
    custody = config.custody
    if custody.pin_env:
        return pin_from_env(custody.pin_env)
    return pin_from_file(config.resolve(custody.pin_file))


def open_token(config: NodeConfig) -> TokenPool:
    custody = config.custody
    if custody.softhsm_conf:
        use_softhsm_conf(config.resolve(custody.softhsm_conf))
    return TokenPool(
        load_profile(custody.profile),
        custody.token,
        pin_for(config),
        module_path=custody.module or None,
    )


def open_audit_log(config: NodeConfig) -> AuditLog:
    config.audit_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return AuditLog(
        config.audit_path,
        checkpoint_every_records=config.custody.audit_checkpoint_every_records,
        checkpoint_every_s=config.custody.audit_checkpoint_every_s,
    )


def node_chain_signer(config: NodeConfig, pool: TokenPool, audit: AuditLog) -> CustodyChainSigner:
    """The node key behind its guard and audit trail (the guard file must exist)."""
    key = pool.key_info(config.custody.key_label)
    guard = SigningGuard.open(config.guard_path, key.fingerprint)
    signer = CustodySigner(
        pool, config.custody.key_label, audit=audit, guard=guard, checkpoints=True
    )
    return CustodyChainSigner(signer)


def node_key_ring(config: NodeConfig, pool: TokenPool, audit: AuditLog) -> NodeKeyRing:
    """The node key and, when ``custody.next_key_label`` is set, the next key (a rotation
    under way), each behind its own guard; both audited in the one trail, whose checkpoints
    the node key (``key_label``) keeps signing."""
    signers: list[ChainSigner] = [node_chain_signer(config, pool, audit)]
    label = config.custody.next_key_label
    if label:
        key = pool.key_info(label)
        guard_path = config.guard_path_of(label)
        if not guard_path.is_file():
            raise ConfigurationError(
                f"custody.next_key_label {label!r} has no signing guard at {guard_path}",
                hint="create the key with `trusted-ledger node new-key`, which makes its guard",
            )
        guard = SigningGuard.open(guard_path, key.fingerprint)
        signers.append(CustodyChainSigner(CustodySigner(pool, label, audit=audit, guard=guard)))
    return NodeKeyRing(signers)
