"""A real HTTP/1.1 server on loopback answering with canned responses, for transport tests.

It serves docs/api.md's shapes only so that the client's transport can be exercised against
real sockets: status mapping, keep-alive and reconnects, ``Retry-After``, timeouts. Anything
about what a node *decides* is tested end to end against the real API server instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    # Drop the connection after answering without saying so (an idle keep-alive timeout).
    close_silently: bool = False
    delay_s: float = 0.0


def json_answer(document: Any, status: int = 200, **headers: str) -> Answer:
    return Answer(
        status, json.dumps(document).encode(), {"Content-Type": "application/json", **headers}
    )


def error_answer(status: int, title: str, message: str, **headers: str) -> Answer:
    return json_answer(
        {"error": {"code": status, "title": title, "message": message}}, status, **headers
    )


Route = Callable[[Request], Answer]


class CannedServer:
    """Routes ``(method, path)`` to functions of the request; records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers.items()),
                    self.rfile.read(length),
                    self.client_address[1],
                )
                server.requests.append(request)
                route = server.routes.get((self.command, parts.path))
                if route is None:
                    answer = error_answer(404, "Not Found", f"no route {parts.path}")
                else:
                    answer = route(request)
                if answer.delay_s:
                    threading.Event().wait(answer.delay_s)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
                self.wfile.flush()
                if answer.close_silently:
                    self.close_connection = True

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> CannedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def running_server() -> Iterator[CannedServer]:
    server = CannedServer().start()
    try:
        yield server
    finally:
        server.stop()
