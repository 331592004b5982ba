"""Exceptions of the sender.

::

    FlowchatError (flowchat_platform.errors)
    ├── MessageFate
    │   ├── RetryLater(delay_s, counts_as_attempt)
    │   │   └── SendRetry              back to a retry tier; carries the provider error, if any
    │   └── DeadLetter(reason)
    │       └── Park                   to whatsapp.outbound.dlq with code, attempts and times
    └── SenderError
        ├── StoreUnavailable           Redis did not answer in time: never send on a guess
        └── MediaError                 POST /internal/v1/media (flowchat_sender.media)
            ├── MediaRefused           not uploadable: unknown account, provider, type, size
            └── MediaUploadFailed      the provider or the link refused or did not answer

Meta's and Twilio's error codes are not exceptions: adapters return them in a
:class:`~flowchat_sender.providers.ProviderReply` and :mod:`flowchat_sender.fates`
decides what they mean.
"""

from __future__ import annotations

from typing import Literal

from flowchat_contracts import ProviderError
from flowchat_platform.errors import DeadLetter, FlowchatError, RetryLater


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
    """Park the command in the DLQ with the reason (and the last error, when there is one)."""

    def __init__(
        self, reason: str, *, error: ProviderError | None = None, attempts: int | None = None
    ) -> None:
        super().__init__(reason)
        self.error = error
        self.attempts = attempts


class SenderError(FlowchatError):
    """Base of the sender's own failures."""


class StoreUnavailable(SenderError):
    """Redis (idempotency or rate limits) is down or slow; the send must not happen."""

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


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
