"""Every kind of event bound to ``state-manager.status`` is handled and acked (real
RabbitMQ and PostgreSQL): the guard issue 21 asks of every consumer (the sender's is
``services/sender/tests/test_sender_event_kinds.py``).

The queue takes all of ``flowchat.status`` (``#``): the sender's ``send_result`` and
``send_result_batch`` (v1: one account's; v2: any accounts'), the gateway's
``status_update`` (now with the customer as an identity: a BSUID and a phone number).
One of each, published as its publisher does, leaves nothing in the poison queue and
lands in the message record.
"""

from __future__ import annotations

import typing
from typing import Any

from flowchat_contracts import CustomerIdentity, SendResultBatch, SendResultBatchV2, StatusEvent

BSUID = "US.13491208655302741918"


def models_of(tp: Any) -> list[Any]:
    """The models of a (possibly nested, annotated) union."""
    if typing.get_origin(tp) is typing.Annotated:
        return models_of(typing.get_args(tp)[0])
    members = typing.get_args(tp)
    return [m for member in members for m in models_of(member)] if members else [tp]


def kinds_of_the_decoder() -> set[tuple[str, int]]:
    """The ``kind`` and version of every model the consumer's decoder (``StatusEvent``)
    accepts."""
    return {
        (m.model_fields["kind"].default, m.model_fields["schema_version"].default)
        for m in models_of(StatusEvent)
    }


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
    four, wamid_4 = build.new_ids()
    across = SendResultBatchV2(
        results=[
            build.send_result(four, wamid_4, account="acc_2"),
            build.send_result(*build.new_ids()),
        ]
    )
    events = [build.send_result(one, wamid_1), batch, across, status]
    assert {(e.kind, e.schema_version) for e in events} == kinds_of_the_decoder()
    await harness.publish(*events)
    assert await harness.poison() == []
    assert (await harness.message(one))["status"] == "delivered"
    assert (await harness.message(one))["recipient_alias"] == BSUID
    assert (await harness.message(three))["recipient"] == BSUID
    assert (await harness.message(four))["status"] == "accepted"
