"""One HTTP call to a provider (Meta's Graph API, Twilio) and what its failures mean.

- :func:`request`: the call itself on the shared session → ``(status, body)``; the
  caller decides what aiohttp's exceptions mean (media uploads and template syncs
  raise their own errors);
- :func:`send`: the message POST of every provider adapter, with the one mapping of
  its outcomes to a :class:`~flowchat_sender.providers.ProviderReply`:

  ======================================  =============================================
  connection refused, DNS, connect timeout  ``NETWORK_ERROR``: never reached the provider
  any other client error or timeout         ``NETWORK_ERROR``, ``outcome_unknown``: the
                                            request may have been taken
  a success status, the message id read     accepted
  a success status, no id in the answer     ``HTTP_ERROR``, ``outcome_unknown``
  any other status                          the provider's error (its ``parse_error``)
  ======================================  =============================================
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Literal

import aiohttp
import orjson

from flowchat_contracts import ProviderError
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


async def send(
    session: aiohttp.ClientSession,
    provider: Provider,
    url: str,
    *,
    data: Any,
    headers: dict[str, str],
    deadline: aiohttp.ClientTimeout,
    ok: Collection[int],
    message_id: Callable[[Any], Any],
    parse_error: Callable[[int, bytes], ProviderError],
) -> ProviderReply:
    """POST one message; ``message_id`` reads the id from a success answer's JSON."""
    try:
        async with session.post(url, data=data, headers=headers, timeout=deadline) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        return network_failure(provider, exc)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return unknown_outcome(provider, exc)
    if status in ok:
        try:
            provider_message_id = str(message_id(orjson.loads(raw)))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return ProviderReply(
                provider,
                status,
                error=ProviderError(code=fates.HTTP_ERROR, title="unreadable success answer"),
                outcome_unknown=True,
            )
        return ProviderReply(provider, status, provider_message_id=provider_message_id)
    return ProviderReply(provider, status, error=parse_error(status, raw))


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
