"""The errors: every refused query has its HTTP answer in app.py's one table, and the
root of the tree is the platform's."""

from __future__ import annotations

import orjson

from flowchat_platform.errors import FlowchatError
from flowchat_state_manager.app import QUERY_ERRORS, error_response
from flowchat_state_manager.errors import MessageNotFound, QueryError, StateManagerError


def test_every_query_error_has_an_http_answer() -> None:
    assert set(QueryError.__subclasses__()) == set(QUERY_ERRORS)


def test_the_answer_is_the_one_error_body() -> None:
    response = error_response(MessageNotFound("no such message"))
    assert response.status_code == 404
    assert orjson.loads(response.body) == {
        "error": {"code": "not_found", "message": "no such message", "details": []}
    }


def test_the_root_is_the_platforms() -> None:
    assert issubclass(StateManagerError, FlowchatError)
