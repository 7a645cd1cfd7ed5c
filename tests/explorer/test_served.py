"""How the node serves the explorer, without a browser: every file the page loads is served
with its media type and the strict Content-Security-Policy, nothing refers to another
origin, the scripts never write markup from strings, and the files are package data."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

from tests.unit.api.support import api_client, make_chain, run
from trusted_ledger.api.explorer import ASSETS, CONTENT_SECURITY_POLICY, PAGE

REPO = Path(__file__).resolve().parents[2]
EXPLORER_FILES = resources.files("trusted_ledger.api.explorer")


def _source(name: str) -> str:
    return EXPLORER_FILES.joinpath(name).read_text(encoding="utf-8")


def test_page_and_assets_are_served_with_the_policy() -> None:
    page = _source(PAGE)
    loaded = re.findall(r'(?:src|href)="(/explorer/[^"]+)"', page)
    assert sorted(loaded) == sorted(f"/explorer/{name}" for name in ASSETS)
    chain = make_chain()

    async def scenario() -> None:
        async with api_client(chain) as client:
            for path, media_type in [("/explorer/", "text/html")] + [
                (f"/explorer/{name}", ASSETS[name][0]) for name in ASSETS
            ]:
                response = await client.get(path)
                assert response.status == 200, path
                assert response.content_type == media_type, path
                assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                body = await response.text()
                name = PAGE if path == "/explorer/" else path.removeprefix("/explorer/")
                assert body == _source(name)
            missing = await client.get("/explorer/nothing.js")
            assert missing.status == 404
            assert "no route /explorer/nothing.js" in (await missing.json())["error"]["message"]

    run(scenario())


def test_policy_allows_nothing_from_elsewhere() -> None:
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in CONTENT_SECURITY_POLICY.split("; ")
    )
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]


def test_sources_are_self_contained_and_never_write_markup() -> None:
    for name in [PAGE, *ASSETS]:
        text = _source(name)
        # no CDN, no web font, no analytics: the only URLs are this node's own paths
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), name
        assert "@import" not in text and "url(" not in text, name
        if name.endswith(".js"):
            code = re.sub(r"/\*.*?\*/|^\s*//.*$", "", text, flags=re.DOTALL | re.MULTILINE)
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
                assert sink not in code, (name, sink)
            assert not re.search(r"\beval\(|new Function\(", code), name
    # no inline script and no inline event handler, which the policy would refuse anyway
    assert not re.search(r"<script>|\son[a-z]+=", _source(PAGE))


def test_files_are_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["trusted_ledger.api.explorer"]
    shipped = [entry.name for entry in EXPLORER_FILES.iterdir() if entry.name != "__init__.py"]
    for name in shipped:
        if name == "__pycache__":
            continue
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert {PAGE, *ASSETS} <= set(shipped)
