"""An agent answers a waiting customer in the console, in a real browser (issue 24).

The whole platform runs as processes; the customer talks through the sandbox. The agent
signs in on the console (the tenant service's users), sees the customer appear in the
waiting list without reloading (server-sent events), opens the thread with its history,
claims it, replies (the customer receives it through the sandbox), sees the customer's
answer arrive live, resolves (the bot speaks again), finds the conversation with the
search, and signs out. A photo the customer sends shows in the thread (loaded through
the console and the sender); its URL is refused to an agent of another tenant. Every page
is checked with axe-core and photographed; the inbox is also checked at 360 px.
"""

from __future__ import annotations

import base64
import re
import secrets
import struct
import time
import zlib

import httpx
import pytest
from console_kit import Pages, add_person, add_template, sign_in
from playwright.async_api import Browser, expect

from stackkit import ProcessStack, load_script
from test_e2e_conversation_commerce import open_shop

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def test_an_agent_answers_a_waiting_customer_and_resolves(
    console_stack: ProcessStack, browser: Browser, pages: Pages
) -> None:
    console = console_stack.urls["console"]
    async with httpx.AsyncClient(timeout=10) as http:
        shop = await open_shop(console_stack, load_script, http)
        agent = await add_person(console_stack, http, shop.seeded.tenant_id, "agent", "ada")
        template = f"console_hello_{secrets.randbelow(10**6)}"
        await add_template(shop, template)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on(
            "console",
            lambda m: (
                errors.append(f"{page.url} {m.location} {m.text}") if m.type == "error" else None
            ),
        )

        # not signed in: the inbox sends to the sign-in page
        await page.goto(f"{console}/inbox")
        await expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Finbox"))
        await pages.check(page, "sign-in")
        # a wrong password is refused on the page
        await page.get_by_label("E-mail").fill(agent.email)
        await page.get_by_label("Password").fill("not-the-password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("Wrong e-mail or password")

        await sign_in(page, console, agent)
        await expect(page).to_have_url(re.compile(r"/inbox"))
        await expect(page.locator("[data-live-src]")).to_have_attribute("data-live", "open")

        # the customer asks for a person while the agent looks at the inbox
        customer = shop.new_customer()
        await shop.say(customer, "Hi", 1)
        (connecting,) = await shop.say(customer, "agent", 1)
        assert "connecting you" in connecting
        row = page.locator(".conv-list a", has_text=f"+{customer}").or_(
            page.locator(".conv-list a", has_text="Ada")
        )
        await expect(row.first).to_be_visible(timeout=20_000)  # live: no reload
        await expect(row.first).to_contain_text("waiting")
        await pages.check(page, "inbox-waiting")

        await row.first.click()
        thread = page.locator("#thread")
        await expect(thread.locator(".msg.inbound", has_text="Hi")).to_be_visible()
        await expect(thread.locator(".msg.outbound", has_text="connecting you")).to_be_visible()
        await expect(thread.locator("#window-state")).to_contain_text("window open")
        await thread.get_by_role("button", name="Claim").click()
        await expect(thread).to_have_attribute("data-status", "assigned")

        body = f"Hi, this is Ada from Acme ({time.monotonic_ns() % 10_000}). How can I help?"
        await thread.get_by_role("textbox", name="Reply").fill(body)
        await thread.get_by_role("button", name="Send", exact=True).click()
        await expect(thread.locator(".msg.outbound", has_text=body)).to_be_visible()
        shop.expected[customer] += 1
        got = await shop.wait(customer, shop.expected[customer])
        assert shop.demo.render(got[-1]["message"]) == body  # through the sandbox

        # the customer answers: it shows in the open thread without reloading
        await shop.send(customer, {"text": "Thanks, where is my parcel?"})
        await expect(thread.locator(".msg.inbound", has_text="where is my parcel")).to_be_visible(
            timeout=20_000
        )
        # a photo: the thread shows it, fetched by the console through the sender with the
        # number's token (the sandbox checks it), the bytes of what the customer sent
        photo = png(48, 32, (200, 40, 40))
        await shop.send(
            customer,
            {
                "image": {
                    "mime_type": "image/png",
                    "caption": "the parcel label",
                    "data_base64": base64.b64encode(photo).decode(),
                }
            },
        )
        image = thread.locator(".msg.inbound img[alt='Image from Customer: the parcel label']")
        await expect(image).to_be_visible(timeout=20_000)
        await expect(image).to_have_attribute("loading", "lazy")
        await page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=await image.element_handle()
        )
        assert await image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [48, 32]
        src = str(await image.get_attribute("src"))
        assert src.startswith("/media/")
        served = await page.request.get(f"{console}{src}")
        assert served.status == 200
        assert await served.body() == photo
        assert served.headers["cache-control"] == "private, max-age=86400"
        await pages.check(page, "inbox-thread")

        # an internal note
        await thread.get_by_text("Internal note").click()
        await thread.get_by_label("Note (never sent to the customer)").fill("Asked about a parcel")
        await thread.get_by_role("button", name="Add note").click()
        await expect(thread.locator(".msg.note", has_text="Asked about a parcel")).to_be_visible()

        # the template picker: the number's approved templates, the chosen one's fields
        await thread.get_by_text("Send a template").click()
        picker = thread.get_by_label("Approved template")
        await expect(picker.locator("option", has_text=f"{template} (en)")).to_have_count(1)
        await picker.select_option(f"{template}|en")
        await expect(thread.get_by_test_id("template-body")).to_have_text(
            "Hello {{1}}, cement is 10% off this week."
        )
        await thread.get_by_label("Parameter {{1}}").fill("Ada")
        await pages.check(page, "inbox-template-picker")
        await thread.get_by_role("button", name="Send template").click()
        shop.expected[customer] += 1
        sent = (await shop.wait(customer, shop.expected[customer]))[-1]["message"]
        assert sent["type"] == "template"
        assert sent["template"]["name"] == template
        assert sent["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Ada"}]

        await thread.get_by_role("button", name="Resolve").click()
        await expect(thread).to_have_attribute("data-status", "resolved")
        shop.expected[customer] += 1
        back = await shop.wait(customer, shop.expected[customer])
        assert "assistant again" in shop.demo.render(back[-1]["message"])

        # search across the history
        await page.get_by_role("link", name="Conversations").click()
        await page.get_by_label("Search messages").fill("parcel")
        await page.get_by_role("button", name="Search").click()
        result = page.locator("#results li", has_text="parcel")
        await expect(result.first).to_be_visible()
        await expect(result.first.locator("mark").first).to_have_text(re.compile("parcel", re.I))
        await pages.check(page, "conversations-search")
        await result.first.get_by_role("link").click()
        await expect(page.locator(".msg", has_text=body)).to_be_visible()
        await pages.check(page, "conversation-thread")

        # a 360 px phone: nothing wider than the screen, the menu behind a button
        phone = await browser.new_context(viewport={"width": 360, "height": 740})
        await phone.add_cookies(await context.cookies())  # type: ignore[arg-type]
        small = await phone.new_page()
        await small.goto(f"{console}/inbox?view=resolved")
        width = await small.evaluate("document.documentElement.scrollWidth")
        wide = await small.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect()"
            ".right > 361).slice(0, 5).map(e => e.tagName + '.' + e.className)"
        )
        assert width <= 360, (width, wide)
        await expect(small.get_by_role("link", name="Conversations")).to_be_hidden()
        await small.get_by_role("button", name="Menu").click()
        await expect(small.get_by_role("link", name="Conversations")).to_be_visible()
        await pages.check(small, "inbox-360px")
        await phone.close()

        # keyboard: the skip link is the first stop and leads to the content
        await page.goto(f"{console}/inbox")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

        # signing out ends the session: the inbox sends to the sign-in page again
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/sign-in"))
        await page.goto(f"{console}/inbox")
        await expect(page).to_have_url(re.compile(r"/sign-in"))
        # the photo's URL, signed in as nobody: the sign-in page; as an agent of another
        # tenant: unknown (and no way to forge one for their own tenant)
        anonymous = await page.request.get(f"{console}{src}", max_redirects=0)
        assert anonymous.status == 303
        other = await open_shop(console_stack, load_script, http)
        stranger = await add_person(console_stack, http, other.seeded.tenant_id, "agent", "eve")
        theirs = await browser.new_context()
        their_page = await theirs.new_page()
        await sign_in(their_page, console, stranger)
        denied = await their_page.request.get(f"{console}{src}")
        assert denied.status == 404
        assert await denied.body() != photo
        await theirs.close()

        await context.close()
        csp = [e for e in errors if "Content Security Policy" in e]
        assert not csp, csp


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG of one colour (what a customer's phone might send)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
