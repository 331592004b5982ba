"""Send results leave in batches under load (v2: any accounts together; v1: one message
per account), each once, each caller back after its confirm (real RabbitMQ, a vhost of
its own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest

from flowchat_contracts import SendResult, send_results_in, topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.errors import PublishError
from flowchat_platform.testing import drain_queue
from flowchat_sender.consumer import ResultBatcher

pytestmark = pytest.mark.integration


def result(i: int, account: str, tenant: str = "tnt-1") -> SendResult:
    return SendResult(
        tenant_id=tenant,
        account_id=account,
        message_id=f"m-{account}-{i}",
        idempotency_key=f"k-{account}-{i}",
        to=f"1555000{i:04d}",
        message_type="text",
        status="accepted",
        provider="meta",
        provider_message_id=f"wamid.{account}.{i}",
    )


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[Amqp]:
    client = Amqp(amqp_url, service="sender-test")
    await client.connect()
    try:
        yield client
    finally:
        await client.close(grace_s=0)


async def landed(amqp_url: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    return await drain_queue(amqp_url, topology.QUEUE_STATE_STATUS)


async def test_results_of_many_accounts_finishing_together_share_one_message(
    amqp: Amqp, amqp_url: str
) -> None:
    """Version 2 (the default): one message for whatever finished together, across
    accounts and tenants; each result lands once."""
    batcher = ResultBatcher(amqp)
    sent = [result(i, f"acc-{a}", tenant=f"tnt-{a % 2}") for i in range(4) for a in range(100)]
    await asyncio.gather(*(batcher.publish(r) for r in sent))

    messages = await landed(amqp_url)
    assert len(messages) <= 4  # 400 results of 100 accounts: not one message per account
    got: list[SendResult] = []
    for m in messages:
        body = orjson.loads(m.body)
        assert (body["kind"], body["schema_version"]) == ("send_result_batch", 2)
        assert m.routing_key == "-.-.send_result_batch"  # several tenants and accounts
        got.extend(send_results_in(m.body))
    assert sorted(r.message_id for r in got) == sorted(r.message_id for r in sent)
    assert batcher.items == len(sent)


async def test_one_tenants_accounts_in_a_v2_batch_keep_the_tenant_word(
    amqp: Amqp, amqp_url: str
) -> None:
    batcher = ResultBatcher(amqp)
    await asyncio.gather(*(batcher.publish(result(0, f"acc-{a}")) for a in range(20)))
    keys = {m.routing_key for m in await landed(amqp_url)}
    assert "tnt-1.-.send_result_batch" in keys
    assert all((k or "").startswith("tnt-1.") for k in keys)


async def test_version_1_publishes_one_message_per_account(amqp: Amqp, amqp_url: str) -> None:
    """Version 1 (a rollout with state-managers that read only v1)."""
    batcher = ResultBatcher(amqp, version=1)
    sent = [result(i, account) for i in range(40) for account in ("acc-a", "acc-b")]
    await asyncio.gather(*(batcher.publish(r) for r in sent))

    messages = await landed(amqp_url)
    assert len(messages) < len(sent) / 4  # batched, not one message per result
    got: list[SendResult] = []
    for m in messages:
        body = orjson.loads(m.body)
        accounts = {r.account_id for r in send_results_in(m.body)}
        assert accounts == {body["account_id"]}  # one account per message
        assert body.get("schema_version", 1) == 1
        assert m.routing_key == topology.status_routing_key(
            "tnt-1", body["account_id"], body["kind"]
        )
        got.extend(send_results_in(m.body))
    assert sorted(r.message_id for r in got) == sorted(r.message_id for r in sent)
    assert any(orjson.loads(m.body)["kind"] == "send_result_batch" for m in messages)


async def test_a_lone_result_or_batching_off_publishes_plain_send_results(
    amqp: Amqp, amqp_url: str
) -> None:
    await ResultBatcher(amqp).publish(result(0, "acc-a"))
    single = ResultBatcher(amqp, max_batch=1)
    await asyncio.gather(*(single.publish(result(i, "acc-a")) for i in range(1, 6)))

    messages = await landed(amqp_url)
    assert [orjson.loads(m.body)["kind"] for m in messages] == ["send_result"] * 6
    assert messages[0].message_id == "m-acc-a-0:accepted:1"


@pytest.mark.parametrize("version", [1, 2])
async def test_every_caller_of_a_failed_publish_gets_the_error(amqp: Amqp, version: int) -> None:
    batcher = ResultBatcher(amqp, version=version)
    await amqp.close(grace_s=0)
    outcomes = await asyncio.gather(
        *(batcher.publish(result(i, f"acc-{i % 3}")) for i in range(9)), return_exceptions=True
    )
    assert all(isinstance(o, PublishError) for o in outcomes), outcomes


def test_the_batch_version_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from flowchat_sender.settings import Settings

    assert Settings().result_batch_version == 2
    monkeypatch.setenv("FLOWCHAT_SENDER_RESULT_BATCH_VERSION", "1")
    assert Settings().result_batch_version == 1
    monkeypatch.setenv("FLOWCHAT_SENDER_RESULT_BATCH_VERSION", "3")
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(ValueError, match="no send_result_batch version 3"):
        ResultBatcher(None, version=3)  # type: ignore[arg-type]
