"""A tenant admin and an operator in the console, in a real browser (issue 24).

- The tenant admin imports contacts from a CSV file (the report lists each rejected row
  with its line), previews a campaign (dry run: the first messages rendered), creates
  it, starts it and watches the funnel fill on the same page (htmx, no reload) until
  every contact's message is delivered through the sandbox; then every other admin page
  (numbers, templates, catalog, orders, integrations, team, audit) is opened.
- The operator finds a message the sender parked (the sandbox answered 500; one
  attempt allowed here), replays it from the DLQ page, and the customer receives it
  through the sandbox; the replay is in the DLQ's audit trail with the operator's id.

Every page is checked with axe-core and photographed (``.run/artifacts/console/``).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from console_kit import AXE, CHROMIUM, Pages, Person, add_person, add_template, sign_in
from playwright.async_api import Browser, Page, expect

from flowchat_platform.testing import (
    create_database,
    drop_database,
    temporary_redis_db,
    temporary_vhost,
)
from stackkit import ProcessStack, load_script
from test_e2e_conversation_commerce import open_shop

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CONTACTS = 24


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    """The harness's stack, with a sender that parks a send after one failed attempt (so
    a 500 from the sandbox parks it at once, not after five backed-off retries)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/stack.py browser)")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make setup` installs it (npm ci)")
    tmp = tmp_path_factory.mktemp("console-admin-stack")
    database_url = asyncio.run(create_database())
    try:
        with temporary_vhost() as amqp_url, temporary_redis_db() as redis_url:
            stack = ProcessStack.create(
                tmp,
                amqp_url=amqp_url,
                database_url=database_url,
                redis_url=redis_url,
                service_env={"sender": {"FLOWCHAT_SENDER_MAX_ATTEMPTS": "1"}},
            )
            stack.start(timeout_s=300)  # a busy machine starts nine processes slowly
            try:
                yield stack
            finally:
                codes = stack.stop()
                bad = {n: c for n, c in codes.items() if c != 0}
                assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
    finally:
        asyncio.run(drop_database(database_url))


def contacts_csv(tag: str) -> tuple[str, list[str]]:
    """``CONTACTS`` good rows and three bad ones (lines 3, 6 and the last)."""
    phones = [f"+23480{secrets.randbelow(10**8):08d}" for _ in range(CONTACTS)]
    rows = ["phone,name,tags,city"]
    for i, phone in enumerate(phones):
        rows.append(f"{phone},Customer {i},{tag},Lagos")
        if i == 0:
            rows.append("08012345679,No Plus,,")  # line 3: no country code
        if i == 2:
            rows.append(f"{phones[0]},Twice,,")  # line 6: a duplicate of line 2
    rows.append("not-a-phone,Who,,")
    return "\n".join(rows) + "\n", phones


async def test_a_tenant_admin_imports_contacts_and_runs_a_campaign_watching_the_funnel(
    console_stack: ProcessStack, browser: Browser, pages: Pages, tmp_path: Path
) -> None:
    console = console_stack.urls["console"]
    async with httpx.AsyncClient(timeout=10) as http:
        shop = await open_shop(console_stack, load_script, http)
        admin = await add_person(console_stack, http, shop.seeded.tenant_id, "admin", "grace")
        template = f"console_sale_{secrets.randbelow(10**6)}"
        await add_template(shop, template)
        tag = f"console-{secrets.randbelow(10**6)}"
        text, phones = contacts_csv(tag)
        csv = tmp_path / "contacts.csv"
        csv.write_text(text)

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await sign_in(page, console, admin)

        # contacts: the CSV import and its report of rejected rows
        await page.get_by_role("link", name="Contacts").click()
        await expect(page.get_by_role("heading", name="Contacts", level=1)).to_be_visible()
        await page.get_by_label("CSV file", exact=True).set_input_files(str(csv))
        # in parts of 10 rows (27 rows: three parts), every progress shown kept
        await page.evaluate(
            """() => {
              document.querySelector('form[data-import-parts]').dataset.partRows = '10';
              const status = document.querySelector('[data-testid=import-progress]');
              window.__progress = [];
              new MutationObserver(() => window.__progress.push(status.textContent))
                .observe(status, {childList: true, characterData: true, subtree: true});
            }"""
        )
        await page.get_by_role("button", name="Import").click()
        progress = page.get_by_test_id("import-progress")
        await expect(progress).to_have_text("27 of 27 rows (100%)")
        seen = await page.evaluate("window.__progress")
        assert seen[:3] == ["0 of 27 rows (0%)", "10 of 27 rows (37%)", "20 of 27 rows (74%)"]
        assert await page.locator("#import-bar").get_attribute("value") == "100"
        report = page.locator("#import-result")
        await expect(report.get_by_test_id("imported")).to_have_text(str(CONTACTS))
        await expect(report.get_by_test_id("rejected")).to_have_text("3")
        rejected = report.locator("table tbody tr")
        await expect(rejected).to_have_count(3)
        await expect(rejected.nth(0)).to_contain_text("3")
        await expect(rejected.nth(0)).to_contain_text("country code")
        await expect(rejected.nth(1)).to_contain_text("duplicate of line 2")
        await expect(rejected.nth(2)).to_contain_text("28")  # the last line: the third part
        await pages.check(page, "contacts-import-report")
        await page.get_by_label("Tag", exact=True).fill(tag)
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("table tbody tr")).to_have_count(CONTACTS)
        await pages.check(page, "contacts")

        # campaigns: the dry run, then create (draft) and start on its page
        await page.get_by_role("link", name="Campaigns").click()
        await page.get_by_label("Name", exact=True).fill("Cement week")
        await page.get_by_label("Approved template (name)").fill(template)
        await page.get_by_label("Body parameters", exact=False).fill("{{first_name|friend}}")
        await page.get_by_label("Audience", exact=False).fill(tag)
        await page.get_by_label("Messages per second", exact=False).fill("20")
        await page.get_by_role("button", name="Preview (dry run)").click()
        dry = page.locator("#dry-run")
        await expect(dry.get_by_test_id("eligible")).to_have_text(str(CONTACTS))
        await expect(dry.locator("li").first).to_contain_text("Hello Customer, cement is 10% off")
        await pages.check(page, "campaign-new-dry-run")
        await page.get_by_role("button", name="Create as draft").click()
        await expect(page).to_have_url(re.compile(r"/campaigns/[^/]+$"))
        await expect(page.get_by_test_id("campaign-status")).to_have_text("draft")
        await expect(page.locator('td[data-stage="queued"]')).to_have_text("0")
        await pages.check(page, "campaign-draft")

        # the funnel fills on this page (no reload: the marker set now survives)
        await page.evaluate("window.__sameDocument = true")
        await page.get_by_role("button", name="Start").click()
        await expect(page.get_by_test_id("campaign-status")).to_contain_text(
            re.compile("running|completed")
        )
        await page.evaluate("window.__sameDocument = true")
        funnel = page.locator("#funnel")
        await expect(page.locator('td[data-stage="delivered"]')).to_have_text(
            str(CONTACTS), timeout=60_000
        )
        await expect(funnel).to_have_attribute("data-final", "yes", timeout=30_000)
        assert await page.evaluate("window.__sameDocument === true")
        await expect(page.locator('td[data-stage="queued"]')).to_have_text(str(CONTACTS))
        await expect(page.locator('td[data-stage="sent"]')).to_have_text(str(CONTACTS))
        await expect(page.locator('td[data-stage="failed"]')).to_have_text("0")
        await pages.check(page, "campaign-funnel")
        # each contact got the template once, through the sandbox
        r = await http.get(
            f"{shop.sandbox}/sandbox/messages",
            params={"phone_number_id": shop.seeded.phone_number_id},
        )
        sent = [m["wa_id"] for m in r.json() if m.get("type") == "template"]
        assert sorted(sent) == sorted(p.lstrip("+") for p in phones)

        await page.get_by_role("link", name="All campaigns").click()
        await expect(page.get_by_role("link", name="Cement week")).to_be_visible()
        await pages.check(page, "campaigns")

        # the other admin pages
        await page.get_by_role("link", name="Numbers").click()
        await expect(page.locator("table tbody tr")).to_have_count(1)
        await pages.check(page, "numbers")
        await page.get_by_role("link", name=re.compile("^Templates")).click()
        row = page.locator("tr", has_text=template)
        await expect(row).to_contain_text("APPROVED")
        await pages.check(page, "templates")
        await page.get_by_role("link", name="Catalog").click()
        await expect(page.get_by_role("cell", name="CEM-50", exact=True)).to_be_visible()
        await pages.check(page, "catalog")
        await page.get_by_role("link", name="Orders").click()
        await expect(page.get_by_role("heading", name="Orders")).to_be_visible()
        await pages.check(page, "orders")
        await page.get_by_role("link", name="Integrations").click()
        await page.get_by_label("Name", exact=True).fill("crm")
        await page.get_by_label("read", exact=True).check()
        await page.get_by_role("button", name="Create key").click()
        await expect(page.get_by_test_id("api-key")).to_contain_text("fc_")
        # a webhook endpoint: its secret shown once, a test ping, its delivery log
        hook = f"{shop.sandbox}/console-hook"
        await page.get_by_label("URL (https)").fill(hook)
        await page.locator('input[name="event_types"]').first.check()
        await page.get_by_role("button", name="Create endpoint").click()
        await expect(page.get_by_test_id("secret")).not_to_be_empty()
        await page.get_by_role("button", name="Test ping").click()
        await expect(page.get_by_role("status").filter(has_text="Test ping")).to_be_visible()
        await pages.check(page, "integrations")
        await page.get_by_role("link", name=hook).click()
        await expect(page.get_by_role("heading", name=f"Deliveries to {hook}")).to_be_visible()
        await pages.check(page, "integrations-deliveries")
        await page.get_by_role("link", name="Team").click()
        await expect(page.get_by_role("cell", name=admin.email, exact=True)).to_be_visible()
        await pages.check(page, "team")
        await page.get_by_role("link", name="Audit log").click()
        await expect(page.locator("td", has_text="api_key")).not_to_have_count(0)
        await pages.check(page, "audit")
        await context.close()
        csp = [e for e in errors if "Content Security Policy" in e]
        assert not csp, csp


async def add_operator(stack: ProcessStack, http: httpx.AsyncClient) -> Person:
    tenant = stack.urls["tenant"]
    operator = {"Authorization": f"Bearer {stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    email = f"ops-{secrets.token_hex(4)}@flowchat.example"
    r = await http.post(
        f"{tenant}/v1/operator/users", json={"email": email, "name": "Ops"}, headers=operator
    )
    assert r.status_code == 201, r.text
    invited = r.json()
    password = secrets.token_urlsafe(16)
    r = await http.post(
        f"{tenant}/v1/auth/invitations/accept",
        json={"token": invited["invitation"]["token"], "password": password},
    )
    assert r.status_code == 200, r.text
    return Person(email, password, invited["user"]["user_id"], "operator")


async def parked(page: Page, tenant_id: str) -> int:
    await page.goto(page.url.split("/operator")[0] + f"/operator/dlq?tenant_id={tenant_id}")
    return await page.locator("tbody tr[data-message-id]").count()


async def test_an_operator_replays_a_parked_message_and_it_is_delivered(
    console_stack: ProcessStack, browser: Browser, pages: Pages
) -> None:
    console = console_stack.urls["console"]
    async with httpx.AsyncClient(timeout=10) as http:
        shop = await open_shop(console_stack, load_script, http)
        ops = await add_operator(console_stack, http)
        number = f"{shop.sandbox}/sandbox/numbers/{shop.seeded.phone_number_id}/faults"
        r = await http.put(number, json={"error_rate": 1.0})
        assert r.status_code == 200, r.text
        customer = shop.new_customer()
        await shop.send(customer, {"text": "Hi"})  # the bot's two answers (the greeting,
        await shop.send(customer, {"text": "help"})  # then the help): both refused

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await sign_in(page, console, ops)
        await expect(page).to_have_url(re.compile(r"/operator$"))
        await expect(page.locator("td", has_text=shop.seeded.tenant_id)).to_be_visible()
        await pages.check(page, "operator-tenants")

        deadline = time.monotonic() + 30
        while await parked(page, shop.seeded.tenant_id) < 2:
            assert time.monotonic() < deadline, "nothing parked"
            await asyncio.sleep(0.3)
        rows = page.locator("tbody tr[data-message-id]")
        await expect(rows.first).to_contain_text("retries exhausted")
        await pages.check(page, "operator-dlq")
        assert await shop.outbound(customer) == []  # the sandbox took nothing

        r = await http.delete(number)
        assert r.status_code == 204, r.text
        first = await rows.first.get_attribute("data-message-id")
        await rows.first.get_by_role("button", name=re.compile("^Replay")).click()
        await expect(page.get_by_test_id("dlq-done")).to_have_text("replayed 1")
        await expect(page.locator(f'tr[data-message-id="{first}"]')).to_have_count(0)
        got = await shop.wait(customer, 1)  # delivered through the sandbox
        assert len(got) == 1
        audit = page.locator("#dlq-audit-h + .table-wrap tbody tr").first
        await expect(audit).to_contain_text(f"user:{ops.user_id}")
        await expect(audit).to_contain_text("replay")
        await pages.check(page, "operator-dlq-replayed")

        # the other parked message: replayed with the filters' "all" button
        await page.get_by_role("button", name="Replay all shown").click()
        await expect(page.get_by_test_id("dlq-done")).to_have_text("replayed 1")
        await shop.wait(customer, 2)

        await page.get_by_role("link", name="Health").click()
        await expect(page.get_by_role("heading", name="Queues")).to_be_visible()
        await expect(page.locator("td", has_text="whatsapp.outbound").first).to_be_visible()
        await pages.check(page, "operator-health")

        # the operator looks at the tenant's campaigns
        await page.get_by_role("link", name="Tenants").click()
        await (
            page.locator("tr", has_text=shop.seeded.tenant_id)
            .get_by_role("link", name=re.compile("^Campaigns"))
            .click()
        )
        await expect(page).to_have_url(re.compile(r"/campaigns$"))
        await expect(page.get_by_role("heading", name="Campaigns", level=1)).to_be_visible()
        await context.close()
