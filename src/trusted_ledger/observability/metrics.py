"""All Prometheus metric names of the node, in one place.

One registry for the process (not the library's global default) so that tests can create
fresh ones and nothing from other libraries leaks into ``/metrics``. Names follow
Prometheus conventions: ``tl_`` prefix, base units in the name (``_seconds``, ``_bytes``),
``_total`` for counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# --- custody: HSM signing, guard, audit -----------------------------------------------------

CUSTODY_SIGN_SECONDS = Histogram(
    "tl_custody_sign_seconds",
    "Time to produce one signature through custody, queueing and audit included.",
    ["purpose", "result"],
    # HSM signatures take 0.1 ms (SoftHSM) to 5 ms (TPM); guarded ones add an fsync.
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=REGISTRY,
)
CUSTODY_SESSIONS_IN_USE = Gauge(
    "tl_custody_sessions_in_use",
    "Calls currently inside a PKCS#11 module: 0 or 1, all calls pass one gate per module.",
    ["module"],
    registry=REGISTRY,
)
CUSTODY_QUEUE_DEPTH = Gauge(
    "tl_custody_queue_depth",
    "Calls waiting at a PKCS#11 module's gate.",
    ["module"],
    registry=REGISTRY,
)
CUSTODY_MODULE_ERRORS_TOTAL = Counter(
    "tl_custody_module_errors_total",
    "PKCS#11 calls that failed, by error class.",
    ["module", "error"],
    registry=REGISTRY,
)
CUSTODY_RECOVERIES_TOTAL = Counter(
    "tl_custody_recoveries_total",
    "Successful re-initialisations of a module after the token was lost.",
    ["module"],
    registry=REGISTRY,
)
CUSTODY_GUARD_REFUSALS_TOTAL = Counter(
    "tl_custody_guard_refusals_total",
    "Signatures the signing guard refused, by reason.",
    ["reason"],
    registry=REGISTRY,
)
CUSTODY_GUARD_RAISED_TOTAL = Counter(
    "tl_custody_guard_raised_total",
    "Signing guards raised because the trail or the chain showed a signature above their "
    "watermark (a guard file restored from an older copy), by where the evidence was.",
    ["source"],
    registry=REGISTRY,
)
CUSTODY_AUDIT_RECORDS_TOTAL = Counter(
    "tl_custody_audit_records_total",
    "Key-usage audit records appended, by kind.",
    ["kind"],
    registry=REGISTRY,
)

# --- storage: database writes ---------------------------------------------------------------

STORAGE_WRITE_SECONDS = Histogram(
    "tl_storage_write_seconds",
    "Time to apply one atomic write batch, by engine and whether it was synced to disk.",
    ["engine", "synced"],
    # An fsync costs ~1 ms here (FACTS.md); a block's batch of ~10k entries tens of ms.
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
STORAGE_WRITE_BYTES_TOTAL = Counter(
    "tl_storage_write_bytes_total",
    "Key and value bytes written in batches (before engine overhead), by engine.",
    ["engine"],
    registry=REGISTRY,
)

# --- chain: blocks, commits, the batch pool ---------------------------------------------------

CHAIN_HEAD_HEIGHT = Gauge(
    "tl_chain_head_height",
    "Block number of the committed chain head.",
    registry=REGISTRY,
)
CHAIN_COMMIT_SECONDS = Histogram(
    "tl_chain_commit_seconds",
    "Time to commit one block: encoding, checks and the one synced write.",
    # One fsync is ~1 ms (FACTS.md); a large block with thousands of state nodes tens of ms.
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
CHAIN_PUBLISH_SECONDS = Histogram(
    "tl_chain_publish_seconds",
    "Time to publish one block: pick batches, execute (again after a drop), sign, certify "
    "and commit; with tl_processing_block_seconds and tl_chain_commit_seconds it shows "
    "where a block's time goes.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
CHAIN_BLOCK_BATCHES = Histogram(
    "tl_chain_block_batches",
    "Batches per committed block.",
    buckets=(0, 1, 10, 50, 100, 250, 500, 1000, 2500),
    registry=REGISTRY,
)
CHAIN_BLOCKS_REJECTED_TOTAL = Counter(
    "tl_chain_blocks_rejected_total",
    "Proposed blocks the validator refused, by error class.",
    ["reason"],
    registry=REGISTRY,
)
CHAIN_POOL_BATCHES = Gauge(
    "tl_chain_pool_batches",
    "Batches waiting in the pending pool.",
    registry=REGISTRY,
)
CHAIN_POOL_BYTES = Gauge(
    "tl_chain_pool_bytes",
    "Encoded bytes of the batches waiting in the pending pool.",
    registry=REGISTRY,
)
CHAIN_POOL_REJECTED_TOTAL = Counter(
    "tl_chain_pool_rejected_total",
    "Batches refused by the pending pool (full) or dropped as invalid at execution.",
    ["reason"],
    registry=REGISTRY,
)

# --- state: Merkle-radix tree ---------------------------------------------------------------

STATE_UPDATE_SECONDS = Histogram(
    "tl_state_update_seconds",
    "Time to compute a new state root from a set of address changes (no disk write).",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
    registry=REGISTRY,
)
STATE_NODES_WRITTEN_TOTAL = Counter(
    "tl_state_nodes_written_total",
    "Merkle-radix nodes produced by state updates (to be stored with their block).",
    registry=REGISTRY,
)
STATE_NODE_READS_TOTAL = Counter(
    "tl_state_node_reads_total",
    "Merkle-radix nodes read from storage because they were not in the node cache.",
    registry=REGISTRY,
)

# --- processing: handlers and schedulers ----------------------------------------------------
# ``family`` labels are registered family names only (unknown ones count as "unknown"), so a
# client cannot grow the label set by inventing families.

PROCESSING_TRANSACTIONS_TOTAL = Counter(
    "tl_processing_transactions_total",
    "Transactions executed, by family and result (valid, invalid).",
    ["family", "result"],
    registry=REGISTRY,
)
PROCESSING_TRANSACTION_SECONDS = Histogram(
    "tl_processing_transaction_seconds",
    "Time one handler spent applying one transaction (retries included), by family.",
    ["family"],
    # Built-in handlers take 20-200 us; external processors add a ZMQ round trip or five.
    buckets=(0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0),
    registry=REGISTRY,
)
PROCESSING_HANDLER_RETRIES_TOTAL = Counter(
    "tl_processing_handler_retries_total",
    "Handler calls repeated because the handler raised InternalError, by family.",
    ["family"],
    registry=REGISTRY,
)
PROCESSING_BLOCK_SECONDS = Histogram(
    "tl_processing_block_seconds",
    "Time to execute one block's batches and compute its state root, by scheduler.",
    ["scheduler"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)
PROCESSING_SCHEDULER_PARALLELISM = Histogram(
    "tl_processing_scheduler_parallelism",
    "Transactions in flight when the parallel scheduler starts one more (1 = no overlap).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
    registry=REGISTRY,
)

# --- processing: external processors over ZMQ (issue 5) --------------------------------------
# ``family`` labels are families that registered (at most ``families_max`` per registry).

PROCESSOR_REQUESTS_TOTAL = Counter(
    "tl_processor_requests_total",
    "TP_PROCESS requests answered or abandoned, by family and result (ok, invalid, "
    "internal_error, unavailable, busy).",
    ["family", "result"],
    registry=REGISTRY,
)
PROCESSOR_REQUEST_SECONDS = Histogram(
    "tl_processor_request_seconds",
    "Time from TP_PROCESS sent to its response (state round trips included), by family.",
    ["family"],
    # A loopback round trip is ~100 us; a handler doing a few state calls ~1 ms.
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0, 30.0),
    registry=REGISTRY,
)
PROCESSOR_REGISTERED = Gauge(
    "tl_processor_registered",
    "External processors registered (one per connection and family version), by family.",
    ["family"],
    registry=REGISTRY,
)
PROCESSOR_REDISPATCH_TOTAL = Counter(
    "tl_processor_redispatch_total",
    "Transactions sent again to another processor because theirs was dropped, by family.",
    ["family"],
    registry=REGISTRY,
)

# --- api: the REST API ------------------------------------------------------------------------
# ``route`` labels are route templates from the API's route table ("/blocks/{block_id}"), or
# "unmatched": a client cannot grow the label set by requesting invented paths.

API_REQUESTS_TOTAL = Counter(
    "tl_api_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "tl_api_request_seconds",
    "Time to answer one HTTP request, by route template (long-polls include their wait).",
    ["route"],
    # Reads take ~1 ms; a submission decodes and verifies (~50 us per transaction) and syncs
    # the pool (~1 ms); /batch_statuses?wait holds up to 60 s.
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 60.0),
    registry=REGISTRY,
)
API_BATCHES_TOTAL = Counter(
    "tl_api_batches_total",
    "Batches submitted through POST /batches, by result (accepted, invalid, pool_full).",
    ["result"],
    registry=REGISTRY,
)

# --- network: the authenticated peer transport (issue 6) -------------------------------------
# ``reason`` labels come from closed sets in ``network.peer`` (never from peer input).

NETWORK_PEERS_CONNECTED = Gauge(
    "tl_network_peers_connected",
    "Peer connections with a completed handshake, by role (initiator, responder).",
    ["role"],
    registry=REGISTRY,
)
NETWORK_HANDSHAKES_TOTAL = Counter(
    "tl_network_handshakes_total",
    "Handshakes completed, by role (initiator, responder).",
    ["role"],
    registry=REGISTRY,
)
NETWORK_HANDSHAKE_FAILURES_TOTAL = Counter(
    "tl_network_handshake_failures_total",
    "Handshakes that failed, by role and reason (timeout, malformed, bad_signature, "
    "not_admitted, ...).",
    ["role", "reason"],
    registry=REGISTRY,
)
NETWORK_HANDSHAKE_SECONDS = Histogram(
    "tl_network_handshake_seconds",
    "Time from TCP connect to a completed handshake (one HSM signature per side included).",
    ["role"],
    # Loopback with software keys: ~1 ms; an HSM signature adds 0.1-5 ms, a WAN 3 RTTs.
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)
NETWORK_BYTES_TOTAL = Counter(
    "tl_network_bytes_total",
    "Bytes on peer connections after the handshake, frame headers and tags included, by "
    "direction (in, out).",
    ["direction"],
    registry=REGISTRY,
)
NETWORK_MESSAGES_TOTAL = Counter(
    "tl_network_messages_total",
    "Application messages on peer connections, by direction and message type.",
    ["direction", "type"],
    registry=REGISTRY,
)
NETWORK_DISCONNECTS_TOTAL = Counter(
    "tl_network_disconnects_total",
    "Established peer connections closed, by reason (local_close, remote_closed, "
    "auth_failed, protocol_violation, outbound_queue_full, ...).",
    ["reason"],
    registry=REGISTRY,
)

# --- consensus: the BFT driver (node/bft*.py, issue 6) ---------------------------------------
# ``kind`` labels: proposal, prevote, precommit; ``reason`` labels come from a closed set in
# node/bft*.py (never from peer input).

CONSENSUS_HEIGHT = Gauge(
    "tl_consensus_height",
    "The height the consensus machine is deciding (the committed head + 1).",
    registry=REGISTRY,
)
CONSENSUS_ROUND = Gauge(
    "tl_consensus_round",
    "The consensus round at the current height.",
    registry=REGISTRY,
)
CONSENSUS_ROUND_CHANGES_TOTAL = Counter(
    "tl_consensus_round_changes_total",
    "Rounds started above round 0 (a timeout or f+1 members ahead): each is a failed round.",
    registry=REGISTRY,
)
CONSENSUS_DECISIONS_TOTAL = Counter(
    "tl_consensus_decisions_total",
    "Heights decided and committed by this node's consensus driver.",
    registry=REGISTRY,
)
CONSENSUS_MESSAGES_TOTAL = Counter(
    "tl_consensus_messages_total",
    "Consensus messages, by direction (in, out), kind (proposal, prevote, precommit) and "
    "result (accepted, sent, dropped reasons: malformed, not_member, bad_signature, ...).",
    ["direction", "kind", "result"],
    registry=REGISTRY,
)
CONSENSUS_MISBEHAVIOUR_TOTAL = Counter(
    "tl_consensus_misbehaviour_reports_total",
    "Members caught signing two different messages at one (height, round, step).",
    registry=REGISTRY,
)

# --- node: the consortium (peer mesh, batch gossip, catch-up; docs/consortium.md) ------------

CONSORTIUM_PEERS_CONNECTED = Gauge(
    "tl_consortium_peers_connected",
    "Members this node has a live connection with (of the members file's n - 1).",
    registry=REGISTRY,
)
CONSORTIUM_GOSSIP_BATCHES_TOTAL = Counter(
    "tl_consortium_gossip_batches_total",
    "Batches gossiped, by direction (out, in) and result (sent, accepted, duplicate, "
    "invalid, rejected, pool_full, dropped).",
    ["direction", "result"],
    registry=REGISTRY,
)
CONSORTIUM_CATCHUP_BLOCKS_TOTAL = Counter(
    "tl_consortium_catchup_blocks_total",
    "Blocks handled by catch-up, by result (committed, served, rejected).",
    ["result"],
    registry=REGISTRY,
)
CONSORTIUM_PEER_FAULTS_TOTAL = Counter(
    "tl_consortium_peer_faults_total",
    "Peers disconnected by this node for what they sent, by reason.",
    ["reason"],
    registry=REGISTRY,
)

# --- operations (issue 7): committed work and readiness -------------------------------------

CHAIN_COMMITTED_TRANSACTIONS_TOTAL = Counter(
    "tl_chain_committed_transactions_total",
    "Transactions in blocks committed to this node's chain (valid and invalid alike: each is "
    "final with a receipt or an INVALID status), counted once per block at its commit.",
    registry=REGISTRY,
)
CHAIN_COMMITTED_BATCHES_TOTAL = Counter(
    "tl_chain_committed_batches_total",
    "Batches in blocks committed to this node's chain, counted once per block at its commit.",
    registry=REGISTRY,
)
NODE_READY = Gauge(
    "tl_node_ready",
    "1 while the readiness check of that name passes, 0 while it fails (GET /readyz lists "
    "the checks); updated on every GET /readyz and GET /metrics.",
    ["check"],
    registry=REGISTRY,
)

# --- node: key-usage trail anchoring (issue 7; node/anchoring.py, docs/custody.md §8.4) -----

AUDIT_ANCHOR_AGE_SECONDS = Gauge(
    "tl_audit_anchor_age_seconds",
    "Seconds since this node's last anchor of its key-usage trail was committed (since the "
    "process started, until its first one commits).",
    registry=REGISTRY,
)
AUDIT_ANCHORS_TOTAL = Counter(
    "tl_audit_anchors_total",
    "This node's trail anchors, by result (submitted, committed, rejected, failed, skipped).",
    ["result"],
    registry=REGISTRY,
)

# --- node: on-line backups (node/backup.py, node/control.py, docs/operations.md §8) ---------

NODE_BACKUPS_TOTAL = Counter(
    "tl_node_backups_total",
    "Backups this node was asked for over its control socket, by result (ok, failed).",
    ["result"],
    registry=REGISTRY,
)
NODE_BACKUP_LAST_SUCCESS_TIMESTAMP = Gauge(
    "tl_node_backup_last_success_timestamp_seconds",
    "Unix time of this node's last successful backup (0: none since the process started).",
    registry=REGISTRY,
)
