"""Bodies of the inbox's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_contracts import OutboundContent
from flowchat_inbox.ports import Conversation, Message, Thread
from flowchat_platform.pagination import Page

MAX_NOTE_CHARS = 4096


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThreadOut(BaseModel):
    id: int
    account_id: str
    customer_key: str
    wa_id: str | None
    user_id: str | None
    customer_name: str | None
    last_message_at: datetime
    last_inbound_at: datetime | None
    last_preview: str | None
    message_count: int
    #: The 24 h customer-service window: open (free-form replies allowed, else only
    #: templates) until ``window_closes_at`` (the customer's last message + 24 h).
    window_open: bool | None = None
    window_closes_at: datetime | None = None

    @classmethod
    def of(
        cls, t: Thread, window_open: bool | None = None, closes_at: datetime | None = None
    ) -> ThreadOut:
        return cls(
            window_open=window_open,
            window_closes_at=closes_at,
            id=t.id,
            account_id=t.account_id,
            customer_key=t.customer_key,
            wa_id=t.wa_id,
            user_id=t.user_id,
            customer_name=t.customer_name,
            last_message_at=t.last_message_at,
            last_inbound_at=t.last_inbound_at,
            last_preview=t.last_preview,
            message_count=t.message_count,
        )


class MessageOut(BaseModel):
    id: int
    thread_id: int
    direction: str
    author: str
    agent_id: str | None
    type: str
    text: str | None
    content: dict[str, Any]
    message_id: str | None
    provider_message_id: str | None
    status: str | None
    status_at: datetime | None
    error_code: int | None
    occurred_at: datetime

    @classmethod
    def of(cls, m: Message) -> MessageOut:
        return cls(
            id=m.id,
            thread_id=m.thread_id,
            direction=m.direction,
            author=m.author,
            agent_id=m.agent_id,
            type=m.type,
            text=m.body,
            content=m.content,
            message_id=m.message_id,
            provider_message_id=m.provider_message_id,
            status=m.status,
            status_at=m.status_at,
            error_code=m.error_code,
            occurred_at=m.occurred_at,
        )


class ConversationOut(BaseModel):
    id: int
    account_id: str
    thread_id: int
    status: str
    assignee: str | None
    reason: str | None
    bot_state: str | None
    opened_at: datetime
    claimed_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    tags: list[str]
    #: Within the 24 h customer-service window: free-form replies allowed (else templates).
    window_open: bool | None = None
    window_closes_at: datetime | None = None

    @classmethod
    def of(
        cls, c: Conversation, window_open: bool | None = None, closes_at: datetime | None = None
    ) -> ConversationOut:
        return cls(
            tags=list(c.tags),
            window_closes_at=closes_at,
            id=c.id,
            account_id=c.account_id,
            thread_id=c.thread_id,
            status=c.status,
            assignee=c.assignee,
            reason=c.reason,
            bot_state=c.bot_state,
            opened_at=c.opened_at,
            claimed_at=c.claimed_at,
            first_response_at=c.first_response_at,
            resolved_at=c.resolved_at,
            resolved_by=c.resolved_by,
            window_open=window_open,
        )


class ThreadPage(Page[ThreadOut]):
    """Threads, most recent first."""


class MessagePage(Page[MessageOut]):
    """Messages, newest first."""


class ConversationPage(Page[ConversationOut]):
    """Conversations, oldest first."""


class AssignIn(_In):
    agent_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@+-]{1,128}$")]


Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


class TagsIn(_In):
    """Tags to add and to remove (lower-case letters, digits, ``_`` and ``-``, ≤ 32)."""

    add: list[Tag] = Field(default_factory=list, max_length=20)
    remove: list[Tag] = Field(default_factory=list, max_length=20)


class ReplyIn(_In):
    content: OutboundContent
    #: Makes a retried reply send once.
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None


class ReplyOut(BaseModel):
    message_id: str
    conversation: ConversationOut


class NoteIn(_In):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NOTE_CHARS)] = Field(
        description="The note (internal: never sent to the customer)"
    )


class NoteOut(BaseModel):
    thread_id: int


class StatsOut(BaseModel):
    waiting: int
    oldest_wait_s: float | None
