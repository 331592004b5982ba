"""The console's pure logic: rights per role, view models, replies, search snippets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowchat_console import nav, service
from flowchat_console.auth import ConsoleUser
from flowchat_console.pages.auth import safe_next
from flowchat_console.render import duration


def user(role: str) -> ConsoleUser:
    return ConsoleUser(user_id="u1", tenant_id="t1", email="u@x.example", role=role)


def test_each_role_sees_what_it_may_do():
    assert nav.can(user("agent"), "inbox.act")
    assert not nav.can(user("viewer"), "inbox.act")
    assert nav.can(user("viewer"), "inbox.read")
    assert not nav.can(user("agent"), "inbox.manage")
    assert nav.can(user("admin"), "team.manage")
    assert not nav.can(user("agent"), "team.read")
    assert not nav.can(user("admin"), "operator.read")
    assert nav.can(user("operator"), "operator.manage")
    assert not nav.can(user("owner"), "no.such.action")
    assert not nav.can(None, "inbox.read")
    served = {"/inbox", "/conversations", "/team"}
    assert [i.label for i in nav.menu(user("viewer"), served)] == ["Inbox", "Conversations"]
    assert [i.label for i in nav.menu(user("admin"), served)] == ["Inbox", "Conversations", "Team"]
    assert nav.home(user("operator")) == "/operator"


def test_a_message_shows_its_media_choices_template_and_status():
    people = {"ag1": "Ada"}
    m = service.message_view(
        {
            "id": 1,
            "direction": "outbound",
            "author": "agent",
            "agent_id": "ag1",
            "type": "image",
            "text": "the sofa",
            "content": {
                "type": "image",
                "link": "https://cdn.example/s.jpg",
                "caption": "the sofa",
            },
            "status": "read",
            "occurred_at": "2026-12-07T00:00:00+00:00",
        },
        people,
    )
    assert (m.side, m.author_label, m.status) == ("out", "Ada", "read")
    assert m.media is not None
    assert (m.media.kind, m.media.link) == ("image", "https://cdn.example/s.jpg")
    buttons = service.message_view(
        {
            "direction": "outbound",
            "author": "bot",
            "type": "interactive_buttons",
            "content": {"type": "interactive_buttons", "buttons": [{"id": "y", "title": "Yes"}]},
        },
        people,
    )
    assert buttons.choices == ("Yes",)
    chosen = service.message_view(
        {
            "direction": "inbound",
            "author": "customer",
            "type": "interactive",
            "content": {"reply": {"id": "y", "title": "Yes"}},
        },
        people,
    )
    assert (chosen.side, chosen.chosen) == ("in", "Yes")
    note = service.message_view(
        {"direction": "internal", "author": "agent", "agent_id": "zz", "type": "note"}, people
    )
    assert (note.side, note.author_label) == ("note", "Agent")
    template = service.message_view(
        {
            "direction": "outbound",
            "author": "campaign",
            "type": "template",
            "content": service.template_reply("order_update", "en", ["A-1", "today", ""]),
        },
        people,
    )
    assert template.template == "order_update (en)"
    assert template.template_params == ("A-1", "today")
    unsafe = service.message_view(
        {"type": "image", "content": {"type": "image", "link": "javascript:alert(1)"}}, people
    )
    assert unsafe.media is not None
    assert unsafe.media.link is None


def test_rows_show_the_waiting_time_and_who_holds_it():
    now = datetime(2026, 12, 7, tzinfo=UTC)
    row = service.conversation_row(
        {
            "id": 3,
            "thread_id": 9,
            "status": "assigned",
            "assignee": "u1",
            "opened_at": (now - timedelta(minutes=5)).isoformat(),
            "first_response_at": None,
            "tags": ["vip"],
        },
        {"customer_name": None, "wa_id": "2348000"},
        me="u1",
        people={"u1": "Ada"},
        now=now,
    )
    assert (row.customer.label, row.waiting, row.mine, row.assignee_label) == (
        "+2348000",
        True,
        True,
        "Ada",
    )
    assert row.waiting_s == 300
    assert duration(row.waiting_s) == "5 min"
    assert duration(3 * 3600 + 1200) == "3 h 20 min"


def test_the_window_decides_free_text_or_template():
    now = datetime(2026, 12, 7, tzinfo=UTC)
    open_ = service.window_of(
        {"window_open": True, "window_closes_at": (now + timedelta(hours=2)).isoformat()}
    )
    assert open_.open
    assert open_.seconds_left(now) == 7200
    closed = service.window_of({})
    assert not closed.open
    assert closed.seconds_left(now) is None
    assert service.template_reply("hello", "", []) == {
        "type": "template",
        "name": "hello",
        "language": "en",
        "components": [],
    }


def test_search_snippets_mark_the_words():
    pieces = service.highlight("Where is my parcel? The parcel was due", "parcel")
    assert [p for p, hit in pieces if hit] == ["parcel", "parcel"]
    assert "".join(p for p, _ in pieces) == "Where is my parcel? The parcel was due"
    assert service.highlight(None, "x") == []


def test_only_local_paths_are_followed_after_sign_in():
    assert safe_next("/inbox?view=mine") == "/inbox?view=mine"
    for bad in ("//evil.example", "https://evil.example", "/\\evil", "inbox", None, "/a\r\nb"):
        assert safe_next(bad) is None


def test_the_template_picker_lists_approved_templates_with_their_parameters():
    catalog = [
        {"name": "sale", "language": "en", "status": "APPROVED", "body": "Hi {{1}}, {{2}} off"},
        {"name": "draft", "language": "en", "status": "PENDING", "body": "Not yet"},
        {
            "name": "welcome",
            "language": "pt_BR",
            "status": "APPROVED",
            "parameter_format": "NAMED",
            "body": "Olá {{first_name}} de {{ city }}",
        },
        {"name": "plain", "language": "en", "status": "APPROVED", "body": "Thanks!"},
        {"name": "gap", "language": "en", "status": "APPROVED", "body": "{{3}} only"},
    ]
    choices = service.template_choices(catalog)
    assert [c.key for c in choices] == ["gap|en", "plain|en", "sale|en", "welcome|pt_BR"]
    by_name = {c.name: c for c in choices}
    assert by_name["sale"].params == ("1", "2")
    assert not by_name["sale"].named
    assert by_name["gap"].params == ("1", "2", "3")  # every position up to the highest
    assert by_name["plain"].params == ()
    assert by_name["welcome"].params == ("first_name", "city")
    assert by_name["welcome"].named
    assert service.choose_template(choices, "welcome|pt_BR") is by_name["welcome"]
    assert service.choose_template(choices, "unknown|en") is choices[0]
    assert service.choose_template([], None) is None
    named = service.template_reply("welcome", "pt_BR", ["Ada", "Lagos"], ["first_name", "city"])
    assert named["components"] == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Ada", "parameter_name": "first_name"},
                {"type": "text", "text": "Lagos", "parameter_name": "city"},
            ],
        }
    ]


def test_a_file_imported_in_parts_reports_the_whole_files_lines():
    first = {
        "received": 3,
        "imported": 2,
        "created": 2,
        "updated": 0,
        "rejected": [{"line": 3, "phone": "080", "errors": ["no country code"]}],
    }
    second = {
        "received": 2,
        "imported": 1,
        "created": 0,
        "updated": 1,
        "opt_out_kept": 1,
        "rejected": [{"line": 2, "phone": "x", "errors": ["not a phone number"]}],
    }
    # the second part held the file's rows 4 and 5 (lines 5 and 6 of the file)
    merged = service.merge_reports(
        [service.shift_report(first, 0), service.shift_report(second, 3)]
    )
    assert merged == {
        "received": 5,
        "imported": 3,
        "created": 2,
        "updated": 1,
        "opt_out_kept": 1,
        "rejected": [
            {"line": 3, "phone": "080", "errors": ["no country code"]},
            {"line": 5, "phone": "x", "errors": ["not a phone number"]},
        ],
    }
