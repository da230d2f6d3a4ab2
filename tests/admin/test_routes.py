"""The console's and GraphiQL's HTTP surface: pages, assets, headers (no browser needed)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from admin import graphiql
from admin.routes import STATIC_DIR
from api.app import create_app
from tests.conftest import BASE_URL, IN_CI, AppFactory, make_settings

HTML = {"Accept": "text/html"}

ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """A client of an app that is never started: these routes need no database."""
    clients: list[httpx.AsyncClient] = []

    def make(**overrides: Any) -> httpx.AsyncClient:
        app = create_app(make_settings("sqlite://:memory:", **overrides))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def assert_security_headers(response: httpx.Response, cache_control: str = "no-store") -> None:
    csp = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split("; ")
    }
    assert csp["script-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == cache_control


def local_references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


async def test_the_console_page_is_served_with_its_security_headers(
    make_client: ClientFactory,
) -> None:
    response = await make_client().get("/admin")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response)
    assert "style-src 'self';" in response.headers["content-security-policy"]


async def test_the_console_page_has_no_inline_script_and_no_other_host(
    make_client: ClientFactory,
) -> None:
    html = (await make_client().get("/admin")).text

    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts
    assert all(" src=" in tag for tag in scripts)
    assert not re.search(r"\son\w+=", html)
    assert not re.search(r"\sstyle=", html)
    references = local_references(html)
    assert all(ref.startswith(("/", "#")) and not ref.startswith("//") for ref in references)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in STATIC_DIR.iterdir() if p.suffix in {".js", ".css", ".svg"})
)
async def test_console_assets_are_served_with_the_same_headers(
    make_client: ClientFactory, name: str
) -> None:
    response = await make_client().get(f"/admin/static/{name}")

    assert response.status_code == 200
    assert_security_headers(response)
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    assert response.headers["content-type"].startswith(expected[Path(name).suffix])


async def test_console_scripts_never_write_html_or_storage() -> None:
    for script in STATIC_DIR.glob("*.js"):
        code = script.read_text()
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert unsafe not in code, f"{script.name} uses {unsafe}"
        for storage in ("localStorage", "sessionStorage", "document.cookie"):
            assert storage not in code, f"{script.name} uses {storage}"


@pytest.mark.parametrize(
    "path", ["/admin/static/%2e%2e/routes.py", "/admin/static/..%2froutes.py", "/admin/static/"]
)
async def test_nothing_outside_the_static_folder_is_served(
    make_client: ClientFactory, path: str
) -> None:
    response = await make_client().get(path)

    assert response.status_code == 404


async def test_the_console_links_to_graphiql_only_when_it_is_on(
    make_client: ClientFactory,
) -> None:
    development = (await make_client().get("/admin")).text
    production = (await make_client(env="production").get("/admin")).text

    assert 'data-graphiql="on"' in development
    assert 'data-graphiql="off"' in production


async def test_graphiql_loads_everything_from_keyturn(make_client: ClientFactory) -> None:
    response = await make_client().get("/graphql", headers=HTML)

    assert response.status_code == 200
    assert_security_headers(response)
    assert "unpkg.com" not in response.text
    references = local_references(response.text)
    assert f"{graphiql.ASSETS_PATH}/graphiql.js" in references
    assert all(ref.startswith("/") and not ref.startswith("//") for ref in references)
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", response.text)


async def test_graphiql_assets_are_served_from_keyturn(make_client: ClientFactory) -> None:
    if not graphiql.assets_installed() and not IN_CI:
        pytest.skip("GraphiQL's assets are not installed: run `make install`")
    client = make_client()

    for name in ("graphiql.js", "graphiql.css", "editor.worker.js", "graphql.worker.js"):
        response = await client.get(f"{graphiql.ASSETS_PATH}/{name}")
        assert response.status_code == 200, name
        assert_security_headers(response, cache_control="no-cache")


async def test_graphiql_is_off_in_production_and_its_assets_too(
    make_client: ClientFactory,
) -> None:
    client = make_client(env="production")

    page = await client.get("/graphql", headers=HTML)
    asset = await client.get(f"{graphiql.ASSETS_PATH}/graphiql.js")

    assert page.status_code != 200
    assert asset.status_code == 404


async def test_graphiql_can_be_turned_on_in_production(make_client: ClientFactory) -> None:
    response = await make_client(env="production", graphiql=True).get("/graphql", headers=HTML)

    assert response.status_code == 200
    assert f"{graphiql.ASSETS_PATH}/graphiql.js" in response.text


async def test_without_its_assets_graphiql_explains_how_to_install_them(
    app_factory: AppFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(graphiql, "ASSETS_DIR", tmp_path / "not-installed")
    with caplog.at_level(logging.WARNING, logger="keyturn"):
        api = await app_factory()

    page = await api.client.get("/graphql", headers=HTML)
    asset = await api.client.get(f"{graphiql.ASSETS_PATH}/graphiql.js")
    query = await api.client.post("/graphql", json={"query": "{ __typename }"})

    assert page.status_code == 503
    assert "make install" in page.text
    assert_security_headers(page)
    assert asset.status_code == 404
    assert query.json() == {"data": {"__typename": "Query"}}
    assert any("make install" in record.getMessage() for record in caplog.records)
