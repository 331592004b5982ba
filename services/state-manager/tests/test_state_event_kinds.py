"""Every kind of event bound to ``state-manager.status`` is handled and acked (real
RabbitMQ and PostgreSQL): the guard issue 21 asks of every consumer (the sender's is
``services/sender/tests/test_sender_event_kinds.py``).

The queue takes all of ``flowchat.status`` (``#``): the sender's ``send_result`` and
``send_result_batch``, the gateway's ``status_update`` (now with the customer as an
identity: a BSUID and a phone number). One of each, published as its publisher does,
leaves nothing in the poison queue and lands in the message record.
"""

from __future__ import annotations

import typing
from typing import Any

from flowchat_contracts import CustomerIdentity, SendResultBatch, StatusEvent

BSUID = "US.13491208655302741918"


def kinds_of_the_decoder() -> set[str]:
    """The ``kind`` of every model the consumer's decoder (``StatusEvent``) accepts."""
    union = typing.get_args(StatusEvent)[0] if typing.get_args(StatusEvent) else StatusEvent
    members = typing.get_args(union) or (union,)
    return {m.model_fields["kind"].default for m in members}


async def test_every_kind_on_the_status_queue_is_acked(harness: Any, build: Any) -> None:
    one, wamid_1 = build.new_ids()
    two, wamid_2 = build.new_ids()
    three, wamid_3 = build.new_ids()
    batch = SendResultBatch(
        tenant_id="tnt_a",
        account_id="acc_1",
        results=[build.send_result(two, wamid_2), build.send_result(three, wamid_3, to=BSUID)],
    )
    status = build.status_update(wamid_1, "delivered").model_copy(
        update={"customer": CustomerIdentity(wa_id="15551230001", user_id=BSUID)}
    )
    events = [build.send_result(one, wamid_1), batch, status]
    assert {e.kind for e in events} == kinds_of_the_decoder()
    await harness.publish(*events)
    assert await harness.poison() == []
    assert (await harness.message(one))["status"] == "delivered"
    assert (await harness.message(one))["recipient_alias"] == BSUID
    assert (await harness.message(three))["recipient"] == BSUID
