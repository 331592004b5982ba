"""The inbox: hand-offs as conversations agents claim, answer, annotate and resolve.

Pure: storage behind :class:`InboxStore`, the broker behind :class:`Publisher`, live
updates behind :class:`Live`. Rules:

- **claim**: a waiting conversation goes to the first agent whose conditional update
  wins; everyone else gets :class:`AlreadyClaimed` with the holder (409). Claiming
  one's own conversation again is a no-op.
- **assign**: a manager (``can_manage``) or the holder gives an open conversation to
  another agent.
- **reply**: only the holder; free-form content only within the customer-service
  window (24 h after the customer's last message), templates any time
  (:class:`OutsideWindow`, 422, names the rule). The command is published with
  ``origin="agent"`` and recorded in the thread at once (the copy arriving on the
  history queue is a duplicate by its idempotency key).
- **note**: any agent of the tenant, on an open or resolved conversation; internal.
- **tags**: any agent adds and removes labels (at most :data:`MAX_TAGS` a
  conversation); the list filters by one.
- **resolve**: the holder or a manager; the conversation service is told on the broker
  (``HandoffResolved``) before the conversation closes here, so a failed publish
  leaves it open to try again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flowchat_contracts import (
    CustomerIdentity,
    HandoffRequested,
    HandoffResolved,
    OutboundCommand,
    OutboundContent,
)
from flowchat_inbox import metrics
from flowchat_inbox.errors import (
    AlreadyClaimed,
    ConversationClosed,
    ConversationOpen,
    Forbidden,
    NotFound,
    NotHolder,
    OutsideWindow,
    TooManyTags,
)
from flowchat_inbox.ports import (
    Conversation,
    ConversationFilter,
    Entry,
    InboxStore,
    Live,
    Page,
    Publisher,
    TenantWait,
    Thread,
    WaitStats,
)
from flowchat_inbox.service import (
    HistoryService,
    customer_of_to,
    decode_cursor,
    encode_cursor,
    outbound_entry,
)

TAKEN_OVER = "taken over by an agent"
MAX_TAGS = 20


def thread_customer(thread: Thread) -> CustomerIdentity:
    if thread.wa_id or thread.user_id:
        return CustomerIdentity(wa_id=thread.wa_id, user_id=thread.user_id)
    return customer_of_to(thread.customer_key)


def conversation_event(c: Conversation) -> dict[str, Any]:
    return {
        "type": "conversation",
        "conversation_id": c.id,
        "thread_id": c.thread_id,
        "account_id": c.account_id,
        "status": c.status,
        "assignee": c.assignee,
        "tags": list(c.tags),
    }


class InboxService:
    def __init__(
        self,
        store: InboxStore,
        history: HistoryService,
        publisher: Publisher,
        live: Live,
        *,
        window_s: float = 24 * 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.history = history
        self.publisher = publisher
        self.live = live
        self.window = timedelta(seconds=window_s)
        self.clock = clock

    async def get(self, tenant_id: str, conversation_id: int) -> Conversation:
        found = await self.store.conversation(tenant_id, conversation_id)
        if found is None:
            raise NotFound("no such conversation")
        return found

    async def list(
        self, tenant_id: str, flt: ConversationFilter, *, cursor: str | None, limit: int
    ) -> Page:
        rows = await self.store.conversations(
            tenant_id, flt, after=decode_cursor(cursor), limit=limit + 1
        )
        if len(rows) > limit:
            rows = rows[:limit]
            return Page(rows, encode_cursor(rows[-1].opened_at, rows[-1].id))
        return Page(rows, None)

    async def claim(self, tenant_id: str, conversation_id: int, agent_id: str) -> Conversation:
        won = await self.store.claim(tenant_id, conversation_id, agent_id, self.clock())
        if won is None:
            current = await self.get(tenant_id, conversation_id)
            if current.status == "resolved":
                metrics.ACTIONS.labels("claim", "refused").inc()
                raise ConversationClosed("the conversation is resolved")
            if current.assignee == agent_id:
                return current
            metrics.ACTIONS.labels("claim", "refused").inc()
            raise AlreadyClaimed(current.assignee or "another agent")
        metrics.ACTIONS.labels("claim", "ok").inc()
        self.live.publish(tenant_id, conversation_event(won))
        return won

    async def assign(
        self,
        tenant_id: str,
        conversation_id: int,
        *,
        agent_id: str,
        to_agent: str,
        can_manage: bool,
    ) -> Conversation:
        current = await self.get(tenant_id, conversation_id)
        if current.status == "resolved":
            raise ConversationClosed("the conversation is resolved")
        if not can_manage and current.assignee != agent_id:
            raise Forbidden("only the holder or a manager may assign this conversation")
        updated = await self.store.assign(tenant_id, conversation_id, to_agent, self.clock())
        if updated is None:
            raise ConversationClosed("the conversation is resolved")
        metrics.ACTIONS.labels("assign", "ok").inc()
        self.live.publish(tenant_id, conversation_event(updated))
        return updated

    def in_window(self, thread: Thread) -> bool:
        closes = self.window_closes_at(thread)
        return closes is not None and self.clock() < closes

    def window_closes_at(self, thread: Thread) -> datetime | None:
        """When free-form replies stop being allowed (the customer's last message + 24 h)."""
        last = thread.last_inbound_at
        return last + self.window if last is not None else None

    async def tag(
        self, tenant_id: str, conversation_id: int, *, add: Sequence[str], remove: Sequence[str]
    ) -> Conversation:
        current = await self.get(tenant_id, conversation_id)
        if len(set(current.tags).union(add).difference(remove)) > MAX_TAGS:
            raise TooManyTags(
                f"a conversation has at most {MAX_TAGS} tags", details={"max_tags": MAX_TAGS}
            )
        updated = await self.store.tag(tenant_id, conversation_id, add, remove)
        if updated is None:
            raise NotFound("no such conversation")
        metrics.ACTIONS.labels("tag", "ok").inc()
        self.live.publish(tenant_id, conversation_event(updated))
        return updated

    async def reply(
        self,
        tenant_id: str,
        conversation_id: int,
        *,
        agent_id: str,
        content: OutboundContent,
        idempotency_key: str | None = None,
    ) -> tuple[Conversation, str]:
        """Send the holder's message; returns the conversation and the message id."""
        conversation = await self.get(tenant_id, conversation_id)
        if conversation.status == "resolved":
            raise ConversationClosed("the conversation is resolved")
        if conversation.assignee != agent_id:
            metrics.ACTIONS.labels("reply", "refused").inc()
            raise NotHolder(conversation.assignee)
        thread = await self.history.thread(tenant_id, conversation.thread_id)
        if content.type != "template" and not self.in_window(thread):
            metrics.ACTIONS.labels("reply", "refused").inc()
            raise OutsideWindow(
                "outside the 24-hour customer service window only template messages may "
                "be sent (the customer has not written in the last 24 hours)",
                details={
                    "rule": "customer_service_window",
                    "window_s": self.window.total_seconds(),
                },
            )
        key = f"agent:{idempotency_key or uuid.uuid4().hex}"
        command = OutboundCommand(
            tenant_id=tenant_id,
            account_id=conversation.account_id,
            idempotency_key=key[:128],
            message_id=f"inbox-{uuid.uuid5(uuid.NAMESPACE_URL, tenant_id + key).hex}",
            # the phone when there is one (as the bot does: Twilio cannot send to a BSUID)
            to=thread.wa_id or thread.user_id or thread.customer_key,
            category="service",
            content=content,
            origin="agent",
            agent_id=agent_id,
        )
        await self.publisher.send(command)
        now = self.clock()
        updated = await self.store.record_reply(conversation, outbound_entry(command), now)
        if conversation.first_response_at is None and updated.first_response_at is not None:
            metrics.FIRST_RESPONSE.observe(
                max(0.0, (updated.first_response_at - conversation.opened_at).total_seconds())
            )
        metrics.ACTIONS.labels("reply", "ok").inc()
        return updated, command.message_id

    async def note(self, tenant_id: str, conversation_id: int, *, agent_id: str, body: str) -> int:
        conversation = await self.get(tenant_id, conversation_id)
        thread = await self.history.thread(tenant_id, conversation.thread_id)
        now = self.clock()
        entry = Entry(
            tenant_id=tenant_id,
            account_id=conversation.account_id,
            customer=thread_customer(thread),
            dedupe_key=f"note:{uuid.uuid4().hex}",
            direction="internal",
            author="agent",
            agent_id=agent_id,
            type="note",
            body=body,
            content={"type": "note", "body": body},
            occurred_at=now,
        )
        await self.store.record_reply(conversation, entry, now)
        metrics.ACTIONS.labels("note", "ok").inc()
        return conversation.thread_id

    async def resolve(
        self, tenant_id: str, conversation_id: int, *, agent_id: str, can_manage: bool
    ) -> Conversation:
        conversation = await self.get(tenant_id, conversation_id)
        if conversation.status == "resolved":
            raise ConversationClosed("the conversation is resolved")
        if not can_manage and conversation.assignee not in (None, agent_id):
            raise NotHolder(conversation.assignee)
        thread = await self.history.thread(tenant_id, conversation.thread_id)
        waited = (
            (conversation.first_response_at - conversation.opened_at).total_seconds()
            if conversation.first_response_at
            else None
        )
        await self.publisher.resolved(
            HandoffResolved(
                tenant_id=tenant_id,
                account_id=conversation.account_id,
                event_id=f"resolved-{conversation.id}",
                customer=thread_customer(thread),
                resolved_by=agent_id,
                waited_s=max(0.0, waited) if waited is not None else None,
            )
        )
        closed = await self.store.resolve(tenant_id, conversation_id, agent_id, self.clock())
        if closed is None:
            raise ConversationClosed("the conversation is resolved")
        metrics.ACTIONS.labels("resolve", "ok").inc()
        self.live.publish(tenant_id, conversation_event(closed))
        return closed

    async def take_over(self, tenant_id: str, thread_id: int, *, agent_id: str) -> Conversation:
        """An agent takes a conversation the bot is handling: the conversation service is
        told (``handoff_requested``, the same event as the bot's hand-off) before the
        conversation opens here, held by the agent. The event's copy on the history queue
        then finds the thread's conversation open and adds nothing."""
        thread = await self.history.thread(tenant_id, thread_id)
        existing = await self.store.open_conversation_of(tenant_id, thread_id)
        if existing is not None:
            raise ConversationOpen(existing.id, existing.assignee)
        event = HandoffRequested(
            tenant_id=tenant_id,
            account_id=thread.account_id,
            customer=thread_customer(thread),
            reason=TAKEN_OVER,
            taken_over_by=agent_id,
        )
        await self.publisher.requested(event)
        opened = await self.store.take_over(
            thread, agent_id, event.event_id, TAKEN_OVER, self.clock()
        )
        if opened is None:  # opened meanwhile (the bot's hand-off, another agent)
            current = await self.store.open_conversation_of(tenant_id, thread_id)
            raise ConversationOpen(
                current.id if current else 0, current.assignee if current else None
            )
        metrics.ACTIONS.labels("take_over", "ok").inc()
        self.live.publish(tenant_id, conversation_event(opened))
        return opened

    async def stats(self, tenant_id: str) -> WaitStats:
        return await self.store.wait_stats(tenant_id, self.clock())

    async def longest_waits(self, limit: int) -> Sequence[TenantWait]:
        return await self.store.longest_waits(self.clock(), limit)
