"""The API's route table: every route with its parameters, body and response schemas.

``ApiServer`` fills the aiohttp router from this table and ``openapi.openapi_document``
writes the OpenAPI document from it, so what is served and what is documented cannot differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trusted_ledger.api import params as p
from trusted_ledger.api import render as r
from trusted_ledger.api.explorer import explorer_routes
from trusted_ledger.api.http_common import JSON, OCTET_STREAM
from trusted_ledger.api.openapi import Body, Route
from trusted_ledger.api.proofs import proof_routes
from trusted_ledger.chain import BatchStatus

if TYPE_CHECKING:
    from trusted_ledger.api.app import Handlers


_IDS_BODY = Body(JSON, "A JSON array of ids (as for ``id``).", r.array(r.ID))
_STATUS_SCHEMA = r.obj(
    {
        "id": r.ID,
        "status": {"type": "string", "enum": [status.value for status in BatchStatus]},
        "invalid_transactions": r.array(
            r.obj({"id": r.STRING, "message": r.STRING, "extended_data": r.STRING})
        ),
        "block_id": r.BLOCK_ID,
        "block_num": r.INTEGER,
        "waiting": r.STRING,
    },
    optional=["block_id", "block_num", "waiting"],
)
_STATUSES_SCHEMA = r.obj({"data": r.array(_STATUS_SCHEMA), "link": r.LINK})
_LOCATED = {"block_id": r.BLOCK_ID, "block_num": r.INTEGER, "link": r.LINK}
_RECEIPTS_SCHEMA = r.obj({"data": r.array(r.RECEIPT_SCHEMA), "link": r.LINK})
_STATUS_DATA = r.obj(
    {
        "chain_id": r.STRING,
        "version": r.STRING,
        "node": r.obj({"public_key": r.hex_string(), "fingerprint": r.BLOCK_ID}),
        "head": {
            **r.obj(
                {
                    "block_num": r.INTEGER,
                    "block_id": r.BLOCK_ID,
                    "state_root": r.BLOCK_ID,
                    "timestamp_ms": r.INTEGER,
                }
            ),
            "type": ["object", "null"],
        },
        "pending_batches": r.INTEGER,
        "pending_bytes": r.INTEGER,
        "scheduler": {"type": "string", "enum": ["serial", "parallel"]},
        "processors": r.array(
            r.obj(
                {
                    "family": r.STRING,
                    "version": r.STRING,
                    "namespaces": r.array(r.STRING),
                    "max_occupancy": r.INTEGER,
                    "in_flight": r.INTEGER,
                    "dispatched": r.INTEGER,
                }
            )
        ),
        "consensus": r.obj(
            {
                "mode": r.STRING,
                "height": {"type": ["integer", "null"]},
                "round": {"type": ["integer", "null"]},
                "peers_connected": r.INTEGER,
                "members": r.INTEGER,
            }
        ),
    },
    optional=["consensus"],
)


_READINESS_SCHEMA = r.obj(
    {
        "data": r.obj(
            {
                "ready": {"type": "boolean"},
                "failing": r.array(r.STRING),
                "checks": r.array(
                    r.obj({"name": r.STRING, "ok": {"type": "boolean"}, "detail": r.STRING})
                ),
            }
        ),
        "link": r.LINK,
    }
)
READYZ_PATH = "/readyz"


def document_readiness(document: dict[str, object]) -> None:
    """``/readyz`` answers 503 with its own body (the failing checks), not the error shape:
    say so in the OpenAPI document built from the table."""
    paths = document["paths"]
    assert isinstance(paths, dict)
    paths[READYZ_PATH]["get"]["responses"]["503"] = {
        "description": "Service Unavailable: at least one check fails (listed in failing)",
        "content": {JSON: {"schema": _READINESS_SCHEMA}},
    }


def route_table(h: Handlers) -> list[Route]:
    """Every route the API serves; the router and the OpenAPI document both come from here."""
    return [
        Route(
            "POST", "/batches", h.post_batches, "submitBatches",
            "Submit a serialized BatchList; all or nothing.",
            response=r.obj({"link": r.LINK}), status=202,
            body=Body(OCTET_STREAM, "A serialized BatchList (docs/formats.md §4)."),
            errors=(400, 403, 413, 415, 429, 503),
        ),
        Route(
            "GET", "/batch_statuses", h.get_batch_statuses, "getBatchStatuses",
            "Statuses of batches, optionally waiting until each is final.",
            (p.IDS, p.WAIT), _STATUSES_SCHEMA, errors=(400, 503),
        ),
        Route(
            "POST", "/batch_statuses", h.post_batch_statuses, "postBatchStatuses",
            "Statuses of a long list of batches.", (p.WAIT,), _STATUSES_SCHEMA,
            body=_IDS_BODY, errors=(400, 413, 415, 503),
        ),
        Route(
            "GET", "/state", h.get_state, "listState", "State entries under a prefix, paged.",
            (p.STATE_PREFIX, p.HEAD, p.STATE_START, p.LIMIT),
            r.obj(
                {
                    "data": r.array(r.obj({"address": r.ADDRESS, "data": r.BASE64})),
                    "head": r.BLOCK_ID, "link": r.LINK, "paging": r.paging_schema(r.ADDRESS),
                }
            ),
        ),
        Route(
            "GET", "/state/{address}", h.get_state_address, "getState",
            "The value at one address.", (p.ADDRESS_PATH, p.HEAD),
            r.obj({"data": r.BASE64, "head": r.BLOCK_ID, "link": r.LINK}),
        ),
        Route(
            "GET", "/blocks", h.get_blocks, "listBlocks", "Committed blocks, paged.",
            (p.BLOCK_START, p.LIMIT, p.REVERSE),
            r.obj(
                {
                    "data": r.array(r.BLOCK_SCHEMA), "head": r.BLOCK_ID, "link": r.LINK,
                    "paging": r.paging_schema(r.INTEGER),
                }
            ),
        ),
        Route(
            "GET", "/blocks/{block_id}", h.get_block, "getBlock",
            "One block, rendered or (format=raw) as stored.", (p.BLOCK_ID_PATH, p.BLOCK_FORMAT),
            r.obj({"data": r.BLOCK_SCHEMA, "link": r.LINK}),
            extra_content={OCTET_STREAM: "format=raw: docs/formats.md §6.3"},
        ),
        Route(
            "GET", "/blocks/num/{block_num}", h.get_block_by_num, "getBlockByNum",
            "One block by number.", (p.BLOCK_NUM_PATH, p.BLOCK_FORMAT),
            r.obj({"data": r.BLOCK_SCHEMA, "link": r.LINK}),
            extra_content={OCTET_STREAM: "format=raw: docs/formats.md §6.3"},
        ),
        Route(
            "GET", "/batches/{batch_id}", h.get_batch, "getBatch", "One committed batch.",
            (p.BATCH_ID_PATH,), r.obj({"data": r.BATCH_SCHEMA, **_LOCATED}),
        ),
        Route(
            "GET", "/transactions/{transaction_id}", h.get_transaction, "getTransaction",
            "One committed transaction.", (p.TRANSACTION_ID_PATH,),
            r.obj({"data": r.TRANSACTION_SCHEMA, **_LOCATED}),
        ),
        Route(
            "GET", "/receipts", h.get_receipts, "getReceipts",
            "Receipts of committed transactions.", (p.IDS,), _RECEIPTS_SCHEMA,
        ),
        Route(
            "POST", "/receipts", h.post_receipts, "postReceipts",
            "Receipts of a long list of transactions.", (), _RECEIPTS_SCHEMA,
            body=_IDS_BODY, errors=(400, 404, 413, 415, 503),
        ),
        Route(
            "GET", "/status", h.get_status, "getStatus", "This node: chain, head, pool.",
            response=r.obj({"data": _STATUS_DATA, "link": r.LINK}), errors=(),
            always_served=True,
        ),
        Route(
            "GET", "/healthz", h.get_healthz, "getHealthz",
            "Liveness: the process and its event loop answer.",
            response=r.obj({"data": r.obj({"alive": {"type": "boolean"}}), "link": r.LINK}),
            errors=(), always_served=True,
        ),
        Route(
            "GET", READYZ_PATH, h.get_readyz, "getReadyz",
            "Readiness: every named check (api, chain, custody, publisher or consensus, "
            "peers) passes; 503 lists the failing ones.",
            response=_READINESS_SCHEMA, errors=(503,), always_served=True,
        ),
        Route(
            "GET", "/metrics", h.get_metrics, "getMetrics", "Prometheus text exposition.",
            content_type="text/plain", errors=(), always_served=True,
        ),
        Route(
            "GET", "/openapi.json", h.get_openapi, "getOpenApi", "This document.",
            response={"type": "object"}, errors=(), always_served=True,
        ),
        *proof_routes(h.services, h._run),  # /proofs/... (docs/formats.md §8)
        *explorer_routes(),  # the web page and its assets (docs/explorer.md)
    ]  # fmt: skip
