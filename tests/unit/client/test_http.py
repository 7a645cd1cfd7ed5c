"""LedgerClient's transport against a real HTTP server on loopback (canned answers).

What is checked here is the client's side of HTTP: which requests it sends, how every error
status becomes a typed error with the node's message, keep-alive and the one reconnect,
``Retry-After``, timeouts and an unreachable port.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.unit.client.support import Answer, CannedServer, Request, error_answer, json_answer
from trusted_ledger.client.asset import AssetClient
from trusted_ledger.client.http import LedgerClient, parse_retry_after
from trusted_ledger.errors import (
    NodeBusy,
    NodeError,
    NodeNotReady,
    NodeUnreachable,
    NotFound,
    RequestRejected,
    UnexpectedResponse,
)
from trusted_ledger.processing.families.asset import issue_operation
from trusted_ledger.txn import SigningKey, build_batch_list, decode_batch_list

ADDRESS = "92a8fd01" + "ab" * 31
HEAD = "cd" * 32


def _status_answer(_: Request) -> Answer:
    return json_answer(
        {
            "data": {
                "chain_id": "ee" * 32,
                "version": "0.1.0",
                "node": {"public_key": "3059", "fingerprint": "f1" * 8},
                "head": {
                    "block_num": 7,
                    "block_id": HEAD,
                    "state_root": "aa" * 32,
                    "timestamp_ms": 1_700_000_000_000,
                },
                "pending_batches": 2,
                "pending_bytes": 900,
                "scheduler": "serial",
            },
            "link": "/status",
        }
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_calls_share_one_kept_alive_connection(server: CannedServer) -> None:
    server.routes["GET", "/status"] = _status_answer
    with LedgerClient(server.url) as client:
        first = client.status()
        client.status()
        client.status()
    assert first.head_block_num == 7 and first.pending_batches == 2
    assert len({request.client_port for request in server.requests}) == 1


def test_a_connection_dropped_while_idle_is_reopened_once(server: CannedServer) -> None:
    answers = iter([True, False, False])

    def status(request: Request) -> Answer:
        answer = _status_answer(request)
        answer.close_silently = next(answers)
        return answer

    server.routes["GET", "/status"] = status
    with LedgerClient(server.url) as client:
        client.status()
        time.sleep(0.05)  # let the server close its end
        assert client.status().head_block_num == 7
        client.status()
    ports = [request.client_port for request in server.requests]
    assert len(ports) == 3 and ports[0] != ports[1] == ports[2]


@pytest.mark.parametrize(
    ("status", "error", "title"),
    [
        (400, RequestRejected, "Bad Request"),
        (413, RequestRejected, "Payload Too Large"),
        (415, RequestRejected, "Unsupported Media Type"),
        (404, NotFound, "Not Found"),
        (503, NodeNotReady, "Service Unavailable"),
        (500, NodeError, "Internal Server Error"),
    ],
)
def test_error_statuses_become_typed_errors_with_the_nodes_message(
    server: CannedServer, status: int, error: type[Exception], title: str
) -> None:
    message = "batches[2].transactions[0].header.inputs[1]: not a hex address"
    server.routes["GET", "/status"] = lambda _: error_answer(status, title, message)
    with LedgerClient(server.url) as client, pytest.raises(error) as caught:
        client.status()
    assert message in str(caught.value) and f"HTTP {status}" in str(caught.value)
    if isinstance(caught.value, RequestRejected):
        assert caught.value.status == status


def test_error_without_the_json_shape_keeps_the_start_of_the_body(server: CannedServer) -> None:
    server.routes["GET", "/status"] = lambda _: Answer(502, b"<html>bad gateway</html>", {})
    with LedgerClient(server.url) as client, pytest.raises(NodeError, match="bad gateway"):
        client.status()


def test_pool_full_carries_retry_after(server: CannedServer) -> None:
    server.routes["POST", "/batches"] = lambda _: error_answer(
        429, "Too Many Requests", "the pending pool is full", **{"Retry-After": "7"}
    )
    key = SigningKey.generate()
    batch = AssetClient(LedgerClient(server.url), key).batch(
        issue_operation("USD", key.public_key_hex, 5)
    )
    with LedgerClient(server.url) as client, pytest.raises(NodeBusy) as caught:
        client.submit([batch])
    assert caught.value.retry_after_s == 7
    assert "retry in 7 s" in str(caught.value)


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(90)
    assert (
        parse_retry_after(
            format_datetime(now - timedelta(seconds=5), usegmt=True), now=now.timestamp()
        )
        == 0
    )
    assert parse_retry_after(" 12 ") == 12
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None


def test_unreachable_port_says_what_to_check() -> None:
    client = LedgerClient(f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    with pytest.raises(NodeUnreachable) as caught:
        client.status()
    text = str(caught.value)
    assert "connection refused" in text
    assert "trusted-ledger node run" in text and "$TL_URL" in text


def test_a_silent_node_times_out(server: CannedServer) -> None:
    server.routes["GET", "/status"] = lambda request: Answer(delay_s=1.0)
    client = LedgerClient(server.url, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(NodeUnreachable, match=r"no answer .* within 0.2 s"):
        client.status()
    assert time.monotonic() - started < 0.9


def test_a_non_json_answer_is_not_mistaken_for_a_node(server: CannedServer) -> None:
    server.routes["GET", "/status"] = lambda _: Answer(200, b"<html>router login</html>", {})
    with LedgerClient(server.url) as client, pytest.raises(UnexpectedResponse, match="not JSON"):
        client.status()


def test_submit_posts_the_batch_list_and_returns_ids(server: CannedServer) -> None:
    def accept(request: Request) -> Answer:
        ids = [b.id for b in decode_batch_list(request.body).batches]
        return json_answer({"link": f"{server.url}/batch_statuses?id={','.join(ids)}"}, 202)

    server.routes["POST", "/batches"] = accept
    key = SigningKey.generate()
    with LedgerClient(server.url) as client:
        assets = AssetClient(client, key)
        batches = [assets.batch(issue_operation("USD", key.public_key_hex, n)) for n in (1, 2)]
        ids = client.submit(batches)
        # Raw bytes (a file from elsewhere): the ids come from the node's status link.
        raw_ids = client.submit_batch_list_bytes(build_batch_list(batches[::-1]).encode())
    assert ids == [b.id for b in batches]
    assert raw_ids == ids[::-1]
    assert server.requests[0].headers["Content-Type"] == "application/octet-stream"


def _statuses(reports: dict[str, dict[str, object]]) -> object:
    def answer(request: Request) -> Answer:
        if request.method == "GET":
            ids = request.query["id"][0].split(",")
        else:
            ids = json.loads(request.body)
        return json_answer(
            {"data": [{"id": i, **reports.get(i, {"status": "UNKNOWN"})} for i in ids]}
        )

    return answer


def test_few_status_ids_go_in_the_url_many_in_a_body(server: CannedServer) -> None:
    ids = [f"{n:0128x}" for n in range(40)]
    reports: dict[str, dict[str, object]] = {
        ids[0]: {"status": "COMMITTED", "block_num": 3, "block_id": HEAD},
        ids[1]: {
            "status": "INVALID",
            "invalid_transactions": [
                {"id": "ab" * 64, "message": "balance 5 is less than 7", "extended_data": ""}
            ],
        },
    }
    server.routes["GET", "/batch_statuses"] = _statuses(reports)  # type: ignore[assignment]
    server.routes["POST", "/batch_statuses"] = _statuses(reports)  # type: ignore[assignment]
    with LedgerClient(server.url) as client:
        few = client.batch_statuses(ids[:3], wait_s=2.5)
        many = client.batch_statuses(ids)
    assert [r.status for r in few] == ["COMMITTED", "INVALID", "UNKNOWN"]
    assert few[0].block_num == 3 and few[0].block_id == HEAD
    assert few[1].reason == "balance 5 is less than 7"
    assert [r.id for r in many] == ids
    get, post = server.requests
    assert get.method == "GET" and get.query["wait"] == ["3"]
    assert post.method == "POST" and json.loads(post.body) == ids and "wait" not in post.query


def test_wait_committed_polls_only_unfinished_batches(server: CannedServer) -> None:
    ids = ["a" * 128, "b" * 128]
    polls: list[list[str]] = []

    def answer(request: Request) -> Answer:
        asked = request.query["id"][0].split(",")
        polls.append(asked)
        final = len(polls) >= 2
        data = [
            {"id": i, "status": "COMMITTED", "block_num": 1, "block_id": HEAD}
            if i == ids[0] or final
            else {"id": i, "status": "PENDING"}
            for i in asked
        ]
        return json_answer({"data": data})

    server.routes["GET", "/batch_statuses"] = answer
    progress: list[tuple[int, int]] = []
    with LedgerClient(server.url) as client:
        reports = client.wait_committed(
            ids, 10, on_progress=lambda d, t: progress.append((d, t)), sleep=lambda s: None
        )
    assert [r.status for r in reports] == ["COMMITTED", "COMMITTED"]
    assert polls == [ids, [ids[1]]]
    assert progress == [(1, 2), (2, 2)]
    assert server.requests[0].query["wait"] == ["1"]


def test_wait_committed_gives_up_at_the_deadline(server: CannedServer) -> None:
    server.routes["GET", "/batch_statuses"] = _statuses({})  # type: ignore[assignment]
    now = [0.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    with LedgerClient(server.url) as client:
        (report,) = client.wait_committed(["c" * 128], 3, clock=clock, sleep=lambda s: None)
    assert report.status == "UNKNOWN" and not report.is_final


def test_state_value_absent_value_and_paged_listing(server: CannedServer) -> None:
    values = {f"92a8fd01{n:062x}": bytes([n]) * 3 for n in range(5)}
    addresses = sorted(values)

    def one(request: Request) -> Answer:
        address = request.path.rsplit("/", 1)[1]
        if address not in values:
            return error_answer(404, "Not Found", f"no value at {address}")
        return json_answer({"data": base64.b64encode(values[address]).decode(), "head": HEAD})

    def page(request: Request) -> Answer:
        start = request.query.get("start", [addresses[0]])[0]
        limit = int(request.query["limit"][0])
        index = addresses.index(start)
        chunk = addresses[index : index + limit]
        paging: dict[str, object] = {"start": start, "limit": limit}
        if index + limit < len(addresses):
            paging["next_position"] = addresses[index + limit]
        data = [{"address": a, "data": base64.b64encode(values[a]).decode()} for a in chunk]
        return json_answer({"data": data, "head": HEAD, "paging": paging})

    for address in [*addresses, ADDRESS]:
        server.routes["GET", f"/state/{address}"] = one
    server.routes["GET", "/state"] = page
    with LedgerClient(server.url) as client:
        assert client.state(addresses[2]) == b"\x02" * 3
        assert client.state(ADDRESS) is None
        listed = list(client.state_list("92a8fd", page_entries=2))
    assert [(e.address, e.data) for e in listed] == [(a, values[a]) for a in addresses]
    pages = [r for r in server.requests if r.path == "/state"]
    assert len(pages) == 3
    # Every page after the first is pinned to the first page's head.
    assert "head" not in pages[0].query
    assert all(r.query["head"] == [HEAD] for r in pages[1:])


def test_block_by_number_id_and_raw(server: CannedServer) -> None:
    block = {"header_signature": HEAD, "header": {"block_num": 4}, "batches": []}
    server.routes["GET", "/blocks/num/4"] = lambda _: json_answer({"data": block})
    server.routes["GET", f"/blocks/{HEAD}"] = lambda r: (
        Answer(200, b"\x01raw", {"Content-Type": "application/octet-stream"})
        if r.query.get("format") == ["raw"]
        else json_answer({"data": block})
    )
    with LedgerClient(server.url) as client:
        assert client.block(4) == client.block("4") == client.block(HEAD) == block
        assert client.block_raw(HEAD) == b"\x01raw"
        with pytest.raises(NotFound, match="no route"):
            client.block("ff" * 32)
