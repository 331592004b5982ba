"""Exceptions of the sender.

::

    FlowchatError (flowchat_platform.errors)
    ├── MessageFate (flowchat_platform.errors: carried out by the platform's consumer)
    │   ├── RetryLater(delay_s, counts_as_attempt)
    │   │   └── SendRetry(error, early)   back to a retry tier of the command's lane
    │   │                                 (the consumer's on_retry); the provider error, if any
    │   └── DeadLetter(reason, headers)
    │       └── Park(error, attempts,     to whatsapp.outbound.dlq with the origin lane, the
    │                provider)
    │                                     error code and message, attempts and failure times
    │                                     (its parked_headers: no broker library needed)
    ├── StoreUnavailable(store) (flowchat_platform.errors)
    │                                     Redis (idempotency, rate limits) did not answer in
    │                                     time: never send on a guess; HTTP 503
    └── SenderError
        └── MediaError                    /internal/v1/media (flowchat_sender.media,
            │                             flowchat_sender.media_service)
            ├── MediaRefused(reason)      not uploadable or not servable: unknown account,
            │                             provider, type, size (HTTP 400/404/409/413/415)
            ├── MediaUploadFailed(error, retryable)
            │                             the provider refused (422) or the provider or
            │                             the link did not answer (502)
            ├── MediaNotFound             a download: the provider knows no such media
            │                             (unknown, expired, another account's): 404
            └── MediaDownloadFailed(reason, error)
                                          a download: the provider refused or did not
                                          answer, or sent a file that is not the one it
                                          announced (size, SHA-256): 502

Meta's and Twilio's error codes are not exceptions: adapters return them in a
:class:`~flowchat_sender.providers.ProviderReply` and :mod:`flowchat_sender.fates`
decides what they mean. The HTTP answers of the sender's own errors are decided in
one place, :func:`flowchat_sender.routes.error_response`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flowchat_contracts import Provider, ProviderError
from flowchat_platform.errors import (
    HEADER_ORIGIN_QUEUE,
    HEADER_REASON,
    DeadLetter,
    FlowchatError,
    RetryLater,
)
from flowchat_sender import headers as h

__all__ = [
    "MediaDownloadFailed",
    "MediaError",
    "MediaNotFound",
    "MediaRefused",
    "MediaUploadFailed",
    "Park",
    "SendRetry",
    "SenderError",
]


class SendRetry(RetryLater):
    """Try the command again after ``delay_s`` (``counts_as_attempt`` False for waits).

    ``early``: coming back before ``delay_s`` is harmless (a rate-limit wait: the claim
    is simply tried again), so the command waits in the longest tier no longer than
    ``delay_s``; otherwise in the shortest tier at least as long."""

    def __init__(
        self,
        reason: str,
        *,
        delay_s: float,
        counts_as_attempt: bool,
        error: ProviderError | None = None,
        early: bool = False,
    ) -> None:
        super().__init__(reason, delay_s=delay_s, counts_as_attempt=counts_as_attempt)
        self.error = error
        self.early = early


class Park(DeadLetter):
    """Park the command in the DLQ with the reason (and the last error, when there is one).

    ``attempts``: provider attempts used (None: as many as the command's
    ``x-flowchat-attempt`` header says)."""

    def __init__(
        self,
        reason: str,
        *,
        error: ProviderError | None = None,
        attempts: int | None = None,
        provider: Provider | None = None,
    ) -> None:
        super().__init__(reason)
        self.error = error
        self.attempts = attempts
        #: The provider the command was for, when the sender knew it.
        self.provider = provider

    def parked_headers(
        self, own: Mapping[str, Any], *, queue: str, routing_key: str
    ) -> dict[str, Any]:
        """The command's own headers (not the broker's bookkeeping), the reason, the
        lane it was consumed from, the attempts, first and last failure times, and the
        last error's code and message."""
        headers = h.carried(own)
        headers[HEADER_REASON] = self.reason[:1000]
        headers[HEADER_ORIGIN_QUEUE] = queue
        headers[h.HEADER_ATTEMPTS] = (
            self.attempts if self.attempts is not None else h.attempts_in(own)
        )
        now = h.now()
        headers.setdefault(h.HEADER_FIRST_FAILURE, now)
        headers[h.HEADER_LAST_FAILURE] = now
        if self.error is not None:
            headers[h.HEADER_ERROR_CODE] = self.error.code
            headers[h.HEADER_ERROR_MESSAGE] = (self.error.message or self.error.title)[:1000]
        return headers


class SenderError(FlowchatError):
    """Base of the sender's own failures."""


class MediaError(SenderError):
    """Base of media upload failures."""


class MediaRefused(MediaError):
    """The upload is not acceptable: ``reason`` says why (the caller's to fix)."""

    def __init__(
        self,
        message: str,
        *,
        reason: Literal["account", "provider", "type", "size", "kind", "empty"],
    ) -> None:
        super().__init__(message)
        self.reason = reason


class MediaUploadFailed(MediaError):
    """The provider refused the upload (``error``) or the link or provider did not answer."""

    def __init__(
        self, message: str, *, error: ProviderError | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.error = error
        self.retryable = retryable


class MediaNotFound(MediaError):
    """The provider knows no such media for this account (unknown, expired, foreign)."""


class MediaDownloadFailed(MediaError):
    """A download failed: ``reason`` ``provider`` (refused: ``error``), ``unavailable``
    (no answer) or ``corrupt`` (not the size or SHA-256 announced)."""

    def __init__(
        self,
        message: str,
        *,
        reason: Literal["provider", "unavailable", "corrupt"],
        error: ProviderError | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.error = error
