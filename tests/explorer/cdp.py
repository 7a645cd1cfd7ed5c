"""A real headless Chromium driven over the Chrome DevTools Protocol (CDP).

Debian's ``chromium`` package, started with ``--remote-debugging-port=0``; the port it chose
is read from ``DevToolsActivePort`` in its profile directory. One page target is driven over
aiohttp's websocket client (already a dependency): no Playwright or Selenium, which would
bring a browser of their own instead of the one a user has.

The calls are synchronous for the tests: the class owns an event loop and runs each CDP
exchange to completion on it. Waits poll a JavaScript condition until it holds or a bound
passes; the bound is a failure, not a measured time (nothing here asserts on speed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium")
START_TIMEOUT_S = 30
CALL_TIMEOUT_S = 30
POLL_INTERVAL_S = 0.1


class BrowserError(AssertionError):
    """The page threw, a CDP call failed, or a condition never held."""


class Chromium:
    """One headless Chromium process with one page, viewport 1400x1000."""

    def __init__(self, profile_dir: Path, log_path: Path) -> None:
        if CHROMIUM is None:
            raise BrowserError("no chromium binary on PATH (apt-get install chromium)")
        self.loop = asyncio.new_event_loop()
        self.profile_dir = profile_dir
        self.log_path = log_path
        self.console: list[str] = []
        """Console messages, uncaught exceptions and browser log entries (CSP refusals)."""
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    CHROMIUM,
                    "--headless=new",
                    "--remote-debugging-port=0",
                    f"--user-data-dir={profile_dir}",
                    "--no-sandbox",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-gpu",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-dev-shm-usage",
                    "about:blank",
                ],
                stdout=log,
                stderr=log,
            )
        try:
            self.port = self._devtools_port()
            self.loop.run_until_complete(self._connect())
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Log.enable")
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            )
        except BaseException:
            self.close()
            raise

    # --- process and connection -----------------------------------------------------------

    def _devtools_port(self) -> int:
        active = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}: {self._log()}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(active.read_text().splitlines()[0])
            time.sleep(POLL_INTERVAL_S)
        raise BrowserError(f"chromium wrote no DevToolsActivePort in {START_TIMEOUT_S} s")

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    async def _connect(self) -> None:
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{self.port}/json/list") as answer:
            targets = await answer.json()
        page = next(t for t in targets if t["type"] == "page")
        self._socket = await self._session.ws_connect(
            page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024
        )
        self._reader = self.loop.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self._event(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    def _event(self, data: dict[str, Any]) -> None:
        method, params = data.get("method"), data.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            described = details.get("exception", {}).get("description", details.get("text"))
            self.console.append(f"exception: {described}")
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append(f"log.{entry['level']} {entry['source']}: {entry['text']}")

    async def _call(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._pending[self._next_id] = future
        await self._socket.send_str(
            json.dumps({"id": self._next_id, "method": method, "params": params or {}})
        )
        answer = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(method, params))

    def close(self) -> None:
        async def disconnect() -> None:
            if hasattr(self, "_socket"):
                await self._socket.close()
            if hasattr(self, "_session"):
                await self._session.close()

        with contextlib.suppress(Exception):
            self.loop.run_until_complete(disconnect())
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.loop.close()

    def problems(self) -> list[str]:
        """Uncaught exceptions and Content-Security-Policy refusals seen so far."""
        return [
            line
            for line in self.console
            if line.startswith("exception") or "Content Security Policy" in line
        ]

    # --- the page -------------------------------------------------------------------------

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (awaited if it is a promise); raises if it threw."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            described = details.get("exception", {}).get("description", details.get("text"))
            raise BrowserError(f"page threw: {described}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 20, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(POLL_INTERVAL_S)
        raise BrowserError(
            f"{what or expression} did not hold within {timeout_s} s (last value {value!r}); "
            f"console: {self.console[-5:]}"
        )

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", what=f"loading {url}")

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the whole page, written to ``path``."""
        result = self.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        data = base64.b64decode(result["data"])
        path.write_bytes(data)
        return data
