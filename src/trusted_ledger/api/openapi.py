"""The route table's types, and the OpenAPI 3.1 document built from the table.

One table (``app.routes``) lists every route with its parameters and response schemas; the
aiohttp router is filled from it and so is this document, so the document can neither list a
route that is not served nor miss one. A parameter carries its own parser: the value a
handler reads is the value the document describes (and unknown parameters are refused).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from aiohttp import web

from trusted_ledger._version import __version__
from trusted_ledger.api.render import ERROR_SCHEMA, Schema
from trusted_ledger.errors import RequestInvalid

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_TITLES = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Param(Generic[T]):
    """A query or path parameter: its documentation and its parser, in one object."""

    name: str
    location: Literal["query", "path"]
    description: str
    schema: Schema
    parse: Callable[[str | None], T]
    """Turns the raw text (None when absent) into the value; raises ``RequestInvalid``."""
    required: bool = False

    def get(self, request: web.Request) -> T:
        if self.location == "path":
            return self.parse(request.match_info.get(self.name))
        values = request.query.getall(self.name, [])
        if len(values) > 1:
            raise RequestInvalid("given more than once; give it once", parameter=self.name)
        return self.parse(values[0] if values else None)


@dataclass(frozen=True)
class Body:
    """A request body: its media type, JSON Schema (None for binary) and description."""

    content_type: str
    description: str
    schema: Schema | None = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    parameters: tuple[Param[Any], ...] = ()
    response: Schema | None = None
    """JSON Schema of the success body; None for a non-JSON body (``content_type``)."""
    status: int = 200
    content_type: str = "application/json"
    body: Body | None = None
    errors: tuple[int, ...] = (400, 404, 503)
    always_served: bool = False
    """Served while the node is not ready (status, metrics, the document itself)."""
    extra_content: dict[str, str] = field(default_factory=dict)
    """Other media types the success status may carry (e.g. raw block bytes), by type."""

    @property
    def query_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parameters if p.location == "query")


def _parameter(param: Param[Any]) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.location,
        "description": param.description,
        "required": param.required or param.location == "path",
        "schema": param.schema,
    }


def _operation(route: Route) -> dict[str, Any]:
    success: dict[str, Any] = {
        "description": STATUS_TITLES[route.status],
        "content": {route.content_type: {"schema": route.response or {"type": "string"}}},
    }
    for media_type, description in route.extra_content.items():
        success["content"][media_type] = {
            "schema": {"type": "string", "format": "binary", "description": description}
        }
    responses: dict[str, Any] = {str(route.status): success}
    # Every route refuses an unknown query parameter with 400 (api/params.py), whatever
    # else it may answer.
    for status in sorted({400, *route.errors}):
        responses[str(status)] = {
            "description": STATUS_TITLES[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": [_parameter(p) for p in route.parameters],
        "responses": responses,
    }
    if route.body is not None:
        schema = route.body.schema or {"type": "string", "format": "binary"}
        operation["requestBody"] = {
            "required": True,
            "description": route.body.description,
            "content": {route.body.content_type: {"schema": schema}},
        }
    return operation


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (JSON Schema 2020-12 dialect, its default)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Trusted Ledger node API",
            "version": __version__,
            "description": "Sawtooth-compatible REST subset plus /status and /receipts; "
            "see docs/api.md.",
        },
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }
