"""Helpers of the console's browser tests (imported by bare name: pyproject's pythonpath):
accessibility checks and screenshots (:class:`Pages`), people of a tenant, signing in."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page

from stackkit import ROOT, ProcessStack
from test_e2e_conversation_commerce import Shop

CHROMIUM = Path(os.environ.get("FLOWCHAT_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "services/console/node_modules/axe-core/axe.min.js"
ARTIFACTS = Path(os.environ.get("FLOWCHAT_ARTIFACTS_DIR", ROOT / ".run/artifacts")) / "console"
BLOCKING = ("serious", "critical")


@dataclass
class Pages:
    """Accessibility check and screenshot of each page a test visits."""

    folder: Path
    axe_source: str

    async def check(self, page: Page, name: str, *, full_page: bool = True) -> list[Any]:
        """axe-core in the page (serious/critical violations fail the test); a screenshot
        ``<name>.png``. Returns the minor violations (reported, not failing)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(self.folder / f"{name}.png"), full_page=full_page)
        # evaluated through the DevTools protocol: the page's CSP (script-src 'self') still
        # holds for the page itself
        await page.evaluate(self.axe_source)
        result = await page.evaluate(
            "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
            " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})); }"
        )
        blocking = [v for v in result if v["impact"] in BLOCKING]
        assert not blocking, f"{name}: accessibility violations: {blocking}"
        return [v for v in result if v["impact"] not in BLOCKING]


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    user_id: str
    role: str


async def add_person(
    stack: ProcessStack, http: httpx.AsyncClient, tenant_id: str, role: str, name: str
) -> Person:
    """A user of ``tenant_id`` with ``role``: invited by the operator key through the tenant
    service's API, password set from the invitation (as a real person would)."""
    tenant = stack.urls["tenant"]
    operator = {"Authorization": f"Bearer {stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    email = f"{name}-{secrets.token_hex(4)}@acme.example"
    r = await http.post(
        f"{tenant}/v1/tenants/{tenant_id}/users",
        json={"email": email, "role": role, "name": name.title()},
        headers=operator,
    )
    assert r.status_code == 201, r.text
    invited = r.json()
    password = secrets.token_urlsafe(16)
    r = await http.post(
        f"{tenant}/v1/auth/invitations/accept",
        json={"token": invited["invitation"]["token"], "password": password},
    )
    assert r.status_code == 200, r.text
    return Person(email, password, invited["user"]["user_id"], role)


async def sign_in(page: Page, console: str, person: Person) -> None:
    await page.goto(f"{console}/sign-in")
    await page.get_by_label("E-mail").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/sign-in" not in url)


async def access_token(stack: ProcessStack, http: httpx.AsyncClient, person: Person) -> str:
    r = await http.post(
        f"{stack.urls['tenant']}/v1/auth/login",
        json={"email": person.email, "password": person.password},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def add_template(shop: Shop, name: str) -> None:
    """An approved MARKETING template ``name`` (``Hello {{1}}, cement is 10% off this
    week.``) in the sandbox's catalog of the shop's number."""
    r = await shop.http.post(
        f"{shop.sandbox}/sandbox/templates",
        json={
            "waba_id": "2099" + shop.seeded.phone_number_id[4:],
            "name": name,
            "language": "en",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Hello {{1}}, cement is 10% off this week."}],
        },
    )
    assert r.status_code == 201, r.text
