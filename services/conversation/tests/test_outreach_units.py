"""Outreach logic with no I/O: phones, CSV, templates, pacing, quiet hours, exclusions,
the reminder's session-or-template choice."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from flowchat_conversation.errors import OutreachError
from flowchat_conversation.outreach.campaigns import (
    Candidate,
    FrequencyCap,
    QuietHours,
    exclusion,
    in_quiet_hours,
    pace,
)
from flowchat_conversation.outreach.contacts import parse_contacts_csv
from flowchat_conversation.outreach.reminders import (
    BotReminders,
    DueReminder,
    Send,
    Skip,
    Wait,
    decide,
)
from flowchat_conversation.outreach.template_catalog import (
    ParameterMap,
    Template,
    check_parameters,
    contact_fields,
    content,
    preview,
    render,
    render_value,
)
from flowchat_platform.phones import to_wa_id

NOW = datetime(2025, 12, 31, 12, 0, tzinfo=UTC)


def test_phones_become_whatsapp_ids() -> None:
    assert to_wa_id("+234 801 234 5678") == "2348012345678"
    assert to_wa_id("2348012345678") == "2348012345678"
    assert to_wa_id("0801 234 5678", "NG") == "2348012345678"
    for bad in ("", "12", "+999123", "0801 234 5678", "hello"):
        with pytest.raises(ValueError, match=r"phone|number|country"):
            to_wa_id(bad)


def test_csv_rows_parse_with_attributes_and_reasons() -> None:
    good, rejected = parse_contacts_csv(
        "\ufeffPhone,Name,Tags,attributes.city,tier\n"
        "+2348012345678, Ada ,vip; lagos|vip,Lagos,gold\n"
        "+2348012345678,Again,,,\n"
        ",Nobody,,,\n"
        "+2348012345679,Extra,,,,oops\n"
    )
    assert len(good) == 1
    line, contact = good[0]
    assert line == 2
    assert contact.name == "Ada"
    assert contact.tags == ["vip", "lagos"]
    assert contact.attributes == {"city": "Lagos", "tier": "gold"}
    assert [(r.line, r.errors[0]) for r in rejected] == [
        (3, "duplicate of line 2"),
        (4, "phone number is required"),
        (5, "more fields than headers"),
    ]


NAMED = Template(
    name="promo",
    language="en",
    status="APPROVED",
    category="MARKETING",
    parameter_format="NAMED",
    components=(
        {"type": "HEADER", "format": "TEXT", "text": "Hello {{first_name}}"},
        {"type": "BODY", "text": "{{first_name}}, {{deal}} in {{city}}."},
    ),
)


def test_named_templates_render_per_contact_with_fallbacks_and_missing_fields() -> None:
    params = ParameterMap(
        header={"first_name": "{{first_name|friend}}"},
        body={"first_name": "{{first_name|friend}}", "deal": "20% off", "city": "{{city}}"},
    )
    check_parameters(NAMED, params)
    fields = contact_fields(name="Ada Obi", wa_id="2348012345678", attributes={"city": "Lagos"})
    rendered = render(NAMED, params, fields)
    assert rendered.missing == []
    assert preview(NAMED, rendered.components) == "Hello Ada\nAda, 20% off in Lagos."
    cmd = content(NAMED, rendered.components)
    assert cmd.components[1].parameters[2].parameter_name == "city"
    lacking = render(NAMED, params, contact_fields(name=None, wa_id="1", attributes={}))
    assert lacking.missing == ["city"]  # first_name fell back to "friend"
    with pytest.raises(OutreachError) as err:
        check_parameters(NAMED, ParameterMap(body={"first_name": "x"}))
    assert err.value.code == "parameter_mismatch"
    with pytest.raises(OutreachError):
        check_parameters(NAMED, ParameterMap(header=["x"], body=["a", "b", "c"]))


def test_values_are_cleaned_as_meta_requires() -> None:
    text, missing = render_value("a\n\n   b {{x}}", {"x": "  y  "})
    assert (text, missing) == ("a b y", [])


def test_pacing_follows_the_rate_and_never_bursts_past_one_second() -> None:
    n, clock = pace(None, NOW, 100)
    assert n == 100  # a fresh campaign may use one second of budget
    n2, clock2 = pace(clock, NOW + timedelta(seconds=0.2), 100)
    assert n2 == 20
    assert clock2 == NOW + timedelta(seconds=0.2)
    n3, _ = pace(clock2, NOW + timedelta(hours=1), 100)
    assert n3 == 100  # idle for an hour: still one second's worth
    n4, clock4 = pace(clock2, NOW + timedelta(seconds=0.205), 100)
    assert n4 == 0
    assert clock4 == clock2
    assert pace(None, NOW, 5000)[0] == 1000  # batches are bounded


def test_quiet_hours_in_the_campaigns_time_zone() -> None:
    night = QuietHours(start=time(21), end=time(8))
    # 12:00 UTC is 13:00 in Lagos: not quiet; 22:30 UTC is 23:30 in Lagos: quiet
    assert not in_quiet_hours(night, "Africa/Lagos", NOW)
    assert in_quiet_hours(night, "Africa/Lagos", NOW.replace(hour=22, minute=30))
    assert in_quiet_hours(night, "Africa/Lagos", NOW.replace(hour=6))
    lunch = QuietHours(start=time(13), end=time(14))
    assert in_quiet_hours(lunch, "Africa/Lagos", NOW)
    assert not in_quiet_hours(None, "UTC", NOW)


def test_exclusions_have_reasons_in_order() -> None:
    cap = FrequencyCap(max_messages=2, window_hours=24)

    def c(**kw) -> Candidate:
        base = {
            "contact_id": 1,
            "wa_id": "1",
            "name": None,
            "status": "active",
            "attributes": {},
            "marketing_opt_in": True,
        }
        return Candidate(**{**base, **kw})

    assert exclusion(c(), cap) is None
    assert exclusion(c(status="blocked", marketing_opt_in=False), cap) == "blocked"
    assert exclusion(c(status="inactive"), cap) == "inactive"
    assert exclusion(c(marketing_opt_in=False), cap) == "opted_out"
    assert exclusion(c(recent_sends=1), cap) is None
    assert exclusion(c(recent_sends=2), cap) == "frequency_cap"


def due(**kw) -> DueReminder:
    base = {
        "reminder_id": "r1",
        "tenant_id": "t1",
        "account_id": "a1",
        "wa_id": "2348012345678",
        "kind": "payment_due",
        "category": "utility",
        "text": "Hi {{name|there}}",
        "template": {"name": "pay", "language": "en", "parameters": {"body": ["{{name|there}}"]}},
        "message_id": "r1",
    }
    return DueReminder(**{**base, **kw})


def test_the_window_chooses_session_message_or_template() -> None:
    inside = decide(due(last_inbound_at=NOW - timedelta(hours=23, minutes=59), name="Ada"), NOW)
    assert isinstance(inside, Send)
    assert inside.outcome == "session"
    assert inside.content.type == "text"
    assert inside.content.body == "Hi Ada"
    outside = decide(due(last_inbound_at=NOW - timedelta(hours=24)), NOW)
    assert isinstance(outside, Send)
    assert outside.outcome == "template"
    assert outside.content.type == "template"
    assert outside.content.components[0].parameters[0].text == "there"
    never = decide(due(last_inbound_at=None, template=None), NOW)
    assert never == Skip("outside_window")
    assert decide(due(contact_status="blocked"), NOW) == Skip("blocked")
    assert decide(due(category="marketing", marketing_opt_in=False), NOW) == Skip("opted_out")
    assert decide(due(resolved=True), NOW) == Skip("resolved")
    assert isinstance(decide(due(waiting=True), NOW), Wait)


def test_the_bots_reminders_follow_the_settings() -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    hooks = BotReminders(templates={"payment_due": {"name": "pay_now", "language": "en"}})
    due = now + timedelta(hours=48)
    r = hooks.payment_due(
        tenant_id="t1",
        account_id="a1",
        wa_id="2348012345678",
        order_id="ORD-1",
        payment_reference="PAY-1",
        due_at=due,
        now=now,
    )
    assert r is not None
    assert (r.kind, r.due_at, r.reference, r.dedupe_key) == (
        "payment_due",
        due - timedelta(hours=12),
        "ORD-1",
        "payment_due:ORD-1",
    )
    assert r.category == "utility"
    assert r.template == {"name": "pay_now", "language": "en"}
    assert r.text is not None
    assert "PAY-1" in r.text
    # due sooner than the reminder's lead time: no reminder
    assert (
        hooks.payment_due(
            tenant_id="t1",
            account_id="a1",
            wa_id="2348012345678",
            order_id="ORD-2",
            payment_reference="PAY-2",
            due_at=now + timedelta(hours=6),
            now=now,
        )
        is None
    )
    cart = hooks.abandoned_cart(tenant_id="t1", account_id="a1", wa_id="1", items=2, now=now)
    assert cart is not None
    assert (cart.due_at, cart.category, cart.template) == (
        now + timedelta(hours=1),
        "marketing",
        None,
    )
    assert (
        hooks.abandoned_cart(tenant_id="t1", account_id="a1", wa_id="1", items=0, now=now) is None
    )
    off = BotReminders(abandoned_cart_after=None, order_follow_up_after=None, restock=False)
    assert off.abandoned_cart(tenant_id="t1", account_id="a1", wa_id="1", items=2, now=now) is None
    assert (
        off.order_follow_up(tenant_id="t1", account_id="a1", wa_id="1", order_id="O", now=now)
        is None
    )
    assert (
        off.restock_alert(
            tenant_id="t1", account_id="a1", wa_id="1", sku="S", product_name="Sand", now=now
        )
        is None
    )
