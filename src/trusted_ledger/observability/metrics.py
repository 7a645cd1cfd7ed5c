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
    "PKCS#11 sessions currently executing a call on a module's owner thread.",
    ["module"],
    registry=REGISTRY,
)
CUSTODY_QUEUE_DEPTH = Gauge(
    "tl_custody_queue_depth",
    "Calls waiting for a module's owner thread.",
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
CUSTODY_AUDIT_RECORDS_TOTAL = Counter(
    "tl_custody_audit_records_total",
    "Key-usage audit records appended, by kind.",
    ["kind"],
    registry=REGISTRY,
)
