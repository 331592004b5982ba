"""How queue messages become history entries (no I/O): authors, searchable text,
dedupe keys, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowchat_contracts import (
    ButtonsContent,
    OutboundCommand,
    ReplyButton,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
    TextContent,
)
from flowchat_inbox.service import (
    decode_cursor,
    encode_cursor,
    outbound_author,
    outbound_entry,
)
from flowchat_platform.pagination import InvalidCursor


def command(**kw: object) -> OutboundCommand:
    base: dict[str, object] = {
        "tenant_id": "t",
        "account_id": "a",
        "idempotency_key": "k1",
        "to": "+15550001111",
        "content": TextContent(body="hi"),
    }
    return OutboundCommand.model_validate({**base, **kw})


@pytest.mark.parametrize(
    ("fields", "author"),
    [
        ({"origin": "agent"}, "agent"),
        ({"campaign_id": "c1"}, "campaign"),
        ({"idempotency_key": "reminder:r1"}, "reminder"),
        ({"message_id": "msg-abc"}, "bot"),
        ({"idempotency_key": "reply:wamid.1:0"}, "bot"),
        ({}, "api"),
        ({"origin": "api", "campaign_id": "c1"}, "api"),
    ],
)
def test_the_author_of_an_outbound_command(fields: dict[str, object], author: str) -> None:
    assert outbound_author(command(**fields)) == author


def test_templates_and_choices_are_searchable_and_kept_whole() -> None:
    template = TemplateContent(
        name="order_shipped",
        language="en",
        components=[
            TemplateComponent(type="body", parameters=[TemplateParameter(type="text", text="A-17")])
        ],
    )
    entry = outbound_entry(command(content=template))
    assert entry.body == "order_shipped A-17"
    assert entry.content["components"][0]["parameters"][0]["text"] == "A-17"
    assert entry.customer.wa_id == "15550001111"
    assert entry.dedupe_key == "out:k1"
    buttons = ButtonsContent(body="Pick one", buttons=[ReplyButton(id="y", title="Yes")])
    assert outbound_entry(command(content=buttons)).body == "Pick one Yes"
    assert outbound_entry(command(to="US.abc123")).customer.user_id == "US.abc123"


def test_cursors_round_trip_and_foreign_ones_are_refused() -> None:
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, 42)) == (at, 42)
    assert decode_cursor(None) is None
    for bad in ("x", "bm90fGE", encode_cursor(at, 1)[:-3] + "!!!"):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)
