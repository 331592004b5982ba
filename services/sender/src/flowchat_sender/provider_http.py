"""One HTTP call to a provider (Meta's Graph API, Twilio) and what its failures mean.

- :func:`request`: the call itself on the shared session → ``(status, body)``; the
  caller decides what aiohttp's exceptions mean (media uploads and template syncs
  raise their own errors);
- :class:`HttpAdapter`: the base of every provider adapter; its ``send`` is the message
  POST, with the one mapping of its outcomes to a
  :class:`~flowchat_sender.providers.ProviderReply`:

  ========================================  =============================================
  connection refused, DNS, connect timeout  ``NETWORK_ERROR``: never reached the provider
  any other client error or timeout         ``NETWORK_ERROR``, ``outcome_unknown``: the
                                            request may have been taken
  a success status, the message id read     accepted
  a success status, no id in the answer     ``HTTP_ERROR``, ``outcome_unknown``
  any other status                          the provider's error (its ``parse_error``)
  ========================================  =============================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import aiohttp
import orjson

from flowchat_contracts import OutboundCommand, ProviderError
from flowchat_platform.accounts import AccountCredentials
from flowchat_sender import fates
from flowchat_sender.providers import ProviderReply

Provider = Literal["meta", "twilio"]


def message_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """A message POST's deadline: ``timeout_s`` in all, at most 3 s to connect."""
    return aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(3.0, timeout_s))


async def request(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, bytes]:
    """``(status, body)`` of one request; aiohttp's exceptions and timeouts propagate."""
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.read()


class HttpAdapter(ABC):
    """Base of the provider adapters: the one message POST, its outcomes mapped once.

    A subclass names its provider (``name``) and the statuses of success (``ok``),
    builds the request (:meth:`request`), reads the message id from a success answer
    (:meth:`message_id`) and parses a refusal (:meth:`parse_error`).
    """

    name: Provider
    ok: frozenset[int] = frozenset({200})

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float) -> None:
        self._session = session
        self._timeout = message_timeout(timeout_s)

    def addresses(self, to: str) -> bool:
        """Whether this provider can address the customer id ``to`` (a phone or a BSUID)."""
        return True

    @abstractmethod
    def request(
        self, account: AccountCredentials, command: OutboundCommand
    ) -> tuple[str, Any, dict[str, str]]:
        """``(url, body, headers)`` of the command's POST."""

    @abstractmethod
    def message_id(self, answer: Any) -> Any:
        """The provider's message id in a success answer's JSON (raise when absent)."""

    @abstractmethod
    def parse_error(self, status: int, raw: bytes) -> ProviderError:
        """The provider's error in a refusal."""

    async def send(self, account: AccountCredentials, command: OutboundCommand) -> ProviderReply:
        """POST the command; the outcome as the table of the module's docstring says."""
        url, data, headers = self.request(account, command)
        provider = self.name
        try:
            status, raw = await request(
                self._session, "POST", url, data=data, headers=headers, timeout=self._timeout
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return network_failure(provider, exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return unknown_outcome(provider, exc)
        if status in self.ok:
            try:
                provider_message_id = str(self.message_id(orjson.loads(raw)))
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                return ProviderReply(
                    provider,
                    status,
                    error=ProviderError(code=fates.HTTP_ERROR, title="unreadable success answer"),
                    outcome_unknown=True,
                )
            return ProviderReply(provider, status, provider_message_id=provider_message_id)
        return ProviderReply(provider, status, error=self.parse_error(status, raw))


def network_failure(provider: Provider, exc: BaseException) -> ProviderReply:
    return ProviderReply(
        provider,
        None,
        error=ProviderError(code=fates.NETWORK_ERROR, title="network error", message=repr(exc)),
    )


def unknown_outcome(provider: Provider, exc: BaseException) -> ProviderReply:
    return ProviderReply(
        provider,
        None,
        error=ProviderError(
            code=fates.NETWORK_ERROR,
            title="no answer after the request was sent",
            message=repr(exc) or type(exc).__name__,
        ),
        outcome_unknown=True,
    )
