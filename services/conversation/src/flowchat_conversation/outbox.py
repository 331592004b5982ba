"""The outbox port: where commerce and outreach hand the commands they send
(``OutboundCommand`` → ``flowchat.outbound``). Wired to
:class:`~flowchat_conversation.amqp_outbox.AmqpOutbox` in the app."""

from __future__ import annotations

from typing import Protocol

from flowchat_contracts import OutboundCommand


class Outbox(Protocol):
    async def send(self, command: OutboundCommand) -> None:
        """Publish one command and return once the broker confirmed it."""
