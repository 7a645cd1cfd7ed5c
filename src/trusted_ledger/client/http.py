"""``LedgerClient``: the node's REST API (docs/api.md) over one kept-alive HTTP connection.

Standard library only (``http.client``), so that the client runs wherever the package is
installed without pulling in an HTTP stack. One connection is reused across calls, which
matters for bulk payments (hundreds of submissions and status polls); when the node has
closed an idle connection the request is sent once more on a fresh one. A client object is
not thread-safe: give each thread its own.

Every non-2xx answer becomes a typed error carrying the node's message (``errors``' client
section), so a caller catches by what it can do: fix the request (``RequestRejected``,
``NotFound``), retry later (``NodeBusy``, ``NodeNotReady``, ``NodeUnreachable``) or report a
bug (``NodeError``).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import http.client
import json
import math
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from trusted_ledger._version import __version__
from trusted_ledger.errors import (
    InvalidInput,
    NodeBusy,
    NodeError,
    NodeNotReady,
    NodeUnreachable,
    NotFound,
    RequestRejected,
    UnexpectedResponse,
)
from trusted_ledger.txn import Batch, BatchList, build_batch_list

DEFAULT_URL = "http://127.0.0.1:8008"
URL_ENV = "TL_URL"
CA_FILE_ENV = "TL_CA_FILE"
CERT_FILE_ENV = "TL_CERT_FILE"
KEY_FILE_ENV = "TL_KEY_FILE"
UNREACHABLE_HINT = "is the node running? (trusted-ledger node run) check --url / $TL_URL"

batch_status_ids_per_request_max = 1000
"""The node's bound on ids per ``/batch_statuses`` request (docs/api.md)."""
get_ids_per_request_max = 15
"""Beyond this many ids a GET URL passes ~2 KB (129 chars per id), past what proxies are
guaranteed to forward; longer lists go in a POST body."""
status_wait_s_max = 60
"""The node caps ``wait`` at 60 s; asking for more only delays our own timeout."""
state_page_entries_max = 1000
progress_poll_s = 1
"""Slice of a status wait when the caller wants progress: the node only answers a wait when
*every* batch is final, so a long wait would show nothing until the very end."""
_poll_pause_s = 0.2
"""Pause when a node answers a wait at once with nothing final (one that ignores ``wait``),
so that polling does not spin."""
_error_body_chars_max = 200

FINAL_STATUSES = frozenset({"COMMITTED", "INVALID"})


@dataclass(frozen=True, slots=True)
class InvalidTransactionReport:
    """Why one transaction of an INVALID batch was rejected."""

    transaction_id: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchStatusReport:
    """One batch's fate as ``/batch_statuses`` reports it."""

    id: str
    status: str
    block_num: int | None = None
    block_id: str | None = None
    invalid_transactions: tuple[InvalidTransactionReport, ...] = ()

    @property
    def is_final(self) -> bool:
        """COMMITTED and INVALID never change again; PENDING and UNKNOWN may."""
        return self.status in FINAL_STATUSES

    @property
    def reason(self) -> str | None:
        """The first invalid transaction's reason (the one the node judged), if INVALID."""
        if self.status != "INVALID":
            return None
        if not self.invalid_transactions:
            return "no reason given"
        return self.invalid_transactions[0].message

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> BatchStatusReport:
        invalid = tuple(
            InvalidTransactionReport(str(t.get("id", "")), str(t.get("message", "")))
            for t in item.get("invalid_transactions") or ()
        )
        block_num = item.get("block_num")
        block_id = item.get("block_id")
        return cls(
            id=str(item["id"]),
            status=str(item["status"]),
            block_num=int(block_num) if block_num is not None else None,
            block_id=str(block_id) if block_id is not None else None,
            invalid_transactions=invalid,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "block_num": self.block_num,
            "block_id": self.block_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class StateEntry:
    address: str
    data: bytes


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """``GET /status`` with the fields the CLI shows; ``raw`` is the whole ``data`` object."""

    chain_id: str
    version: str
    head_block_num: int
    head_block_id: str
    state_root: str
    head_timestamp_ms: int
    pending_batches: int
    pending_bytes: int
    scheduler: str
    node_fingerprint: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeStatus:
        head = data.get("head") or {}
        node = data.get("node") or {}
        return cls(
            chain_id=str(data.get("chain_id", "")),
            version=str(data.get("version", "")),
            head_block_num=int(head.get("block_num", -1)),
            head_block_id=str(head.get("block_id", "")),
            state_root=str(head.get("state_root", "")),
            head_timestamp_ms=int(head.get("timestamp_ms", 0)),
            pending_batches=int(data.get("pending_batches", 0)),
            pending_bytes=int(data.get("pending_bytes", 0)),
            scheduler=str(data.get("scheduler", "")),
            node_fingerprint=str(node.get("fingerprint", "")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110
    §10.2.3). ``None`` when absent or unparseable, so the caller falls back to its backoff."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is malformed
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def client_tls_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """An HTTPS context for a node whose API serves TLS (docs/operations.md): the node's
    certificate verified against ``ca_file`` (default: the system's trust store), and this
    client's certificate (``cert_file``, key in ``key_file`` or the same file) for a node that
    lists its transactors in ``api.write_clients`` / ``read_clients``."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(
            f"cannot load the CA file {ca_file} ({exc})",
            hint="--ca-file / $TL_CA_FILE: the PEM certificate of the CA that issued the node's",
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidInput(
                f"cannot load the client certificate {cert_file} / key {key_file} ({exc})",
                hint="--cert-file / $TL_CERT_FILE: PEM certificate; --key-file / $TL_KEY_FILE: "
                "its unencrypted PEM private key",
            ) from exc
    elif key_file:
        raise InvalidInput("a client key was given without its certificate", hint="add --cert-file")
    return context


class LedgerClient:
    """Calls on one node's REST API. Use as a context manager, or call ``close()``.

    ``ssl_context`` (``client_tls_context``) is used for ``https://`` URLs; without one an
    https URL is checked against the system's trust store."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout_s: float = 30,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(
                f"node URL {base_url!r} must be http://HOST[:PORT]",
                hint=f"for example {DEFAULT_URL}",
            )
        if timeout_s <= 0:
            raise InvalidInput(f"timeout must be positive, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._ssl_context = ssl_context
        self._connection: http.client.HTTPConnection | None = None

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # --- transport ---------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout_s, context=self._ssl_context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout_s
                )
        return self._connection

    def _unreachable(self, what: str, exc: BaseException) -> NodeUnreachable:
        self.close()
        return NodeUnreachable(f"{what} {self.base_url}: {exc}", hint=UNREACHABLE_HINT)

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout_s: float | None = None,
    ) -> _Reply:
        target = self._prefix + path
        if query:
            target += "?" + urlencode(query, safe=",")
        headers = {"Accept": "application/json", "User-Agent": f"trusted-ledger/{__version__}"}
        if body is not None:
            headers["Content-Type"] = content_type
        timeout = self.timeout_s if timeout_s is None else timeout_s
        for attempt in (1, 2):
            reused = self._connection is not None and self._connection.sock is not None
            connection = self._connect()
            try:
                if connection.sock is None:
                    connection.connect()
                assert connection.sock is not None
                connection.sock.settimeout(timeout)
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except ConnectionRefusedError as exc:
                raise self._unreachable("connection refused by", exc) from exc
            except TimeoutError as exc:
                self.close()
                raise NodeUnreachable(
                    f"no answer from {self.base_url} within {timeout:g} s", hint=UNREACHABLE_HINT
                ) from exc
            except (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine) as exc:
                # A kept-alive connection the node closed while idle fails on first use;
                # one fresh attempt tells that apart from a node that is really gone. Sending
                # again is safe even for POST /batches: the node accepts a batch it already
                # holds as pending again without effect.
                self.close()
                if reused and attempt == 1:
                    continue
                raise self._unreachable("connection lost to", exc) from exc
            except ssl.SSLError as exc:
                self.close()
                raise NodeUnreachable(
                    f"TLS with {self.base_url} failed: {exc}",
                    hint="check --ca-file (the CA of the node's certificate) and, for a node "
                    "that requires client certificates, --cert-file/--key-file",
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable("cannot reach", exc) from exc
            if response.will_close:
                self.close()
            return _Reply(response.status, response.headers, data)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _json(self, reply: _Reply) -> dict[str, Any]:
        self._raise_for_status(reply)
        try:
            document = json.loads(reply.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UnexpectedResponse(
                f"{self.base_url} answered HTTP {reply.status} with a body that is not JSON",
                hint="check that --url / $TL_URL names a trusted-ledger node's REST API",
            ) from exc
        if not isinstance(document, dict):
            raise UnexpectedResponse(
                f"{self.base_url} answered with JSON that is not an object",
                hint="check that --url / $TL_URL names a trusted-ledger node's REST API",
            )
        return document

    def _raise_for_status(self, reply: _Reply) -> None:
        if 200 <= reply.status < 300:
            return
        message = self._error_message(reply)
        if reply.status == 404:
            raise NotFound(message)
        if reply.status == 429:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            raise NodeBusy(
                message,
                retry_after_s=retry_after,
                hint="the node's pending pool is full; retry"
                + (f" in {retry_after:g} s" if retry_after is not None else " later"),
            )
        if reply.status == 503:
            raise NodeNotReady(message, hint="the node has no genesis yet or is shutting down")
        if reply.status == 403:
            raise RequestRejected(
                message,
                status=403,
                hint="the node admits only listed client certificates for this: use "
                "--cert-file/--key-file (or $TL_CERT_FILE/$TL_KEY_FILE) with a listed one",
            )
        if 400 <= reply.status < 500:
            raise RequestRejected(message, status=reply.status)
        raise NodeError(message, hint="a bug on the node's side: see its log")

    def _error_message(self, reply: _Reply) -> str:
        """The node's ``error.message`` (Sawtooth's error shape), else the start of the body."""
        try:
            error = json.loads(reply.body)["error"]
            title = str(error.get("title", "")).strip()
            message = str(error["message"]).strip()
        except (ValueError, KeyError, TypeError, AttributeError):
            text = reply.body[:_error_body_chars_max].decode("utf-8", "replace").strip()
            return f"HTTP {reply.status}" + (f": {text}" if text else "")
        prefix = f"HTTP {reply.status} {title}" if title else f"HTTP {reply.status}"
        return f"{prefix}: {message}"

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._json(self._request("GET", path, query=query))

    # --- batches -------------------------------------------------------------------------

    def submit(self, batches: Sequence[Batch] | BatchList) -> list[str]:
        """Send batches in one BatchList; returns their ids in order. The node takes all of
        them or none (docs/api.md), so a rejected list can be fixed and sent whole again."""
        batch_list = batches if isinstance(batches, BatchList) else build_batch_list(batches)
        self._submit_bytes(batch_list.encode())
        return [batch.id for batch in batch_list.batches]

    def submit_batch_list_bytes(self, data: bytes) -> list[str]:
        """Send an already serialized BatchList; returns the batch ids the node accepted
        (read from the status link it answers with)."""
        document = self._submit_bytes(bytes(data))
        link = str(document.get("link", ""))
        ids = parse_qs(urlsplit(link).query).get("id", [])
        return [item for value in ids for item in value.split(",") if item]

    def _submit_bytes(self, data: bytes) -> dict[str, Any]:
        reply = self._request(
            "POST", "/batches", body=data, content_type="application/octet-stream"
        )
        return self._json(reply)

    def batch_statuses(self, ids: Sequence[str], wait_s: float = 0) -> list[BatchStatusReport]:
        """Statuses in the order of ``ids``. With ``wait_s`` the node holds its answer until
        every batch is final or the time passes (capped at 60 s by the node)."""
        reports: list[BatchStatusReport] = []
        for start in range(0, len(ids), batch_status_ids_per_request_max):
            chunk = list(ids[start : start + batch_status_ids_per_request_max])
            reports.extend(self._batch_status_chunk(chunk, wait_s))
        return reports

    def _batch_status_chunk(self, ids: list[str], wait_s: float) -> list[BatchStatusReport]:
        wait = min(math.ceil(wait_s), status_wait_s_max) if wait_s > 0 else 0
        query = {"wait": str(wait)} if wait else {}
        timeout = self.timeout_s + wait
        if len(ids) <= get_ids_per_request_max:
            reply = self._request(
                "GET", "/batch_statuses", query={"id": ",".join(ids), **query}, timeout_s=timeout
            )
        else:
            body = json.dumps(ids).encode()
            reply = self._request(
                "POST", "/batch_statuses", query=query, body=body, timeout_s=timeout
            )
        document = self._json(reply)
        by_id = {}
        for item in document.get("data") or ():
            report = BatchStatusReport.from_json(item)
            by_id[report.id] = report
        return [by_id.get(batch_id, BatchStatusReport(batch_id, "UNKNOWN")) for batch_id in ids]

    def wait_committed(
        self,
        ids: Sequence[str],
        timeout_s: float,
        on_progress: Callable[[int, int], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[BatchStatusReport]:
        """Wait until every batch is COMMITTED or INVALID, or ``timeout_s`` passes; returns
        the last statuses in the order of ``ids`` (some still PENDING after a timeout).
        ``on_progress(final, total)`` is called after every poll."""
        latest = {batch_id: BatchStatusReport(batch_id, "PENDING") for batch_id in ids}
        deadline = clock() + timeout_s
        while True:
            waiting = [batch_id for batch_id, report in latest.items() if not report.is_final]
            remaining = deadline - clock()
            if waiting:
                slice_s = progress_poll_s if on_progress is not None else status_wait_s_max
                wait = max(0.0, min(remaining, slice_s))
                started = clock()
                for report in self.batch_statuses(waiting, wait_s=wait):
                    latest[report.id] = report
                still = sum(1 for report in latest.values() if not report.is_final)
                if still == len(waiting) and clock() - started < _poll_pause_s and remaining > 0:
                    sleep(_poll_pause_s)
            done = sum(1 for report in latest.values() if report.is_final)
            if on_progress is not None:
                on_progress(done, len(latest))
            if done == len(latest) or deadline - clock() <= 0:
                return [latest[batch_id] for batch_id in ids]

    # --- reads ---------------------------------------------------------------------------

    def state(self, address: str, head: str | None = None) -> bytes | None:
        """The value at ``address``, or ``None`` when nothing is stored there."""
        query = {"head": head} if head else None
        try:
            document = self._get(f"/state/{quote(address)}", query)
        except NotFound:
            return None
        return _base64(document.get("data"), f"state at {address}")

    def state_list(
        self, prefix: str = "", head: str | None = None, page_entries: int = 100
    ) -> Iterator[StateEntry]:
        """Every entry under ``prefix`` in address order, page by page. All pages are read at
        the head of the first page, so that a block committed meanwhile cannot make the
        listing mix two states."""
        start: str | None = None
        limit = max(1, min(page_entries, state_page_entries_max))
        while True:
            query = {"address": prefix, "limit": str(limit)}
            if head:
                query["head"] = head
            if start:
                query["start"] = start
            document = self._get("/state", query)
            head = head or document.get("head")
            for item in document.get("data") or ():
                address = str(item["address"])
                yield StateEntry(address, _base64(item.get("data"), f"state at {address}"))
            start = (document.get("paging") or {}).get("next_position")
            if not start:
                return

    def block(self, block_id_or_num: str | int) -> dict[str, Any]:
        """One block as JSON (docs/api.md), by 64-hex id or by number."""
        if isinstance(block_id_or_num, int) or block_id_or_num.isdigit():
            return _data(self._get(f"/blocks/num/{int(block_id_or_num)}"), "block")
        return _data(self._get(f"/blocks/{quote(block_id_or_num)}"), "block")

    def blocks(self, start: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """One page of blocks, newest first, from ``start`` (default: the head) downwards."""
        query = {"limit": str(limit)}
        if start is not None:
            query["start"] = str(start)
        data = self._get("/blocks", query).get("data")
        if not isinstance(data, list):
            raise UnexpectedResponse("/blocks answered without a list of blocks")
        return data

    def block_raw(self, block_id: str) -> bytes:
        """The block's stored encoding (docs/formats.md §6.3), for independent verification."""
        reply = self._request("GET", f"/blocks/{quote(block_id)}", query={"format": "raw"})
        self._raise_for_status(reply)
        return reply.body

    def batch(self, batch_id: str) -> dict[str, Any]:
        """A committed batch with ``block_id`` and ``block_num`` (the whole response)."""
        return self._get(f"/batches/{quote(batch_id)}")

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        """A committed transaction with ``block_id`` and ``block_num`` (the whole response)."""
        return self._get(f"/transactions/{quote(transaction_id)}")

    def receipts(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Receipts of committed transactions, in the node's order."""
        if len(ids) <= get_ids_per_request_max:
            document = self._get("/receipts", {"id": ",".join(ids)})
        else:
            body = json.dumps(list(ids)).encode()
            document = self._json(self._request("POST", "/receipts", body=body))
        data = document.get("data")
        if not isinstance(data, list):
            raise UnexpectedResponse("/receipts answered without a list of receipts")
        return data

    def status(self) -> NodeStatus:
        return NodeStatus.from_json(_data(self._get("/status"), "status"))

    # --- proofs (docs/formats.md §8; check them with chain.proof_verify.verify_proof) ------

    def batch_proof(self, batch_id: str) -> dict[str, Any]:
        """Proof that a committed batch is in its block."""
        return _data(self._get(f"/proofs/batches/{quote(batch_id)}"), "batch proof")

    def transaction_proof(self, transaction_id: str) -> dict[str, Any]:
        """Proof that a committed transaction is in its batch and block."""
        return _data(self._get(f"/proofs/transactions/{quote(transaction_id)}"), "proof")

    def state_proof(self, address: str, block_num: int | None = None) -> dict[str, Any]:
        """Proof of the value (or absence) at ``address`` at a block (default: the head)."""
        query = None if block_num is None else {"block": str(block_num)}
        return _data(self._get(f"/proofs/state/{quote(address)}", query), "state proof")

    def audit_proof(self, from_seq: int | None = None, to_seq: int | None = None) -> dict[str, Any]:
        """Proof that the node's key-usage trail at checkpoint ``to_seq`` extends it at
        ``from_seq`` (defaults: the last two checkpoints)."""
        query = {
            name: str(value)
            for name, value in (("from_seq", from_seq), ("to_seq", to_seq))
            if value is not None
        }
        return _data(self._get("/proofs/audit", query), "audit proof")


def _data(document: Mapping[str, Any], what: str) -> dict[str, Any]:
    data = document.get("data")
    if not isinstance(data, dict):
        raise UnexpectedResponse(f"the node's {what} answer has no data object")
    return data


def _base64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise UnexpectedResponse(f"{what}: data is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise UnexpectedResponse(f"{what}: data is not valid base64") from exc
