"""The headers the sender writes on the commands it moves (retry tiers, the DLQ).

Pure values and functions over a header mapping, so the fates that write them
(:class:`~flowchat_sender.errors.Park`) need no broker library.

- ``x-flowchat-attempt`` (:data:`~flowchat_platform.errors.HEADER_ATTEMPT`): provider
  attempts used so far, carried across retries (limiter and breaker waits do not count);
- ``x-flowchat-attempts``: on a parked copy, the attempts it took;
- ``x-flowchat-first-failure`` / ``x-flowchat-last-failure``: ISO times (UTC);
- ``x-flowchat-error-code`` / ``x-flowchat-error-message``: the last provider error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flowchat_platform.errors import HEADER_ATTEMPT

HEADER_ERROR_CODE = "x-flowchat-error-code"
HEADER_ERROR_MESSAGE = "x-flowchat-error-message"
HEADER_ATTEMPTS = "x-flowchat-attempts"
HEADER_FIRST_FAILURE = "x-flowchat-first-failure"
HEADER_LAST_FAILURE = "x-flowchat-last-failure"

#: The broker's dead-letter bookkeeping (prefixes): never copied onto a new message.
BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


def now() -> str:
    return datetime.now(UTC).isoformat()


def carried(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The message's own headers, without the broker's dead-letter bookkeeping."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith(BROKER_HEADERS)}


def attempts_in(headers: Mapping[str, Any] | None) -> int:
    """Provider attempts used so far (``x-flowchat-attempt``; 0 when absent or unreadable)."""
    try:
        return max(0, int(str((headers or {}).get(HEADER_ATTEMPT, 0))))
    except ValueError:
        return 0
