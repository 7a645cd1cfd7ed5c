"""The chain: block format, commit certificates, the chain store, validator, pool, publisher.

Formats: docs/formats.md §6. The core modules import ``hashing``, ``custody``, ``storage``,
``state``, ``txn``, ``errors`` and ``observability``, and reach execution only through the
``BlockExecutor`` protocol and node keys through ``ChainSigner``; ``processing_executor``
(not re-exported here) implements ``BlockExecutor`` over the ``processing`` layer below.
"""

from trusted_ledger.chain.block import (
    BLOCK_ID_BYTES,
    GENESIS_PREVIOUS_ID,
    Block,
    BlockHeader,
    batch_root,
    decode_block,
    decode_header,
)
from trusted_ledger.chain.certificate import (
    CommitCertificate,
    Membership,
    Vote,
    decode_certificate,
    sign_commit_vote,
    vote_digest,
)
from trusted_ledger.chain.execution import BatchResult, BlockExecutor, ExecutionOutcome
from trusted_ledger.chain.pool import BatchPool, PendingBatch
from trusted_ledger.chain.proposal import build_genesis, sign_proposal, single_node_certificate
from trusted_ledger.chain.publisher import BlockPublisher, ProposedBlock, PublisherLimits
from trusted_ledger.chain.signing import ChainSigner, CustodyChainSigner
from trusted_ledger.chain.status import BatchStatus, BatchStatusReport, batch_status
from trusted_ledger.chain.store import CHAIN_COLUMN_FAMILIES, ChainHead, ChainStore
from trusted_ledger.chain.validator import BlockValidator

__all__ = [
    "BLOCK_ID_BYTES",
    "CHAIN_COLUMN_FAMILIES",
    "GENESIS_PREVIOUS_ID",
    "BatchPool",
    "BatchResult",
    "BatchStatus",
    "BatchStatusReport",
    "Block",
    "BlockExecutor",
    "BlockHeader",
    "BlockPublisher",
    "BlockValidator",
    "ChainHead",
    "ChainSigner",
    "ChainStore",
    "CommitCertificate",
    "CustodyChainSigner",
    "ExecutionOutcome",
    "Membership",
    "PendingBatch",
    "ProposedBlock",
    "PublisherLimits",
    "Vote",
    "batch_root",
    "batch_status",
    "build_genesis",
    "decode_block",
    "decode_certificate",
    "decode_header",
    "sign_commit_vote",
    "sign_proposal",
    "single_node_certificate",
    "vote_digest",
]
