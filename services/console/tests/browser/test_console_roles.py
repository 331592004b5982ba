"""Roles in the console, in a real browser (issue 24): a viewer cannot reach an admin
action. The console hides it (no button, no menu entry) and refuses it when forced (403),
and the service refuses it too when the viewer's own token asks it directly. A tenant
admin, by contrast, sees the actions. A POST without the CSRF token is refused.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from console_kit import Pages, access_token, add_person, sign_in
from playwright.async_api import Browser, Page, expect

from stackkit import ProcessStack, load_script
from test_e2e_conversation_commerce import open_shop

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def csrf_of(page: Page) -> str:
    headers = await page.locator("body").get_attribute("hx-headers")
    assert headers
    return str(json.loads(headers)["X-CSRF-Token"])


async def test_a_viewer_cannot_reach_an_admin_action(
    console_stack: ProcessStack, browser: Browser, pages: Pages
) -> None:
    console = console_stack.urls["console"]
    async with httpx.AsyncClient(timeout=10) as http:
        shop = await open_shop(console_stack, load_script, http)
        tenant_id = shop.seeded.tenant_id
        viewer = await add_person(console_stack, http, tenant_id, "viewer", "vic")
        admin = await add_person(console_stack, http, tenant_id, "admin", "ann")
        customer = shop.new_customer()
        await shop.say(customer, "Hi", 1)
        await shop.say(customer, "agent", 1)

        context = await browser.new_context()
        page = await context.new_page()
        await sign_in(page, console, viewer)
        await expect(page).to_have_url(re.compile(r"/inbox"))
        row = page.locator(".conv-list a", has_text=f"+{customer}").or_(
            page.locator(".conv-list a", has_text="Ada")
        )
        await expect(row.first).to_be_visible(timeout=20_000)
        await row.first.click()
        thread = page.locator("#thread")
        await expect(thread.locator(".msg.inbound", has_text="agent")).to_be_visible()
        conversation_id = await thread.get_attribute("data-conversation")
        # hidden: a viewer reads, nothing more
        for action in ("Claim", "Resolve", "Assign", "Send", "Add note"):
            await expect(thread.get_by_role("button", name=action)).to_have_count(0)
        nav = page.get_by_role("navigation", name="Main")
        await expect(nav.get_by_role("link", name="Inbox")).to_be_visible()
        for admin_area in ("Team", "Integrations", "Tenants", "Dead letters"):
            await expect(nav.get_by_role("link", name=admin_area)).to_have_count(0)
        await pages.check(page, "inbox-viewer")

        # forced through the console (with a valid CSRF token): refused by the console
        token = await csrf_of(page)
        forced = await page.request.post(
            f"{console}/inbox/conversations/{conversation_id}/claim",
            headers={"X-CSRF-Token": token},
        )
        assert forced.status == 403
        assert "Not allowed" in await forced.text()
        forced = await page.request.post(
            f"{console}/inbox/conversations/{conversation_id}/assign",
            headers={"X-CSRF-Token": token},
            form={"agent_id": viewer.user_id},
        )
        assert forced.status == 403
        await page.goto(f"{console}/inbox/conversations/{conversation_id}/panel")
        await expect(page.get_by_role("button", name="Claim")).to_have_count(0)

        # and refused by the services themselves, asked with the viewer's own token
        bearer = {"Authorization": f"Bearer {await access_token(console_stack, http, viewer)}"}
        r = await http.post(
            f"{console_stack.urls['inbox']}/v1/conversations/{conversation_id}/claim",
            headers=bearer,
        )
        assert r.status_code == 403, r.text
        r = await http.post(
            f"{console_stack.urls['tenant']}/v1/tenants/{tenant_id}/users",
            json={"email": "mallory@acme.example", "role": "admin"},
            headers=bearer,
        )
        assert r.status_code == 403, r.text

        # a POST without the CSRF token is refused, whoever sends it
        r2 = await page.request.post(f"{console}/inbox/conversations/{conversation_id}/claim")
        assert r2.status == 403
        assert "Form expired" in await r2.text()
        await context.close()

        # an admin sees the actions the viewer does not
        admin_context = await browser.new_context()
        admin_page = await admin_context.new_page()
        await sign_in(admin_page, console, admin)
        await admin_page.goto(f"{console}/inbox?view=waiting&c={conversation_id}")
        admin_thread = admin_page.locator("#thread")
        await expect(admin_thread.get_by_role("button", name="Claim")).to_be_visible()
        await expect(admin_thread.get_by_role("button", name="Assign")).to_be_visible()
        await pages.check(admin_page, "inbox-admin")
        await admin_context.close()
