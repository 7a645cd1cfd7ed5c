"""The REST API's handlers and the one route table that serves and documents them.

Heavy work never runs on the event loop: decoding and verifying a batch list (~50 us per
transaction), the pool's synced write (~1 ms), listings and block decoding go to the API's
thread pool; the loop only parses parameters and writes answers. Errors become the JSON
error shape of docs/api.md in one place (``http_common.error_middleware``), so a handler
simply raises the error class that names its HTTP status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from itertools import islice
from typing import Any, TypeVar

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trusted_ledger._version import __version__
from trusted_ledger.api import params as p
from trusted_ledger.api import render as r
from trusted_ledger.api.health import client_identity, readiness_checks, readyz_response
from trusted_ledger.api.http_common import (
    OCTET_STREAM,
    ROUTE_KEY,
    ApiState,
    error_middleware,
    read_body,
    read_json_ids,
    require_content_type,
    retry_after_seconds,
)
from trusted_ledger.api.openapi import Handler, Route, openapi_document
from trusted_ledger.api.routes import document_readiness, route_table
from trusted_ledger.api.services import (
    BlockReader,
    CommittedOrPendingTransactions,
    NodeServices,
    ReadinessCheck,
)
from trusted_ledger.api.tls import ClientAccess
from trusted_ledger.chain import BatchStatus, Block, ChainHead, Membership, batch_status
from trusted_ledger.chain.membership import MembershipSchedule
from trusted_ledger.custody import PublicKey
from trusted_ledger.errors import (
    BatchListFault,
    InternalError,
    NodeNotReady,
    PoolFull,
    RequestInvalid,
    ResourceNotFound,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    API_BATCHES_TOTAL,
    REGISTRY,
)
from trusted_ledger.txn import BatchList, check_against_chain, decode_batch_list

T = TypeVar("T")
_log = get_logger("api")

status_recheck_seconds = 0.5
"""A long-poll re-reads statuses at least this often, in case a commit's wake-up was missed
(or a batch turned INVALID, which the publisher reports through the pool, not a wake-up)."""


class Handlers:
    """The handlers over one node's services; ``routes()`` is the table of them."""

    def __init__(self, services: NodeServices, state: ApiState, executor: Executor) -> None:
        self.services = services
        self.state = state
        self._executor = executor
        self._reader = BlockReader(services.store)
        # Which members' keys certify each height (on-chain ``tl.consensus.members``; without
        # one, this node's key): lets certificates name every vote's key, not just ours.
        self._memberships = MembershipSchedule(
            services.store, Membership([services.node_public_key])
        )
        self.routes = self._route_table()
        self.document = openapi_document(self.routes)
        document_readiness(self.document)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _head(self) -> ChainHead:
        head = self.services.store.head
        if head is None:
            raise NodeNotReady("the node has no genesis block yet")
        return head

    # --- POST /batches -----------------------------------------------------------------------

    def _accept(self, body: bytes) -> BatchList:
        """Decode, verify and check the list, then queue it all or nothing (worker thread)."""
        services = self.services
        try:
            batch_list = decode_batch_list(body, services.limits)
        except BatchListFault:
            API_BATCHES_TOTAL.labels("invalid").inc()
            raise
        count = len(batch_list.batches)
        try:
            view = CommittedOrPendingTransactions(
                services.store, services.pool, batch_list.transaction_ids
            )
            check_against_chain(batch_list, view)
        except BatchListFault:
            API_BATCHES_TOTAL.labels("invalid").inc(count)
            raise
        try:
            services.pool.add_many(batch_list.batches, services.clock_ms())
        except PoolFull:
            API_BATCHES_TOTAL.labels("pool_full").inc(count)
            raise
        API_BATCHES_TOTAL.labels("accepted").inc(count)
        return batch_list

    async def post_batches(self, request: web.Request) -> web.Response:
        require_content_type(request, OCTET_STREAM)
        body = await read_body(request, self.services.limits.batch_list_bytes_max)
        batch_list = await self._run(self._accept, body)
        try:
            self.services.wake_publisher()
        except Exception:
            # The batches are durably queued, so the answer is still 202: the publisher
            # also cuts blocks on its interval, and a 5xx would only invite a resubmission.
            _log.exception("api_wake_publisher_failed")
        try:
            self.services.on_accepted(body)
        except Exception:
            # Gossip is best effort: the batches are in this node's pool and it proposes
            # them at its turn.
            _log.exception("api_on_accepted_failed")
        ids = ",".join(batch.header_signature for batch in batch_list.batches)
        link = f"{request.url.origin()}/batch_statuses?id={ids}"
        return web.json_response({"link": link}, status=202)

    # --- batch statuses ----------------------------------------------------------------------

    def _status_reports(self, ids: Sequence[str]) -> list[r.Json]:
        store, pool = self.services.store, self.services.pool
        reports = []
        for batch_id in ids:
            report = batch_status(batch_id, store, pool)
            entry: r.Json = {"id": batch_id, "status": report.status.value}
            invalid = []
            if report.status is BatchStatus.INVALID:
                invalid = [
                    {
                        "id": report.transaction_id,
                        "message": report.reason or "",
                        "extended_data": "",
                    }
                ]
            entry["invalid_transactions"] = invalid
            if report.status is BatchStatus.PENDING and report.reason:
                entry["waiting"] = report.reason
            if report.block_id is not None:
                header = self._reader.header(report.block_id)
                if header is None:  # indexed in the block's own write: a broken store
                    raise InternalError(f"batch {batch_id} is indexed to a missing block")
                entry["block_id"] = report.block_id.hex()
                entry["block_num"] = header.number
            reports.append(entry)
        return reports

    async def _statuses(self, request: web.Request, ids: list[str]) -> web.Response:
        wait = p.WAIT.get(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        final = {BatchStatus.COMMITTED.value, BatchStatus.INVALID.value}
        while True:
            generation = self.state.commits.generation
            reports = await self._run(self._status_reports, ids)
            remaining = deadline - loop.time()
            done = all(report["status"] in final for report in reports)
            if done or remaining <= 0 or self.state.stopping:
                return web.json_response({"data": reports, "link": str(request.url)})
            await self.state.commits.wait(generation, min(remaining, status_recheck_seconds))

    async def get_batch_statuses(self, request: web.Request) -> web.Response:
        return await self._statuses(request, p.IDS.get(request))

    async def post_batch_statuses(self, request: web.Request) -> web.Response:
        return await self._statuses(request, await read_json_ids(request))

    # --- state -------------------------------------------------------------------------------

    def _root_at(self, head_param: str | None) -> tuple[bytes, bytes]:
        """(block id, state root) of the ``head`` parameter, or of the chain head."""
        if head_param is None:
            head = self._head()
            return head.block_id, head.state_root
        block_id = bytes.fromhex(head_param)
        header = self._reader.header(block_id)
        if header is None:
            raise ResourceNotFound(f"head: no committed block {head_param}")
        return block_id, header.state_root

    def _state_page(
        self, head: str | None, prefix: str, start: str | None, limit: int
    ) -> tuple[bytes, list[tuple[str, bytes]]]:
        block_id, root = self._root_at(head)
        entries = self.services.store.state.view(root).items(prefix, start)
        return block_id, list(islice(entries, limit + 1))

    async def get_state(self, request: web.Request) -> web.Response:
        head, start, limit = p.HEAD.get(request), p.STATE_START.get(request), p.LIMIT.get(request)
        prefix = p.STATE_PREFIX.get(request) or ""
        block_id, entries = await self._run(self._state_page, head, prefix, start, limit)
        paging: r.Json = {"start": start, "limit": limit}
        if len(entries) > limit:
            next_position = entries[limit][0]
            paging["next_position"] = next_position
            paging["next"] = str(request.url.update_query(start=next_position))
        data = [{"address": address, "data": r.b64(value)} for address, value in entries[:limit]]
        return web.json_response(
            {"data": data, "head": block_id.hex(), "link": str(request.url), "paging": paging}
        )

    async def get_state_address(self, request: web.Request) -> web.Response:
        address = p.ADDRESS_PATH.get(request)
        block_id, root = await self._run(self._root_at, p.HEAD.get(request))
        value = await self._run(lambda: self.services.store.state.view(root).get(address))
        if value is None:
            raise ResourceNotFound(f"address: no value is stored at {address}")
        return web.json_response(
            {"data": r.b64(value), "head": block_id.hex(), "link": str(request.url)}
        )

    # --- blocks ------------------------------------------------------------------------------

    def _render_block(self, block: Block) -> r.Json:
        certificate = self.services.store.certificate(block.id)
        if certificate is None:  # committed in the same write as the block: a broken store
            raise InternalError(f"block {block.id.hex()} has no stored certificate")
        services = self.services
        return r.render_block(
            block,
            certificate,
            (services.node_public_key, services.current_key(), *self._members_of(block)),
        )

    def _members_of(self, block: Block) -> tuple[PublicKey, ...]:
        """The keys of the membership that certified ``block`` (genesis: the founders its
        own state names, as ``net init`` writes them)."""
        if block.number == 0:
            return self._memberships.at_root(block.header.state_root).keys
        return self._memberships.at(block.number).keys

    def _block_page(self, numbers: Sequence[int]) -> list[r.Json]:
        rendered = []
        for number in numbers:
            block = self._reader.block_at(number)
            if block is not None:
                rendered.append(self._render_block(block))
        return rendered

    async def get_blocks(self, request: web.Request) -> web.Response:
        start, limit, reverse = (
            p.BLOCK_START.get(request),
            p.LIMIT.get(request),
            p.REVERSE.get(request),
        )
        head = self._head()
        if reverse:
            first = head.number if start is None else min(start, head.number)
            numbers = list(range(first, max(first - limit, -1), -1))
            following = first - limit
        else:
            first = 0 if start is None else start
            numbers = list(range(first, min(first + limit, head.number + 1)))
            following = first + limit if first + limit <= head.number else -1
        data = await self._run(self._block_page, numbers)
        paging: r.Json = {"start": start, "limit": limit}
        if following >= 0:
            paging["next_position"] = following
            paging["next"] = str(request.url.update_query(start=following))
        return web.json_response(
            {"data": data, "head": head.block_id.hex(), "link": str(request.url), "paging": paging}
        )

    async def _one_block(
        self, request: web.Request, block_id: bytes | None, what: str
    ) -> web.StreamResponse:
        if p.BLOCK_FORMAT.get(request) == "raw":
            data = None if block_id is None else self.services.store.block_bytes(block_id)
            if data is None:
                raise ResourceNotFound(f"no committed block {what}")
            return web.Response(body=data, content_type=OCTET_STREAM)
        block = None if block_id is None else await self._run(self._reader.block, block_id)
        if block is None:
            raise ResourceNotFound(f"no committed block {what}")
        rendered = await self._run(self._render_block, block)
        return web.json_response({"data": rendered, "link": str(request.url)})

    async def get_block(self, request: web.Request) -> web.StreamResponse:
        block_id = p.BLOCK_ID_PATH.get(request)
        return await self._one_block(request, bytes.fromhex(block_id), block_id)

    async def get_block_by_num(self, request: web.Request) -> web.StreamResponse:
        number = p.BLOCK_NUM_PATH.get(request)
        block_id = self.services.store.block_id_at(number)
        return await self._one_block(request, block_id, f"number {number}")

    # --- batches, transactions, receipts -----------------------------------------------------

    def _containing_block(self, block_id: bytes | None, what: str) -> Block:
        block = None if block_id is None else self._reader.block(block_id)
        if block is None:
            raise ResourceNotFound(
                f"{what} is not committed (a pending one is reported by /batch_statuses)"
            )
        return block

    def _find_batch(self, batch_id: str) -> tuple[r.Json, Block]:
        block = self._containing_block(
            self.services.store.block_id_of_batch(batch_id), f"batch {batch_id}"
        )
        batch = next(b for b in block.batches if b.header_signature == batch_id)
        return r.render_batch(batch), block

    def _find_transaction(self, transaction_id: str) -> tuple[r.Json, Block]:
        block_id = self.services.store.block_id_of_transaction(transaction_id)
        block = self._containing_block(block_id, f"transaction {transaction_id}")
        transaction = next(
            t for b in block.batches for t in b.transactions if t.header_signature == transaction_id
        )
        return r.render_transaction(transaction), block

    @staticmethod
    def _located(request: web.Request, found: tuple[r.Json, Block]) -> web.Response:
        rendered, block = found
        return web.json_response(
            {
                "data": rendered,
                "block_id": block.id.hex(),
                "block_num": block.number,
                "link": str(request.url),
            }
        )

    async def get_batch(self, request: web.Request) -> web.Response:
        found = await self._run(self._find_batch, p.BATCH_ID_PATH.get(request))
        return self._located(request, found)

    async def get_transaction(self, request: web.Request) -> web.Response:
        found = await self._run(self._find_transaction, p.TRANSACTION_ID_PATH.get(request))
        return self._located(request, found)

    def _receipts(self, ids: Sequence[str]) -> list[r.Json]:
        rendered = []
        for transaction_id in ids:
            encoded = self.services.store.receipt(transaction_id)
            if encoded is None:
                raise ResourceNotFound(
                    f"id: no receipt for transaction {transaction_id} (not committed)"
                )
            rendered.append(r.render_receipt(encoded))
        return rendered

    async def get_receipts(self, request: web.Request) -> web.Response:
        data = await self._run(self._receipts, p.IDS.get(request))
        return web.json_response({"data": data, "link": str(request.url)})

    async def post_receipts(self, request: web.Request) -> web.Response:
        data = await self._run(self._receipts, await read_json_ids(request))
        return web.json_response({"data": data, "link": str(request.url)})

    # --- node --------------------------------------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        services = self.services
        head = services.store.head
        rendered_head = None if head is None else {
            "block_num": head.number,
            "block_id": head.block_id.hex(),
            "state_root": head.state_root.hex(),
            "timestamp_ms": head.timestamp_ms,
        }  # fmt: skip
        key = services.current_key()
        data: dict[str, object] = {
            "chain_id": services.store.chain_id,
            "version": __version__,
            "node": {"public_key": key.spki_der.hex(), "fingerprint": key.fingerprint},
            "head": rendered_head,
            "pending_batches": len(services.pool),
            "pending_bytes": services.pool.byte_size,
            "scheduler": services.scheduler_name,
            "processors": [
                {
                    "family": p.family,
                    "version": p.version,
                    "namespaces": list(p.namespaces),
                    "max_occupancy": p.max_occupancy,
                    "in_flight": p.in_flight,
                    "dispatched": p.dispatched,
                }
                for p in services.processors()
            ],
        }
        consensus = services.consensus()
        if consensus is not None:
            data["consensus"] = {
                "mode": "bft",
                "height": consensus.height,
                "round": consensus.round,
                "peers_connected": consensus.peers_connected,
                "members": consensus.members,
            }
        return web.json_response({"data": data, "link": str(request.url)})

    def readiness(self) -> list[ReadinessCheck]:
        return readiness_checks(self.services, self.state.ready and not self.state.stopping)

    async def get_healthz(self, request: web.Request) -> web.Response:
        # Answered on the event loop itself: an answer proves the process and its loop live.
        return web.json_response({"data": {"alive": True}, "link": str(request.url)})

    async def get_readyz(self, request: web.Request) -> web.Response:
        return readyz_response(self.readiness(), str(request.url), retry_after_seconds)

    async def get_metrics(self, request: web.Request) -> web.Response:
        self.readiness()  # so that tl_node_ready is current in every scrape
        return web.Response(
            body=generate_latest(REGISTRY), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST}
        )

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self.document)

    def _route_table(self) -> list[Route]:
        return route_table(self)


def build_app(
    services: NodeServices,
    state: ApiState,
    executor: Executor,
    access: ClientAccess | None = None,
) -> tuple[web.Application, Handlers]:
    """An aiohttp application serving exactly ``Handlers.routes``."""
    handlers = Handlers(services, state, executor)
    app = web.Application(
        middlewares=[error_middleware], client_max_size=services.limits.batch_list_bytes_max
    )
    for route in handlers.routes:
        app.router.add_route(
            route.method, route.path, _gate(route, state, services, access or ClientAccess())
        )
    return app, handlers


def _gate(route: Route, state: ApiState, services: NodeServices, access: ClientAccess) -> Handler:
    """The route's handler behind the checks every route shares: client access (403, only
    when ``api.write_clients`` / ``read_clients`` are set), readiness (503) and unknown query
    parameters (400, so a misspelt ``limt`` is not silently ignored)."""
    allowed = route.query_names

    async def gated(request: web.Request) -> web.StreamResponse:
        request[ROUTE_KEY] = route.path
        if access.restricts:
            access.check(route.method, route.path, client_identity(request))
        if not route.always_served:
            if not state.ready or state.stopping:
                raise NodeNotReady("the node is not ready (catching up or shutting down)")
            if services.store.head is None:
                raise NodeNotReady("the node has no genesis block yet")
        unknown = sorted(set(request.query) - allowed)
        if unknown:
            listed = ", ".join(sorted(allowed)) or "none"
            raise RequestInvalid(
                f"unknown query parameter; this route takes: {listed}", parameter=unknown[0]
            )
        return await route.handler(request)

    return gated
