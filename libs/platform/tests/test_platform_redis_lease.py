"""Test helpers (flowchat_platform.testing): a Redis database per test against real Redis
(``temporary_redis_db`` / ``redis_url``), and ports handed out once."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

import pytest
import redis

from flowchat_platform import testing
from flowchat_platform.testing import REDIS_LEASE_KEY, temporary_redis_db

pytestmark = pytest.mark.integration


def db_of(url: str) -> int:
    return int(urlsplit(url).path.lstrip("/"))


def test_concurrent_leases_get_distinct_empty_databases_emptied_after() -> None:
    key = f"k-{uuid.uuid4().hex}"
    with temporary_redis_db() as a, temporary_redis_db() as b:
        assert db_of(a) != db_of(b)
        assert {db_of(a), db_of(b)} <= set(testing.REDIS_TEST_DBS)
        for url in (a, b):
            with redis.Redis.from_url(url) as client:
                assert client.keys() == [REDIS_LEASE_KEY.encode()]
                client.set(key, b"1")
    for url in (a, b):
        with redis.Redis.from_url(url) as client:
            assert client.get(key) is None


def test_the_fixture_hands_out_a_leased_database(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.get(REDIS_LEASE_KEY) is not None
        assert client.dbsize() == 1


def test_a_dead_runs_keys_are_emptied_by_the_next_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    with temporary_redis_db() as url, redis.Redis.from_url(url) as client:
        client.set("leftover", b"1")
        client.delete(REDIS_LEASE_KEY)  # the run died; its lease expired
    monkeypatch.setattr(testing, "REDIS_TEST_DBS", (db_of(url),))
    with temporary_redis_db() as again, redis.Redis.from_url(again) as client:
        assert again == url
        assert client.get("leftover") is None


def test_a_lease_taken_over_is_not_emptied_by_its_former_holder() -> None:
    other = f"other-run-{uuid.uuid4().hex}"
    with temporary_redis_db() as url, redis.Redis.from_url(url) as client:
        client.set(REDIS_LEASE_KEY, other, ex=60)  # ours expired; another run holds it
        client.set("theirs", b"1")
    with redis.Redis.from_url(url) as client:
        try:
            assert client.get("theirs") == b"1"
        finally:
            if client.get(REDIS_LEASE_KEY) == other.encode():
                client.delete("theirs", REDIS_LEASE_KEY)


def test_free_port_never_hands_out_a_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # bind(0) may give the same port again right after it was closed: here it always does
    offered = iter([50001, 50001, 50001, 50002])

    class Socket:
        def __init__(self, *args: object) -> None:
            self.port = 0

        def __enter__(self) -> Socket:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def bind(self, address: tuple[str, int]) -> None:
            self.port = next(offered)

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(testing, "_HANDED_OUT", set())
    monkeypatch.setattr(socket, "socket", Socket)
    assert [testing.free_port(), testing.free_port()] == [50001, 50002]
