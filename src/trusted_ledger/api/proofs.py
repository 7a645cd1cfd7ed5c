"""``/proofs/...``: proof documents (docs/formats.md §8) for batches, transactions, state
values and the node's key-usage audit trail, each checkable offline with
``chain.proof_verify`` (``trusted-ledger proof verify``) or in a browser.

Building a proof reads blocks and state nodes (and the audit trail file), so it runs on the
API's thread pool, never on the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiohttp import web

from trusted_ledger.api import params as p
from trusted_ledger.api import render as r
from trusted_ledger.api.openapi import Param, Route
from trusted_ledger.api.services import NodeServices
from trusted_ledger.chain.proof_verify import (
    BATCH_PROOF_TYPE,
    PROOF_VERSION,
    STATE_PROOF_TYPE,
    TRANSACTION_PROOF_TYPE,
)
from trusted_ledger.chain.proofs import batch_proof, state_proof, transaction_proof
from trusted_ledger.custody.audit_proof import AUDIT_PROOF_TYPE, build_audit_proof
from trusted_ledger.errors import RequestInvalid, ResourceNotFound

T = TypeVar("T")
_DECIMAL = re.compile(r"[0-9]{1,20}")


class Runner(Protocol):
    """Runs a blocking function on the API's thread pool (``Handlers._run``)."""

    def __call__(self, function: Callable[..., T], *args: Any) -> Awaitable[T]: ...


def _optional_uint(name: str) -> Callable[[str | None], int | None]:
    def parse(text: str | None) -> int | None:
        if text is None:
            return None
        if not _DECIMAL.fullmatch(text) or int(text) >= 2**64:
            raise RequestInvalid(
                f"{text[:40]!r} is not allowed: give a decimal integer in [0, 2**64)",
                parameter=name,
            )
        return int(text)

    return parse


BLOCK_NUM = Param[int | None](
    "block", "query", "Block number to prove at (default: the chain head).",
    {"type": "integer", "minimum": 0}, _optional_uint("block"),
)  # fmt: skip
FROM_SEQ = Param[int | None](
    "from_seq", "query",
    "Seq of the earlier checkpoint record (default: the checkpoint before to_seq).",
    {"type": "integer", "minimum": 0}, _optional_uint("from_seq"),
)  # fmt: skip
TO_SEQ = Param[int | None](
    "to_seq", "query", "Seq of the later checkpoint record (default: the last checkpoint).",
    {"type": "integer", "minimum": 0}, _optional_uint("to_seq"),
)  # fmt: skip

# --- schemas (docs/formats.md §8) ----------------------------------------------------------

_HASH = r.hex_string(64)
_BLOCK_PART = r.obj(
    {
        "header": r.hex_string(),
        "proposer_signature": r.hex_string(128),
        "certificate": {**r.hex_string(), "type": ["string", "null"]},
    }
)
_INCLUSION = {
    "version": {"type": "integer", "enum": [PROOF_VERSION]},
    "block": _BLOCK_PART,
    "batch_id": r.ID,
    "index": r.INTEGER,
    "tree_size": r.INTEGER,
    "path": r.array(_HASH),
}
BATCH_PROOF_SCHEMA = r.obj({**_INCLUSION, "type": {"type": "string", "enum": [BATCH_PROOF_TYPE]}})
TRANSACTION_PROOF_SCHEMA = r.obj(
    {
        **_INCLUSION,
        "type": {"type": "string", "enum": [TRANSACTION_PROOF_TYPE]},
        "batch_header": r.hex_string(),
        "transaction_id": r.ID,
        "transaction_index": r.INTEGER,
        "transaction_header": r.hex_string(),
    }
)
STATE_PROOF_SCHEMA = r.obj(
    {
        "version": {"type": "integer", "enum": [PROOF_VERSION]},
        "type": {"type": "string", "enum": [STATE_PROOF_TYPE]},
        "block": _BLOCK_PART,
        "address": r.ADDRESS,
        "value": {**r.hex_string(), "type": ["string", "null"]},
        "nodes": r.array(r.hex_string()),
    }
)
_CHECKPOINT_RECORD = r.obj(
    {
        "kind": {"type": "string", "enum": ["checkpoint"]},
        "seq": r.INTEGER,
        "prev": _HASH,
        "time_us": r.INTEGER,
        "hash": _HASH,
        "head_seq": r.INTEGER,
        "head": _HASH,
        "key": _HASH,
        "algorithm": r.STRING,
        "public_key": r.hex_string(),
        "signature": r.hex_string(),
    }
)
AUDIT_PROOF_SCHEMA = r.obj(
    {
        "version": {"type": "integer", "enum": [PROOF_VERSION]},
        "type": {"type": "string", "enum": [AUDIT_PROOF_TYPE]},
        "from": _CHECKPOINT_RECORD,
        "to": _CHECKPOINT_RECORD,
        "records": r.array({"type": "object"}),
    }
)


def _answer(schema: dict[str, Any]) -> dict[str, Any]:
    return r.obj({"data": schema, "link": r.LINK})


class ProofHandlers:
    """The handlers of ``/proofs/...`` over one node's services."""

    def __init__(self, services: NodeServices, run: Runner) -> None:
        self._services = services
        self._run = run

    @staticmethod
    def _found(proof: dict[str, Any] | None, what: str, request: web.Request) -> web.Response:
        if proof is None:
            raise ResourceNotFound(what)
        return web.json_response({"data": proof, "link": str(request.url)})

    async def get_batch_proof(self, request: web.Request) -> web.Response:
        batch_id = p.BATCH_ID_PATH.get(request)
        proof = await self._run(batch_proof, self._services.store, batch_id)
        message = f"batch {batch_id} is not committed (a pending one has no proof yet)"
        return self._found(proof, message, request)

    async def get_transaction_proof(self, request: web.Request) -> web.Response:
        transaction_id = p.TRANSACTION_ID_PATH.get(request)
        proof = await self._run(transaction_proof, self._services.store, transaction_id)
        message = f"transaction {transaction_id} is not committed (a pending one has no proof)"
        return self._found(proof, message, request)

    async def get_state_proof(self, request: web.Request) -> web.Response:
        address, number = p.ADDRESS_PATH.get(request), BLOCK_NUM.get(request)
        proof = await self._run(state_proof, self._services.store, address, number)
        return self._found(proof, f"block: no committed block number {number}", request)

    async def get_audit_proof(self, request: web.Request) -> web.Response:
        first, last = FROM_SEQ.get(request), TO_SEQ.get(request)
        path = self._services.audit_path
        if path is None:
            raise ResourceNotFound("this node keeps no key-usage audit trail to prove")
        proof = await self._run(build_audit_proof, path, first, last)
        return self._found(proof, "no audit proof", request)


def proof_routes(services: NodeServices, run: Runner) -> list[Route]:
    """The ``/proofs/...`` routes, for the API's route table."""
    h = ProofHandlers(services, run)
    return [
        Route(
            "GET", "/proofs/batches/{batch_id}", h.get_batch_proof, "getBatchProof",
            "Proof that a committed batch is in its block (docs/formats.md §8.2).",
            (p.BATCH_ID_PATH,), _answer(BATCH_PROOF_SCHEMA),
        ),
        Route(
            "GET", "/proofs/transactions/{transaction_id}", h.get_transaction_proof,
            "getTransactionProof",
            "Proof that a committed transaction is in its batch and block (§8.3).",
            (p.TRANSACTION_ID_PATH,), _answer(TRANSACTION_PROOF_SCHEMA),
        ),
        Route(
            "GET", "/proofs/state/{address}", h.get_state_proof, "getStateProof",
            "Proof of the value at an address, or of its absence, at a block (§8.4).",
            (p.ADDRESS_PATH, BLOCK_NUM), _answer(STATE_PROOF_SCHEMA),
        ),
        Route(
            "GET", "/proofs/audit", h.get_audit_proof, "getAuditProof",
            "Proof that the node's key-usage trail at one checkpoint extends it at an "
            "earlier one (§8.5).",
            (FROM_SEQ, TO_SEQ), _answer(AUDIT_PROOF_SCHEMA),
        ),
    ]  # fmt: skip
