"""The OpenAPI document against the router and against live answers.

Every documented operation is called on a real chain and its answer validated against the
documented schema; the router serves exactly the documented operations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.unit.api.schema_check import schema_errors
from tests.unit.api.support import (
    api_client,
    body_of,
    make_chain,
    run,
    transfer,
    usd_setup,
)
from tests.unit.custody.test_audit_proof import write_trail
from trusted_ledger.processing.families import asset


def test_router_serves_exactly_the_documented_operations() -> None:
    chain = make_chain()
    served = {
        (route.method, route.resource.canonical)
        for route in chain.server.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    document = chain.server.routes
    documented = {(route.method, route.path) for route in document}
    assert served == documented
    ids = [route.operation_id for route in document]
    assert len(ids) == len(set(ids))
    for route in document:
        in_path = set(re.findall(r"{(\w+)}", route.path))
        declared = {p.name for p in route.parameters if p.location == "path"}
        assert in_path == declared, route.path


def _example(chain: Any, name: str, values: dict[str, str]) -> str:
    return values[name]


def test_every_documented_operation_answers_as_documented(tmp_path: Path) -> None:
    audit_path = tmp_path / "key-usage.jsonl"
    write_trail(audit_path, 12)  # checkpoints for /proofs/audit
    chain = make_chain(audit_path=audit_path)
    create, issue = usd_setup()
    block = chain.commit(create, issue)
    transaction_id = create.transactions[0].header_signature
    values = {
        "block_id": block.id.hex(),
        "block_num": "1",
        "batch_id": create.header_signature,
        "transaction_id": transaction_id,
        "address": asset.asset_class_address("USD"),
    }
    query_ids = {"/batch_statuses": create.header_signature, "/receipts": transaction_id}
    bodies = {
        "/batches": (body_of(transfer(5)), "application/octet-stream"),
        "/batch_statuses": (f'["{create.header_signature}"]'.encode(), "application/json"),
        "/receipts": (f'["{transaction_id}"]'.encode(), "application/json"),
    }

    async def scenario() -> None:
        async with api_client(chain) as client:
            document = await (await client.get("/openapi.json")).json()
            assert document["openapi"] == "3.1.0"
            called = 0
            for path, operations in document["paths"].items():
                for method, operation in operations.items():
                    url = re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)
                    required = [
                        p["name"] for p in operation["parameters"]
                        if p["in"] == "query" and p["required"]
                    ]  # fmt: skip
                    if required:
                        assert required == ["id"]
                        url += f"?id={query_ids[path]}"
                    kwargs: dict[str, Any] = {}
                    if "requestBody" in operation:
                        data, media_type = bodies[path]
                        assert media_type in operation["requestBody"]["content"]
                        kwargs = {"data": data, "headers": {"Content-Type": media_type}}
                    response = await client.request(method.upper(), url, **kwargs)
                    [(status, documented)] = [
                        (code, r) for code, r in operation["responses"].items()
                        if code.startswith("2")
                    ]  # fmt: skip
                    assert str(response.status) == status, (method, url)
                    media_type = response.headers["Content-Type"].split(";")[0]
                    assert media_type in documented["content"], (method, url, media_type)
                    schema = documented["content"][media_type]["schema"]
                    if media_type == "application/json":
                        errors = schema_errors(await response.json(), schema, document)
                        assert errors == [], (method, url, errors[:5])
                    elif path.startswith("/explorer/"):  # the web page (tests/explorer/)
                        assert media_type in ("text/html", "text/javascript", "text/css")
                        assert len(await response.read()) > 0
                    else:
                        assert (await response.read()).startswith(b"# HELP")
                    called += 1
            assert called == len(chain.server.routes)

            # Error answers obey the documented error schema too.
            error_schema = {"$ref": "#/components/schemas/Error"}
            for url in ("/nowhere", "/blocks?limit=0", "/blocks/" + "00" * 32):
                answer = await (await client.get(url)).json()
                assert schema_errors(answer, error_schema, document) == []

    run(scenario())


def test_the_document_is_the_route_table() -> None:
    chain = make_chain()
    document = chain.server._handlers.document
    for route in chain.server.routes:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["operationId"] == route.operation_id
        assert [p["name"] for p in operation["parameters"]] == [p.name for p in route.parameters]
        assert str(route.status) in operation["responses"]
        for status in route.errors:
            assert str(status) in operation["responses"]
