"""Reminders: one message to one customer at a set time, within WhatsApp's rules.

The domain, no I/O: the values, the firing rule and the bot's reminders; the service
the API uses is :class:`~flowchat_conversation.outreach.reminder_service.ReminderService`.

Kinds: ``payment_due`` (before an order's due date; skipped once the order is paid or
cancelled), ``abandoned_cart`` (after inactivity), ``order_follow_up``, ``restock`` (a
customer asked for an out-of-stock product: waits while the product is still out of
stock), ``custom``.

When a reminder fires (:func:`decide`):

- blocked contact → skipped; a ``marketing`` reminder to an opted-out contact → skipped;
- inside the 24 h customer-service window (the contact wrote less than 24 h ago) and a
  ``text`` given → a **session** text message;
- otherwise, with a ``template`` given → the **template**;
- otherwise → skipped (``outside_window``): a free-form message would fail with 131047.

``{{name}}``-style fields (see :mod:`flowchat_conversation.outreach.template_catalog`)
work in the text and in template parameter values. The scheduler
(:mod:`flowchat_conversation.outreach.scheduler`) fires each reminder once, across
replicas and restarts; its command's idempotency key is ``reminder:<id>``.

Hooks for the commerce bot (:class:`BotReminders` builds them; the conversation service
writes them in the conversation's own transaction, so a reminder exists exactly when
the order or cart that caused it was committed):

- ``payment_due``: when an order is placed, ``payment_due_before`` before its invoice
  is due (dedupe key ``payment_due:<order>``); cancelled when the order is paid or
  cancelled (and skipped at firing time if that happened some other way). Past the due
  time the service cancels the unpaid order (``OrderService.cancel_overdue``).
- ``abandoned_cart``: ``abandoned_cart_after`` after the customer's last message while
  the cart is not empty; every new message moves it (the pending one is replaced), an
  order or an emptied cart cancels it.
- ``restock``: the customer asked for a product that is out of stock; one pending per
  customer and product, it fires at the first check after the product is back.
- ``order_follow_up``: ``order_follow_up_after`` after the order is delivered.

Each has a session text (inside the 24 h window) and, when the operator configured one
for that kind (``FLOWCHAT_CONVERSATION_REMINDER_TEMPLATES``), a template for outside it;
without a template a reminder outside the window is skipped (``outside_window``).
The API schedules custom reminders the same way
(:meth:`~flowchat_conversation.outreach.reminder_service.ReminderService.schedule`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from flowchat_contracts import OutboundContent, TextContent
from flowchat_conversation.outreach.reminder_kinds import (
    DEFAULT_CATEGORY,
    ReminderCategory,
    ReminderKind,
    ReminderState,
    ReminderTemplate,
)
from flowchat_conversation.outreach.template_catalog import (
    ParameterMap,
    Template,
    contact_fields,
    content,
    render_value,
)

WINDOW = timedelta(hours=24)
#: A restock reminder whose product is still out of stock looks again this much later.
RESTOCK_RECHECK = timedelta(hours=1)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReminderIn(_In):
    account_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    #: A phone number, or a BSUID for a customer who hides it.
    phone: Annotated[str, StringConstraints(min_length=3, max_length=140)]
    kind: ReminderKind = "custom"
    #: When to fire (with an offset); or ``delay_s`` from now.
    due_at: datetime | None = None
    delay_s: int | None = Field(default=None, ge=0, le=90 * 86400)
    #: The session message (inside the 24 h window).
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    #: The template (outside the window).
    template: ReminderTemplate | None = None
    category: ReminderCategory | None = None
    #: What it is about: an order id (payment_due), a sku (restock), …
    reference: Annotated[str, StringConstraints(max_length=128)] | None = None
    #: Scheduling the same key twice keeps the first reminder.
    dedupe_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _check(self) -> ReminderIn:
        if (self.due_at is None) == (self.delay_s is None):
            raise ValueError("give exactly one of due_at and delay_s")
        if self.due_at is not None and self.due_at.tzinfo is None:
            raise ValueError("due_at needs a UTC offset")
        if self.text is None and self.template is None:
            raise ValueError("give a text (session message), a template, or both")
        if self.kind in ("payment_due", "restock") and not self.reference:
            raise ValueError(f"a {self.kind} reminder needs a reference (order id or sku)")
        return self


class Reminder(BaseModel):
    reminder_id: str
    tenant_id: str
    account_id: str
    phone: str
    kind: ReminderKind
    due_at: datetime
    state: ReminderState
    category: ReminderCategory
    text: str | None
    template: dict[str, Any] | None
    reference: str | None
    dedupe_key: str | None
    outcome: str | None
    message_id: str
    fired_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class NewReminder:
    reminder_id: str
    tenant_id: str
    account_id: str
    wa_id: str
    kind: ReminderKind
    due_at: datetime
    category: ReminderCategory
    text: str | None
    template: dict[str, Any] | None
    reference: str | None
    dedupe_key: str | None
    message_id: str


@dataclass(frozen=True)
class DueReminder:
    """A reminder claimed by the scheduler, with the facts the decision needs."""

    reminder_id: str
    tenant_id: str
    account_id: str
    wa_id: str
    kind: str
    category: str
    text: str | None
    template: dict[str, Any] | None
    message_id: str
    #: None when the tenant has no contact with that number yet.
    contact_status: str | None = None
    #: Where to send: the phone number when known, else the BSUID (None: ``wa_id``).
    address: str | None = None
    marketing_opt_in: bool = True
    last_inbound_at: datetime | None = None
    name: str | None = None
    attributes: dict[str, Any] | None = None
    #: The reason is gone (order paid or cancelled).
    resolved: bool = False
    #: Not yet (restock: the product is still out of stock).
    waiting: bool = False


@dataclass(frozen=True)
class Send:
    content: OutboundContent
    category: Literal["marketing", "utility", "service"]
    outcome: Literal["session", "template"]


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Wait:
    until: datetime


Decision = Send | Skip | Wait


def in_window(last_inbound_at: datetime | None, now: datetime) -> bool:
    return last_inbound_at is not None and now - last_inbound_at < WINDOW


def decide(reminder: DueReminder, now: datetime) -> Decision:
    """What firing ``reminder`` now does: send a session message or a template, wait, skip."""
    if reminder.contact_status == "blocked":
        return Skip("blocked")
    if reminder.category == "marketing" and not reminder.marketing_opt_in:
        return Skip("opted_out")
    if reminder.resolved:
        return Skip("resolved")
    if reminder.waiting:
        return Wait(now + RESTOCK_RECHECK)
    fields = contact_fields(
        name=reminder.name,
        wa_id=reminder.address or reminder.wa_id,
        attributes=reminder.attributes or {},
    )
    if reminder.text and in_window(reminder.last_inbound_at, now):
        text, _ = render_value(reminder.text, fields)
        if text:
            return Send(TextContent(body=text), "service", "session")
    if reminder.template:
        template = Template(
            name=reminder.template["name"],
            language=reminder.template["language"],
            status="APPROVED",
            category=reminder.category.upper(),
            parameter_format="NAMED"
            if isinstance((reminder.template.get("parameters") or {}).get("body"), dict)
            else "POSITIONAL",
            components=(),
        )
        rendered = _render_template(reminder.template, fields)
        return Send(
            content(template, rendered),
            "marketing" if reminder.category == "marketing" else "utility",
            "template",
        )
    return Skip("outside_window")


def _render_template(spec: dict[str, Any], fields: dict[str, str]) -> list[dict[str, Any]]:
    """Components for a reminder template: its value specs filled, without the template's
    text (the provider checks the count; reminders do not look templates up)."""
    params = ParameterMap.model_validate(spec.get("parameters") or {})
    out: list[dict[str, Any]] = []
    for kind, given in (("header", params.header), ("body", params.body)):
        if not given:
            continue
        items = given.items() if isinstance(given, dict) else ((None, v) for v in given)
        out.append(
            {
                "type": kind,
                "parameters": [
                    {"type": "text", "text": render_value(v, fields)[0] or "-", "parameter_name": k}
                    for k, v in items
                ],
            }
        )
    return out


def reminder_id() -> str:
    return "rem_" + uuid.uuid4().hex[:20]


@dataclass(frozen=True)
class BotReminders:
    """Which reminders the commerce bot schedules, when, and with what (from settings)."""

    payment_due_before: timedelta | None = timedelta(hours=12)
    abandoned_cart_after: timedelta | None = timedelta(hours=1)
    order_follow_up_after: timedelta | None = timedelta(days=3)
    restock: bool = True
    #: Kind → template spec (``ReminderTemplate`` as JSON) for outside the window.
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _new(
        self,
        kind: ReminderKind,
        *,
        tenant_id: str,
        account_id: str,
        wa_id: str,
        due_at: datetime,
        text: str,
        reference: str,
        dedupe_key: str | None = None,
    ) -> NewReminder:
        rid = reminder_id()
        return NewReminder(
            reminder_id=rid,
            tenant_id=tenant_id,
            account_id=account_id,
            wa_id=wa_id,
            kind=kind,
            due_at=due_at.astimezone(UTC),
            category=DEFAULT_CATEGORY[kind],
            text=text,
            template=self.templates.get(kind),
            reference=reference,
            dedupe_key=dedupe_key,
            message_id=rid,
        )

    def payment_due(
        self,
        *,
        tenant_id: str,
        account_id: str,
        wa_id: str,
        order_id: str,
        payment_reference: str,
        due_at: datetime,
        now: datetime,
    ) -> NewReminder | None:
        """Before the invoice is due; None when off or when that moment has passed."""
        if self.payment_due_before is None:
            return None
        at = due_at - self.payment_due_before
        if at <= now:
            return None
        text = (
            f"Hi {{{{name|there}}}}, a reminder: order {order_id} is waiting for payment "
            f"(reference {payment_reference}). Please pay before "
            f"{due_at.astimezone(UTC):%d %b %Y %H:%M} UTC, or type cancel to cancel it."
        )
        return self._new(
            "payment_due",
            tenant_id=tenant_id,
            account_id=account_id,
            wa_id=wa_id,
            due_at=at,
            text=text,
            reference=order_id,
            dedupe_key=f"payment_due:{order_id}",
        )

    def abandoned_cart(
        self, *, tenant_id: str, account_id: str, wa_id: str, items: int, now: datetime
    ) -> NewReminder | None:
        if self.abandoned_cart_after is None or items <= 0:
            return None
        things = "an item" if items == 1 else f"{items} items"
        text = (
            f"Hi {{{{name|there}}}}, you left {things} in your cart. "
            "Type cart to review and confirm your order."
        )
        return self._new(
            "abandoned_cart",
            tenant_id=tenant_id,
            account_id=account_id,
            wa_id=wa_id,
            due_at=now + self.abandoned_cart_after,
            text=text,
            reference=cart_reference(account_id, wa_id),
        )

    def restock_alert(
        self,
        *,
        tenant_id: str,
        account_id: str,
        wa_id: str,
        sku: str,
        product_name: str,
        now: datetime,
    ) -> NewReminder | None:
        if not self.restock:
            return None
        text = (
            f"Good news, {{{{name|there}}}}: {product_name} is back in stock. Type menu to order."
        )
        return self._new(
            "restock",
            tenant_id=tenant_id,
            account_id=account_id,
            wa_id=wa_id,
            due_at=now + RESTOCK_RECHECK,
            text=text,
            reference=sku,
        )

    def order_follow_up(
        self, *, tenant_id: str, account_id: str, wa_id: str, order_id: str, now: datetime
    ) -> NewReminder | None:
        if self.order_follow_up_after is None:
            return None
        text = (
            f"Hi {{{{name|there}}}}, how was your order {order_id}? Reply to tell us, "
            "or type menu to order again."
        )
        return self._new(
            "order_follow_up",
            tenant_id=tenant_id,
            account_id=account_id,
            wa_id=wa_id,
            due_at=now + self.order_follow_up_after,
            text=text,
            reference=order_id,
            dedupe_key=f"order_follow_up:{order_id}",
        )


def cart_reference(account_id: str, wa_id: str) -> str:
    """The reference of a customer's abandoned-cart reminder (one cart per conversation)."""
    return f"cart:{account_id}:{wa_id}"[:128]
