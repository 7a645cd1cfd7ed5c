"""The node's key-usage trail, anchored in the ledger (issue 7; docs/custody.md §8.4).

Every ``[custody] anchor_every_s`` seconds, and once as soon as the node is ready, the
anchorer takes a fresh checkpoint of the node's audit log through ``AuditLog.checkpoint``
(so the checkpoint is signed by the node's HSM key through the guarded, audited signer,
and recorded in the trail like every other use), wraps it in a ``tl_audit`` transaction
and adds the batch to the pool as an API submission would: the publisher is woken, and in
bft mode the batch list is gossiped to the other members through the API's ``on_accepted``
path. It then follows the batch until it is committed or rejected.

The transaction is signed with a secp256k1 key generated in memory at start and never
stored. That key authorises nothing: the ``tl_audit`` handler decides only on the HSM
signature in the payload, so whoever holds the software key can at most submit anchors
that the member's HSM key already signed. "Every private key in hardware" is about keys
that carry authority; this one carries none (docs/families.md, tl_audit).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from trusted_ledger.chain import BatchPool, ChainStore
from trusted_ledger.custody.audit import AuditLog, TrailCheckpoint
from trusted_ledger.custody.keyspec import PublicKey
from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import AUDIT_ANCHOR_AGE_SECONDS, AUDIT_ANCHORS_TOTAL
from trusted_ledger.processing.families.audit_anchor import (
    FAMILY_NAME,
    FAMILY_VERSION,
    AuditAnchor,
    anchor_addresses,
    decode_anchor_record,
)
from trusted_ledger.txn import BatchList, SigningKey, TransactionBuilder, build_batch

anchors_in_flight_max = 8
"""Anchor batches followed until commit; an older one past this is forgotten (it may still
commit, or be rejected as not advancing: either is harmless)."""
ANCHOR_RESULTS = ("submitted", "committed", "rejected", "failed", "skipped")
poll_interval_s = 0.5
"""How often the anchorer looks whether its batches committed (a dictionary lookup each)."""

_log = get_logger("node.anchoring")


def anchor_of(checkpoint: TrailCheckpoint) -> AuditAnchor:
    """The ``tl_audit`` anchor for a checkpoint the audit log made."""
    signature = checkpoint.signature
    return AuditAnchor(
        PublicKey.from_spki(signature.public_key_der),
        checkpoint.head_seq,
        bytes.fromhex(checkpoint.head),
        signature.signature_raw,
    )


class AuditAnchorer:
    """Submits this node's trail checkpoints as ``tl_audit`` batches and follows them."""

    def __init__(
        self,
        audit: AuditLog,
        store: ChainStore,
        pool: BatchPool,
        *,
        every_s: float,
        wake: Callable[[], None],
        gossip: Callable[[bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._audit = audit
        self._store = store
        self._pool = pool
        self.every_s = every_s
        self._wake_publisher = wake
        self._gossip = gossip
        self._clock = clock
        # Ephemeral and in memory only: it authorises nothing (see the module docstring).
        self._key = SigningKey.generate()
        self._builder = TransactionBuilder(self._key, FAMILY_NAME, FAMILY_VERSION)
        self._in_flight: OrderedDict[str, int] = OrderedDict()  # batch id -> head_seq
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Until this process commits one, the age counts from start: a node that never
        # manages to anchor must show a growing age, not "no data".
        self._last_committed = clock()
        self.committed_head_seq: int | None = None

    @property
    def enabled(self) -> bool:
        return self.every_s > 0

    def age_s(self) -> float:
        return max(0.0, self._clock() - self._last_committed)

    def start(self) -> None:
        """Anchor now and then every ``every_s``, in a thread; nothing when disabled."""
        if not self.enabled or self._thread is not None:
            return
        AUDIT_ANCHOR_AGE_SECONDS.set_function(self.age_s)
        for result in ANCHOR_RESULTS:  # every series from the start, at zero: alertable
            AUDIT_ANCHORS_TOTAL.labels(result=result)
        self._thread = threading.Thread(target=self._run, name="audit-anchor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread; the audit log must stay open until this returns."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        next_anchor = time.monotonic()
        while not self._stopping.is_set():
            self.follow()
            now = time.monotonic()
            if now >= next_anchor:
                next_anchor = now + self.every_s
                try:
                    self.anchor_now()
                except Exception as exc:
                    # Anchoring is evidence, not chain safety: an HSM hiccup or a full pool
                    # must not stop the node. The age metric shows the gap; retry next time.
                    AUDIT_ANCHORS_TOTAL.labels(result="failed").inc()
                    _log.warning("audit_anchor.failed", error=str(exc), kind=type(exc).__name__)
            self._stopping.wait(min(poll_interval_s, max(0.0, next_anchor - time.monotonic())))

    def anchor_now(self) -> str | None:
        """Checkpoint the trail (HSM-signed, recorded) and queue its anchor; the batch id,
        or None when there is nothing to anchor (an empty trail, or a log without signer)."""
        checkpoint = self._audit.checkpoint(force=True)
        if checkpoint is None:
            AUDIT_ANCHORS_TOTAL.labels(result="skipped").inc()
            return None
        return self.submit(anchor_of(checkpoint))

    def submit(self, anchor: AuditAnchor) -> str:
        """Queue ``anchor`` as a ``tl_audit`` batch, gossip it, and follow it; its id."""
        inputs, outputs = anchor_addresses(anchor.public_key.fingerprint)
        transaction = self._builder.build(anchor.payload(), inputs=inputs, outputs=outputs)
        batch = build_batch(self._key, [transaction])
        self._pool.add_many([batch], int(self._clock() * 1000))
        batch_id = batch.header_signature
        with self._lock:
            self._in_flight[batch_id] = anchor.head_seq
            while len(self._in_flight) > anchors_in_flight_max:
                self._in_flight.popitem(last=False)
        AUDIT_ANCHORS_TOTAL.labels(result="submitted").inc()
        _log.info("audit_anchor.submitted", batch_id=batch_id, head_seq=anchor.head_seq)
        self._wake_publisher()
        self._gossip(BatchList((batch,)).encode())
        return batch_id

    def follow(self) -> None:
        """Note which followed batches committed or were rejected."""
        with self._lock:
            in_flight = list(self._in_flight.items())
        for batch_id, head_seq in in_flight:
            if self._store.block_id_of_batch(batch_id) is not None:
                self._settle(batch_id, "committed")
                self._last_committed = self._clock()
                self.committed_head_seq = max(self.committed_head_seq or 0, head_seq)
                _log.info("audit_anchor.committed", batch_id=batch_id, head_seq=head_seq)
                continue
            reason = self._pool.rejection(batch_id)
            if reason is not None:
                self._settle(batch_id, "rejected")
                _log.warning("audit_anchor.rejected", batch_id=batch_id, reason=reason)

    def _settle(self, batch_id: str, result: str) -> None:
        with self._lock:
            self._in_flight.pop(batch_id, None)
        AUDIT_ANCHORS_TOTAL.labels(result=result).inc()

    def anchored(self, public_key: PublicKey) -> AuditAnchor | None:
        """The anchor of ``public_key`` in state at the chain head, if any."""
        head = self._store.head
        if head is None:
            return None
        inputs, _ = anchor_addresses(public_key.fingerprint)
        data = self._store.state.view(head.state_root).get(inputs[0])
        if data is None:
            return None
        try:
            return decode_anchor_record(data).anchor
        except InvalidTransaction:
            return None
