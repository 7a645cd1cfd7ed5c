"""The chain store: committed blocks, their indexes, receipts and the head, over ``storage``.

``commit`` writes a block, its certificate, every index entry, its receipts, the state nodes
it creates and the new head in ONE synced ``WriteBatch``: after a crash the store holds all
of a block or none of it (invariant 6). Assertions come in pairs: before the write, the block
must extend the head and carry the state root of the update; on open, the head block must be
whole, indexed and certified and its state root readable, or the store refuses to start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping, Set
from dataclasses import dataclass

from trusted_ledger.chain.block import BLOCK_ID_BYTES, Block, decode_block
from trusted_ledger.chain.certificate import CommitCertificate, decode_certificate
from trusted_ledger.chain.wire import check_chain_id, u64
from trusted_ledger.errors import (
    BlockDoesNotExtendHead,
    BlockReplaysCommitted,
    CertificateInvalid,
    ChainCorrupted,
    InvalidInput,
    StateRootMismatch,
    TrustedLedgerError,
)
from trusted_ledger.observability.metrics import (
    CHAIN_BLOCK_BATCHES,
    CHAIN_COMMIT_SECONDS,
    CHAIN_COMMITTED_BATCHES_TOTAL,
    CHAIN_COMMITTED_TRANSACTIONS_TOTAL,
    CHAIN_HEAD_HEIGHT,
)
from trusted_ledger.state import EMPTY_ROOT, STATE_NODES_COLUMN_FAMILY, StateStore, StateUpdate
from trusted_ledger.storage import Database, WriteBatch
from trusted_ledger.txn import DEFAULT_LIMITS, TxnLimits

BLOCKS_CF = "chain_blocks"  # block id -> block encoding
HEIGHTS_CF = "chain_heights"  # u64 block number -> block id
CERTIFICATES_CF = "chain_certificates"  # block id -> commit certificate encoding
BATCHES_CF = "chain_batches"  # raw batch id (64 B) -> block id
TRANSACTIONS_CF = "chain_transactions"  # raw transaction id (64 B) -> block id
RECEIPTS_CF = "chain_receipts"  # raw transaction id (64 B) -> receipt bytes (processing's)
META_CF = "chain_meta"  # HEAD_KEY, CHAIN_ID_KEY
PENDING_CF = "chain_pending"  # u64 arrival sequence || raw batch id (64 B) -> batch bytes
HEAD_KEY = b"head"  # u64 number || block id
CHAIN_ID_KEY = b"chain_id"  # ASCII chain id, written with genesis

CHAIN_COLUMN_FAMILIES = (
    BLOCKS_CF, HEIGHTS_CF, CERTIFICATES_CF, BATCHES_CF, TRANSACTIONS_CF, RECEIPTS_CF, META_CF,
    PENDING_CF, STATE_NODES_COLUMN_FAMILY,
)  # fmt: skip
"""Every column family a chain database must be opened with."""

ID_BYTES = 64  # batch and transaction ids: 64-byte signatures, 128 hex chars
_HEAD_RECORD_BYTES = 8 + BLOCK_ID_BYTES


@dataclass(frozen=True)
class ChainHead:
    number: int
    block_id: bytes
    state_root: bytes
    timestamp_ms: int


def _raw_id(identifier: str) -> bytes | None:
    """A batch or transaction id as stored; None for text that cannot be an id."""
    if len(identifier) != 2 * ID_BYTES:
        return None
    try:
        return bytes.fromhex(identifier)
    except ValueError:
        return None


class ChainStore:
    """Reads and extends one chain in ``db``; one writer, any number of readers."""

    def __init__(self, db: Database, chain_id: str, limits: TxnLimits = DEFAULT_LIMITS) -> None:
        missing = sorted(set(CHAIN_COLUMN_FAMILIES) - db.column_families)
        if missing:
            raise InvalidInput(
                f"the chain database lacks column families {missing}",
                hint="open it with column_families=CHAIN_COLUMN_FAMILIES",
            )
        check_chain_id(chain_id)
        self._db = db
        self.chain_id = chain_id
        self._limits = limits
        self.state = StateStore(db, STATE_NODES_COLUMN_FAMILY)
        self._commit_lock = threading.Lock()
        stored_chain_id = db.get(META_CF, CHAIN_ID_KEY)
        if stored_chain_id is not None and stored_chain_id != chain_id.encode("ascii"):
            raise InvalidInput(
                f"this database holds chain {stored_chain_id!r}, not {chain_id!r}",
                hint="point the node at the data directory of its own chain",
            )
        self._head = self._load_head()
        if self._head is not None:
            CHAIN_HEAD_HEIGHT.set(self._head.number)

    # --- reading ---------------------------------------------------------------------------

    @property
    def head(self) -> ChainHead | None:
        """The last committed block, or None before genesis."""
        return self._head

    def block(self, block_id: bytes, *, verify_batch_signatures: bool = False) -> Block | None:
        """The block, decoded and checked: structure, batch root, payload hashes and the
        proposer's signature. The batches' own signatures were verified before commit;
        ``verify_batch_signatures=True`` checks them again (~0.1 s per 1,000 batches), as
        opening the store does for the head block."""
        data = self.block_bytes(block_id)
        if data is None:
            return None
        return decode_block(data, self._limits, verify_batch_signatures=verify_batch_signatures)

    def block_bytes(self, block_id: bytes) -> bytes | None:
        """The block's stored encoding (docs/formats.md §6.3)."""
        if len(block_id) != BLOCK_ID_BYTES:
            return None
        return self._db.get(BLOCKS_CF, block_id)

    def block_id_at(self, number: int) -> bytes | None:
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**64:
            return None
        return self._db.get(HEIGHTS_CF, u64(number))

    def block_at(self, number: int, *, verify_batch_signatures: bool = False) -> Block | None:
        block_id = self.block_id_at(number)
        if block_id is None:
            return None
        return self.block(block_id, verify_batch_signatures=verify_batch_signatures)

    def certificate(self, block_id: bytes) -> CommitCertificate | None:
        data = self._db.get(CERTIFICATES_CF, block_id) if len(block_id) == BLOCK_ID_BYTES else None
        return None if data is None else decode_certificate(data)

    def block_id_of_batch(self, batch_id: str) -> bytes | None:
        raw = _raw_id(batch_id)
        return None if raw is None else self._db.get(BATCHES_CF, raw)

    def block_id_of_transaction(self, transaction_id: str) -> bytes | None:
        raw = _raw_id(transaction_id)
        return None if raw is None else self._db.get(TRANSACTIONS_CF, raw)

    def receipt(self, transaction_id: str) -> bytes | None:
        raw = _raw_id(transaction_id)
        return None if raw is None else self._db.get(RECEIPTS_CF, raw)

    def committed_among(self, transaction_ids: Collection[str]) -> Set[str]:
        """txn's ``CommittedTransactions``: the ids already committed on this chain."""
        return {tid for tid in transaction_ids if self.block_id_of_transaction(tid) is not None}

    def batches_committed_among(self, batch_ids: Collection[str]) -> Set[str]:
        return {bid for bid in batch_ids if self.block_id_of_batch(bid) is not None}

    # --- committing ------------------------------------------------------------------------

    def commit(
        self,
        block: Block,
        certificate: CommitCertificate,
        state_update: StateUpdate,
        receipts: Mapping[str, bytes],
        pending_keys: Collection[bytes] = (),
    ) -> None:
        """Make ``block`` the new head: one atomic, synced write. The caller has validated
        the block and the certificate's signatures; this checks what links them to the store.
        ``pending_keys`` (``chain_pending`` rows of the block's batches) are deleted in it."""
        started = time.perf_counter()
        with self._commit_lock:
            self._check_extends_head(block)
            if state_update.root != block.header.state_root:
                raise StateRootMismatch(
                    f"block {block.number} claims state root {block.header.state_root.hex()}, "
                    f"the update to commit with it has {state_update.root.hex()}"
                )
            self._check_certificate_binds(block, certificate)
            self._check_not_committed(block)
            batch = self._commit_batch(block, certificate, state_update, receipts)
            for key in pending_keys:
                batch.delete(PENDING_CF, key)
            self._db.write(batch, sync=True)
            head_record = u64(block.number) + block.id
            # The paired after-write read: what we just made durable is what we meant.
            assert self._db.get(META_CF, HEAD_KEY) == head_record, "head not written"
            header = block.header
            self._head = ChainHead(block.number, block.id, header.state_root, header.timestamp_ms)
        CHAIN_HEAD_HEIGHT.set(block.number)
        CHAIN_BLOCK_BATCHES.observe(len(block.batches))
        CHAIN_COMMITTED_BATCHES_TOTAL.inc(len(block.batches))
        CHAIN_COMMITTED_TRANSACTIONS_TOTAL.inc(sum(len(b.transactions) for b in block.batches))
        CHAIN_COMMIT_SECONDS.observe(time.perf_counter() - started)

    def _check_extends_head(self, block: Block) -> None:
        header = block.header
        if header.chain_id != self.chain_id:
            raise BlockDoesNotExtendHead(
                f"block is for chain {header.chain_id!r}, this store holds {self.chain_id!r}"
            )
        head = self._head
        expected_number = 0 if head is None else head.number + 1
        if header.number != expected_number:
            raise BlockDoesNotExtendHead(
                f"block number {header.number}, the next number is {expected_number}"
            )
        if head is not None and header.previous_block_id != head.block_id:
            raise BlockDoesNotExtendHead(
                f"block {header.number} links to {header.previous_block_id.hex()[:16]}, the "
                f"head is {head.block_id.hex()[:16]}"
            )

    def _check_certificate_binds(self, block: Block, certificate: CommitCertificate) -> None:
        header = block.header
        bound = (certificate.chain_id, certificate.height, certificate.block_id)
        if bound != (header.chain_id, header.number, block.id):
            raise CertificateInvalid(
                f"certificate for height {certificate.height} block "
                f"{certificate.block_id.hex()[:16]} does not bind block {header.number} "
                f"({block.id.hex()[:16]})"
            )

    def _check_not_committed(self, block: Block) -> None:
        replayed = self.batches_committed_among(block.batch_ids)
        replayed_transactions = self.committed_among(block.transaction_ids)
        if replayed or replayed_transactions:
            some = next(iter(replayed or replayed_transactions))
            raise BlockReplaysCommitted(
                f"block {block.number} carries {len(replayed)} committed batches and "
                f"{len(replayed_transactions)} committed transactions (e.g. {some[:16]}...)"
            )

    def _commit_batch(
        self,
        block: Block,
        certificate: CommitCertificate,
        state_update: StateUpdate,
        receipts: Mapping[str, bytes],
    ) -> WriteBatch:
        transaction_ids = set(block.transaction_ids)
        stray = [tid for tid in receipts if tid not in transaction_ids]
        if stray:
            raise InvalidInput(f"receipts for {len(stray)} transactions not in the block")
        batch = WriteBatch()
        state_update.add_to(batch, STATE_NODES_COLUMN_FAMILY)
        batch.put(BLOCKS_CF, block.id, block.encode())
        batch.put(CERTIFICATES_CF, block.id, certificate.encode())
        batch.put(HEIGHTS_CF, u64(block.number), block.id)
        for batch_ in block.batches:
            batch.put(BATCHES_CF, bytes.fromhex(batch_.header_signature), block.id)
            for transaction in batch_.transactions:
                batch.put(TRANSACTIONS_CF, bytes.fromhex(transaction.header_signature), block.id)
        for transaction_id in sorted(receipts):
            batch.put(RECEIPTS_CF, bytes.fromhex(transaction_id), receipts[transaction_id])
        if block.number == 0:
            batch.put(META_CF, CHAIN_ID_KEY, self.chain_id.encode("ascii"))
        batch.put(META_CF, HEAD_KEY, u64(block.number) + block.id)  # last: reads clearest
        return batch

    # --- opening ---------------------------------------------------------------------------

    def _load_head(self) -> ChainHead | None:
        """The head after a restart, checked whole; ``ChainCorrupted`` on any doubt."""
        record = self._db.get(META_CF, HEAD_KEY)
        if record is None:
            if self._db.get(HEIGHTS_CF, u64(0)) is not None:
                raise ChainCorrupted("blocks are stored but the chain head record is missing")
            return None
        if len(record) != _HEAD_RECORD_BYTES:
            raise ChainCorrupted(f"chain head record has {len(record)} bytes")
        number = int.from_bytes(record[:8], "big")
        block_id = record[8:]
        try:
            block = self.block(block_id, verify_batch_signatures=True)
            certificate = self.certificate(block_id)
        except TrustedLedgerError as exc:
            raise ChainCorrupted(f"head block {number} does not decode: {exc}") from exc
        if block is None or certificate is None:
            raise ChainCorrupted(f"head block {number} ({block_id.hex()[:16]}) is not stored")
        if block.id != block_id or block.number != number:
            raise ChainCorrupted(f"head record names block {number} but holds another")
        if self.block_id_at(number) != block_id or self.block_id_at(number + 1) is not None:
            raise ChainCorrupted(f"height index disagrees with head block {number}")
        try:
            self._check_certificate_binds(block, certificate)
        except CertificateInvalid as exc:
            raise ChainCorrupted(f"head block {number}: {exc}") from exc
        self._check_state_root_readable(block)
        header = block.header
        return ChainHead(number, block_id, header.state_root, header.timestamp_ms)

    def _check_state_root_readable(self, block: Block) -> None:
        root = block.header.state_root
        if root == EMPTY_ROOT:
            return
        try:
            self.state.load(root)  # checks the node against its hash
        except TrustedLedgerError as exc:
            raise ChainCorrupted(
                f"state root {root.hex()[:16]} of head block {block.number} is unreadable: {exc}"
            ) from exc
