"""What every provider adapter answers, and the seam the service calls them through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from flowchat_contracts import OutboundCommand, ProviderError
from flowchat_platform.accounts import AccountCredentials


@dataclass(frozen=True)
class ProviderReply:
    """One provider call's outcome.

    ``reached`` is False only when the request certainly never got to the provider
    (connection refused, DNS, connect timeout): such a failure may be retried without
    risking a second message. A timeout after the request was written leaves the
    outcome unknown, which ``outcome_unknown`` says.
    """

    provider: Literal["meta", "twilio"]
    http_status: int | None
    provider_message_id: str | None = None
    error: ProviderError | None = None
    outcome_unknown: bool = False

    @property
    def ok(self) -> bool:
        return self.provider_message_id is not None


class ProviderAdapter(Protocol):
    @property
    def name(self) -> Literal["meta", "twilio"]: ...

    def supports(self, command: OutboundCommand) -> bool:
        """False when this provider cannot carry the command's content at all."""

    def addresses(self, to: str) -> bool:
        """False when this provider cannot address the customer id ``to`` (a BSUID on
        Twilio)."""

    async def send(
        self, account: AccountCredentials, command: OutboundCommand
    ) -> ProviderReply: ...
