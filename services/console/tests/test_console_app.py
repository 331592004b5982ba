"""The console's app without any other service: security headers, CSRF, redirects, its
own files, and that its pages stay out of the OpenAPI document (they are HTML, not API).
The browser tests (``browser/``) drive it against the whole platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flowchat_console.app import create_app
from flowchat_console.settings import Settings


def client_of(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(Settings.model_validate({"FLOWCHAT_ENV": "test"})) as c:
        yield c


async def test_every_answer_has_the_content_security_policy_and_a_csrf_cookie(
    client: httpx.AsyncClient,
):
    r = await client.get("/sign-in")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("fc_csrf=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" in cookie  # outside development
    token = client.cookies["fc_csrf"]
    assert f'value="{token}"' in r.text  # the form carries the same token


async def test_development_cookies_are_not_secure() -> None:
    async with client_of(Settings.model_validate({"FLOWCHAT_ENV": "development"})) as c:
        assert "Secure" not in (await c.get("/sign-in")).headers["set-cookie"]


async def test_a_post_without_the_csrf_token_is_refused(client: httpx.AsyncClient):
    await client.get("/sign-in")
    r = await client.post("/sign-in", data={"email": "a@b.example", "password": "x"})
    assert r.status_code == 403
    assert "Form expired" in r.text
    r = await client.post(
        "/sign-in",
        data={"email": "a@b.example", "password": "x", "csrf_token": "wrong" * 10},
    )
    assert r.status_code == 403
    r = await client.post("/sign-out", headers={"X-CSRF-Token": "x" * 43})
    assert r.status_code == 403


async def test_pages_need_a_session(client: httpx.AsyncClient):
    r = await client.get("/inbox?view=mine", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/sign-in?next=%2Finbox%3Fview%3Dmine"
    r = await client.get("/inbox/list", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401
    assert r.headers["hx-redirect"].startswith("/sign-in")


async def test_the_sign_in_page_never_sends_elsewhere(client: httpx.AsyncClient):
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        r = await client.get("/sign-in", params={"next": target})
        assert "evil.example" not in r.text


async def test_its_own_files_are_served_and_nothing_else(client: httpx.AsyncClient):
    r = await client.get("/static/vendor/htmx.min.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/static/vendor/axe.min.js")).status_code == 404
    assert (await client.get("/static/vendor/..%2Fpackage.json")).status_code == 404
    assert (await client.get("/static/app/app.css")).status_code == 200


async def test_pages_are_not_in_the_api_document(client: httpx.AsyncClient):
    assert create_app(Settings()).openapi()["paths"] == {}


async def test_ready_when_its_browser_assets_are_installed(
    client: httpx.AsyncClient, tmp_path: Path
):
    assert (await client.get("/readyz")).status_code == 200
    async with client_of(Settings(node_modules=tmp_path)) as bare:
        assert (await bare.get("/readyz")).json()["checks"] == {"assets": False}


def test_the_menu_shows_each_role_only_what_its_services_let_it_open():
    from dataclasses import dataclass

    from flowchat_console import nav

    @dataclass
    class Who:
        role: str

    served = [item.path for item in nav.MENU]

    def labels(role: str) -> set[str]:
        return {item.label for item in nav.menu(Who(role), served)}

    # the conversation service admits owners, admins and operators only
    tenant_setup = {"Contacts", "Campaigns", "Catalog"}
    assert not labels("viewer") & tenant_setup
    assert not labels("agent") & tenant_setup
    assert tenant_setup <= labels("admin")
    assert {"Inbox", "Conversations"} <= labels("viewer")
    assert not labels("admin") & {"Tenants", "Dead letters", "Health"}
    assert {"Tenants", "Dead letters", "Health"} <= labels("operator")


async def test_every_answer_says_where_its_server_time_went(client: httpx.AsyncClient):
    r = await client.get("/sign-in")
    timing = dict(part.strip().split(";", 1)[0:2] for part in r.headers["server-timing"].split(","))
    assert set(timing) == {"total", "upstream", "render"}
    assert timing["upstream"].startswith("dur=0.0;desc=")  # no upstream call for this page
    assert float(timing["render"].removeprefix("dur=")) > 0
