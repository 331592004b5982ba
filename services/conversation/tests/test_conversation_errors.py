"""The error vocabulary: every refusal has its HTTP status in the one table, the one
handler answers FlowChat's error body, and ``errors.py`` draws every class."""

from __future__ import annotations

import asyncio
import json

from flowchat_conversation import errors
from flowchat_conversation.app import HTTP_STATUS, http_status, refused
from flowchat_conversation.errors import (
    ConversationError,
    InvalidAmount,
    NotReady,
    OutreachNotFound,
    ProviderRefused,
    SessionConflict,
)
from flowchat_platform.errors import FlowchatError


def _classes() -> list[type[ConversationError]]:
    return [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, ConversationError)
    ]


def test_the_tree_is_drawn_whole_and_rooted_in_the_platform() -> None:
    assert issubclass(ConversationError, FlowchatError)
    doc = errors.__doc__ or ""
    missing = [c.__name__ for c in _classes() if f" {c.__name__}" not in doc]
    assert missing == []


def test_every_refusal_has_a_status_and_only_a_bug_is_a_500() -> None:
    unmapped = [c.__name__ for c in _classes() if not any(k in HTTP_STATUS for k in c.__mro__)]
    assert unmapped == ["ConversationError", "SessionConflict"]
    assert http_status(InvalidAmount("too many decimals")) == 422  # the subclass wins
    assert http_status(OutreachNotFound("contact", 7)) == 404
    assert http_status(SessionConflict("t:a:c", expected_version=3)) == 500


def test_the_handler_answers_the_error_body() -> None:
    exc = ProviderRefused("the provider refused the template lookup (400)", details=[{"code": 100}])
    response = asyncio.run(refused(None, exc))  # type: ignore[arg-type]
    assert response.status_code == 502
    assert json.loads(bytes(response.body)) == {
        "error": {
            "code": "provider_error",
            "message": "the provider refused the template lookup (400)",
            "details": [{"code": 100}],
        }
    }
    ready = asyncio.run(refused(None, NotReady("the database")))  # type: ignore[arg-type]
    assert ready.status_code == 503
    assert json.loads(bytes(ready.body))["error"]["message"] == "the database is not connected yet"
