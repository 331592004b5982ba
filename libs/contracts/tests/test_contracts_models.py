import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import flowchat_contracts
from flowchat_contracts import (
    InboundMessage,
    OutboundCommand,
    SendResult,
    SendResultBatch,
    SendResultBatchV2,
    StatusEvent,
    StatusUpdate,
    render_schemas,
    send_results_in,
    topology,
)
from flowchat_contracts.schemas import DEFAULT_DIR

BASE = {"tenant_id": "tnt_1", "account_id": "acc_1", "idempotency_key": "k1", "to": "15551234567"}


def command(content: dict[str, Any]) -> OutboundCommand:
    return OutboundCommand.model_validate({**BASE, "content": content})


def test_exported_members_are_exactly_all():
    public = {n for n in dir(flowchat_contracts) if not n.startswith("_")}
    modules = {
        "command_events",
        "models",
        "schemas",
        "shared_state",
        "tenant_events",
        "topology",
        "webhooks",
        "whatsapp",
    }
    assert public - modules == set(flowchat_contracts.__all__) - {"topology"}
    for name in flowchat_contracts.__all__:
        assert hasattr(flowchat_contracts, name)


def test_checked_in_json_schemas_are_current():
    rendered = render_schemas()
    on_disk = {p.name: p.read_text() for p in DEFAULT_DIR.glob("*.json")}
    assert on_disk == rendered, "run `make schemas` and commit libs/contracts/schemas"


@pytest.mark.parametrize(
    "content",
    [
        {"type": "text", "body": "hello"},
        {"type": "image", "link": "https://example.com/a.jpg", "caption": "a"},
        {"type": "document", "media_id": "123", "filename": "invoice.pdf"},
        {
            "type": "template",
            "name": "order_update",
            "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}],
        },
        {
            "type": "interactive_buttons",
            "body": "Confirm?",
            "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
        },
        {
            "type": "interactive_list",
            "body": "Pick",
            "button": "Catalog",
            "sections": [{"title": "Cement", "rows": [{"id": "c1", "title": "Cement 50kg"}]}],
        },
        {"type": "reaction", "message_id": "wamid.X", "emoji": "👍"},
        {"type": "location", "latitude": 6.5, "longitude": 3.4, "name": "Shop"},
        {"type": "contacts", "contacts": [{"name": {"formatted_name": "Ann"}}]},
    ],
)
def test_every_content_type_round_trips(content):
    cmd = command(content)
    again = OutboundCommand.model_validate_json(cmd.model_dump_json())
    assert again == cmd
    assert again.content.type == content["type"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"type": "text", "body": "x" * 4097}, "4096"),
        ({"type": "text", "body": ""}, "at least 1"),
        ({"type": "image", "media_id": "1", "link": "https://e.com/a.jpg"}, "exactly one"),
        ({"type": "image"}, "exactly one"),
        ({"type": "image", "link": "https://e.com/a.jpg", "caption": "c" * 1025}, "1024"),
        ({"type": "audio", "media_id": "1", "caption": "no"}, "no caption"),
        (
            {
                "type": "interactive_buttons",
                "body": "b",
                "buttons": [{"id": str(i), "title": "t"} for i in range(4)],
            },
            "at most 3",
        ),
        (
            {
                "type": "interactive_buttons",
                "body": "b",
                "buttons": [{"id": "1", "title": "x" * 21}],
            },
            "20",
        ),
        (
            {
                "type": "interactive_list",
                "body": "b",
                "button": "B",
                "sections": [
                    {"title": f"s{s}", "rows": [{"id": f"{s}-{r}", "title": "t"} for r in range(6)]}
                    for s in range(2)
                ],
            },
            "10 rows",
        ),
        ({"type": "carrier_pigeon", "body": "x"}, "does not match any of the expected tags"),
    ],
)
def test_limits_refuse_bad_content(content, fragment):
    with pytest.raises(ValidationError) as info:
        command(content)
    assert fragment in str(info.value)


def test_recipient_must_be_a_phone_number():
    with pytest.raises(ValidationError):
        OutboundCommand.model_validate(
            {**BASE, "to": "not-a-number", "content": {"type": "text", "body": "x"}}
        )


def test_unknown_fields_are_ignored_for_forward_compatibility():
    cmd = OutboundCommand.model_validate(
        {**BASE, "future_field": 1, "content": {"type": "text", "body": "x", "extra": True}}
    )
    assert cmd.schema_version == 1
    assert "future_field" not in cmd.model_dump()


def test_status_events_are_told_apart_by_kind():
    adapter: TypeAdapter[Any] = TypeAdapter(StatusEvent)
    result = SendResult(
        tenant_id="t",
        account_id="a",
        message_id="m",
        idempotency_key="k",
        to="15551234567",
        message_type="text",
        status="accepted",
        provider="meta",
        provider_message_id="wamid.1",
    )
    update = StatusUpdate(
        tenant_id="t",
        account_id="a",
        provider="meta",
        provider_message_id="wamid.1",
        status="read",
        timestamp="2026-01-01T00:00:00Z",
    )
    assert isinstance(adapter.validate_json(result.model_dump_json()), SendResult)
    assert isinstance(adapter.validate_json(update.model_dump_json()), StatusUpdate)


def test_send_result_consistency():
    with pytest.raises(ValidationError, match="provider's message id"):
        SendResult(
            tenant_id="t",
            account_id="a",
            message_id="m",
            idempotency_key="k",
            to="15551234567",
            message_type="text",
            status="accepted",
            provider="meta",
        )
    with pytest.raises(ValidationError, match="carries the error"):
        SendResult(
            tenant_id="t",
            account_id="a",
            message_id="m",
            idempotency_key="k",
            to="15551234567",
            message_type="text",
            status="failed",
            provider="meta",
        )


def _accepted(message_id: str, account_id: str = "a") -> SendResult:
    return SendResult(
        tenant_id="t",
        account_id=account_id,
        message_id=message_id,
        idempotency_key=f"k-{message_id}",
        to="15551234567",
        message_type="text",
        status="accepted",
        provider="meta",
        provider_message_id=f"wamid.{message_id}",
    )


def test_a_batch_of_send_results_is_a_status_event_and_reads_as_its_results():
    batch = SendResultBatch(
        tenant_id="t", account_id="a", results=[_accepted("m1"), _accepted("m2")]
    )
    event = TypeAdapter(StatusEvent).validate_json(batch.model_dump_json())
    assert isinstance(event, SendResultBatch)
    assert [r.message_id for r in send_results_in(batch.model_dump_json())] == ["m1", "m2"]
    lone = _accepted("m3")
    assert send_results_in(lone.model_dump_json().encode()) == [lone]


def test_a_batch_holds_one_account_and_at_least_one_result():
    with pytest.raises(ValidationError, match="batch's tenant and account"):
        SendResultBatch(tenant_id="t", account_id="a", results=[_accepted("m1", "other")])
    with pytest.raises(ValidationError, match="at least 1"):
        SendResultBatch(tenant_id="t", account_id="a", results=[])
    with pytest.raises(ValidationError):
        send_results_in(b'{"kind": "status_update"}')


def test_a_v2_batch_holds_results_of_any_accounts_and_tenants():
    results = [_accepted("m1", "a"), _accepted("m2", "b"), _accepted("m3", "c")]
    other_tenant = results[2].model_copy(update={"tenant_id": "t2"})
    batch = SendResultBatchV2(results=[*results[:2], other_tenant])
    body = batch.model_dump_json()
    assert json.loads(body)["schema_version"] == 2
    event = TypeAdapter(StatusEvent).validate_json(body)
    assert isinstance(event, SendResultBatchV2)
    assert [(r.tenant_id, r.account_id) for r in send_results_in(body)] == [
        ("t", "a"),
        ("t", "b"),
        ("t2", "c"),
    ]
    with pytest.raises(ValidationError, match="at least 1"):
        SendResultBatchV2(results=[])


def test_batches_of_both_versions_are_told_apart_by_schema_version():
    v1 = SendResultBatch(tenant_id="t", account_id="a", results=[_accepted("m1")])
    untagged = json.loads(v1.model_dump_json())
    del untagged["schema_version"]  # absent: version 1
    for body in (v1.model_dump_json(), json.dumps(untagged)):
        assert isinstance(TypeAdapter(StatusEvent).validate_json(body), SendResultBatch)
    # a v2 body with no tenant on top is not a v1 body, nor an unknown version
    v2 = json.loads(SendResultBatchV2(results=[_accepted("m1")]).model_dump_json())
    with pytest.raises(ValidationError):
        send_results_in(json.dumps({**v2, "schema_version": 1}))
    with pytest.raises(ValidationError):
        send_results_in(json.dumps({**v2, "schema_version": 3}))


def test_v2_batch_schema_requires_its_version_and_takes_several_accounts():
    import jsonschema

    v1 = json.loads((DEFAULT_DIR / "send_result_batch.v1.json").read_text())
    v2 = json.loads((DEFAULT_DIR / "send_result_batch.v2.json").read_text())
    mixed = SendResultBatchV2(results=[_accepted("m1", "a"), _accepted("m2", "b")])
    body = json.loads(mixed.model_dump_json())
    jsonschema.validate(body, v2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, v1)  # no tenant_id / account_id of its own
    with pytest.raises(jsonschema.ValidationError, match="schema_version"):
        jsonschema.validate({k: v for k, v in body.items() if k != "schema_version"}, v2)


def test_send_results_key_names_the_shared_tenant_and_account_else_several():
    key = topology.send_results_routing_key
    assert key([("t.1", "a"), ("t.1", "a")], "send_result_batch") == "t_1.a.send_result_batch"
    assert key([("t", "a"), ("t", "b")], "send_result_batch") == "t.-.send_result_batch"
    assert key([("t", "a"), ("u", "a")], "send_result_batch") == "-.a.send_result_batch"
    assert key([("t", "a"), ("u", "b")], "send_result_batch") == "-.-.send_result_batch"


def test_inbound_message_accepts_unsupported_type():
    msg = InboundMessage(
        tenant_id="t",
        account_id="a",
        provider="meta",
        provider_message_id="wamid.9",
        phone_number_id="1",
        customer_wa_id="15551234567",
        type="unsupported",
        timestamp="2026-01-01T00:00:00Z",
        errors=[{"code": 131051, "title": "Unsupported message type"}],
    )
    assert json.loads(msg.model_dump_json())["errors"][0]["code"] == 131051


def test_retry_tiers_use_queue_ttl_and_dead_letter_back():
    assert [t.label for t in topology.RETRY_TIERS] == ["1s", "5s", "30s", "2m", "10m", "1h"]
    for tier in topology.RETRY_TIERS:
        args = tier.spec().arguments
        assert args["x-message-ttl"] == tier.delay_s * 1000
        assert args["x-dead-letter-routing-key"] == topology.QUEUE_OUTBOUND
    assert topology.retry_tier_for(1).delay_s == 1
    assert topology.retry_tier_for(2).delay_s == 5
    assert topology.retry_tier_for(31).delay_s == 120
    assert topology.retry_tier_for(99999).delay_s == 3600


def test_routing_keys_cannot_be_smuggled_extra_words():
    assert topology.inbound_routing_key("t.1", "a", "text") == "t_1.a.text"
    names = [q.name for q in topology.ALL_QUEUES]
    assert len(names) == len(set(names))
    assert {b.queue for b in topology.ALL_BINDINGS} <= set(names)


def test_exported_schema_accepts_what_a_non_python_publisher_sends():
    import jsonschema

    schema = json.loads((DEFAULT_DIR / "outbound_command.v1.json").read_text())
    valid = {**BASE, "content": {"type": "text", "body": "hello from Go"}}
    jsonschema.validate(valid, schema)
    too_many = {
        **BASE,
        "content": {
            "type": "interactive_buttons",
            "body": "b",
            "buttons": [{"id": str(i), "title": "t"} for i in range(4)],
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(too_many, schema)


def test_the_relays_copies_never_fill_anything_up():
    """The relay's queues (declared by the relay alone) are bounded, dropping the
    oldest, never dead-lettering into the poison queue nor refusing the publishers."""
    for name in (topology.QUEUE_RELAY_EVENTS, topology.QUEUE_RELAY_INBOUND):
        args = next(q.arguments for q in topology.RELAY_QUEUES if q.name == name)
        assert "x-dead-letter-exchange" not in args
        assert args.get("x-overflow") != "reject-publish"
        assert args["x-message-ttl"] <= 24 * 3600 * 1000
        assert args["x-max-length"] > 0
    bound = {(b.queue, b.exchange, b.routing_key) for b in topology.RELAY_BINDINGS}
    assert (topology.QUEUE_RELAY_INBOUND, topology.EXCHANGE_INBOUND, "#") in bound
    # relay.events: only the keys it turns into webhook events (statuses, hand-offs,
    # order and campaign facts, two business fields)
    events = {k for q, x, k in bound if q == topology.QUEUE_RELAY_EVENTS}
    assert "#" not in events
    # statuses by their first three words: a campaign message's four-word key too
    assert events == {
        f"*.*.{k}.#" if k in topology.RELAY_STATUS_KEYS else f"*.*.{k}"
        for k in topology.RELAY_EVENT_KEYS
    }
    assert {"delivered", "failed", "handoff_requested"} <= set(topology.RELAY_EVENT_KEYS)
    retired = {(b.queue, b.exchange, b.routing_key) for b in topology.RELAY_RETIRED_BINDINGS}
    assert retired == {
        (topology.QUEUE_RELAY_EVENTS, topology.EXCHANGE_EVENTS, "#"),
        *(
            (topology.QUEUE_RELAY_EVENTS, topology.EXCHANGE_EVENTS, f"*.*.{k}")
            for k in topology.RELAY_STATUS_KEYS
        ),
    }


def test_conversation_events_takes_only_the_keys_the_service_acts_on():
    """``conversation.events`` is bound to campaign messages' statuses (routing keys v2:
    ``.campaign``), any ``failed``, the business fields and hand-offs the conversation
    service uses, not to ``#`` nor to every message's statuses; the earlier bindings are
    retired."""
    events = {
        k
        for q, x, k in ((b.queue, b.exchange, b.routing_key) for b in topology.ALL_BINDINGS)
        if q == topology.QUEUE_CONVERSATION_EVENTS and x == topology.EXCHANGE_EVENTS
    }
    assert events == set(topology.CONVERSATION_EVENT_PATTERNS)
    assert events == {
        "*.*.sent.campaign",
        "*.*.delivered.campaign",
        "*.*.read.campaign",
        "*.*.played.campaign",
        "*.*.failed.campaign",
        "*.*.failed",
        "*.*.message_template_status_update",
        "*.*.user_marketing_preferences",
        f"*.*.{topology.HANDOFF_REQUESTED}",
        f"*.*.{topology.HANDOFF_RESOLVED}",
    }
    retired = {(b.queue, b.exchange, b.routing_key) for b in topology.RETIRED_BINDINGS}
    for status in ("sent", "delivered", "read", "played"):
        assert (
            topology.QUEUE_CONVERSATION_EVENTS,
            topology.EXCHANGE_EVENTS,
            f"*.*.{status}",
        ) in retired
    assert (topology.QUEUE_CONVERSATION_EVENTS, topology.EXCHANGE_EVENTS, "#") in retired
    assert not retired & {(b.queue, b.exchange, b.routing_key) for b in topology.ALL_BINDINGS}


def test_checked_in_asyncapi_document_is_current_and_complete():
    from flowchat_contracts.asyncapi import DEFAULT_PATH, ROUTES, render_asyncapi

    assert DEFAULT_PATH.read_text() == render_asyncapi(), "run `make schemas` and commit"
    document = json.loads(render_asyncapi())
    # every broker contract has a channel (the webhook bodies are HTTP, not AMQP)
    placed = {stem for route in ROUTES for stem in route.messages}
    broker = {stem for stem in flowchat_contracts.SCHEMA_MODELS if not stem.startswith("webhook.")}
    assert placed == broker
    for message in document["components"]["messages"].values():
        ref = message["payload"]["schema"]["$ref"]
        assert (DEFAULT_DIR.parent / ref).exists(), ref
    # every exchange and every queue of the topology is in it
    exchanges = {c["bindings"]["amqp"]["exchange"]["name"] for c in document["channels"].values()}
    assert exchanges == {e.name for e in topology.ALL_EXCHANGES}
    assert set(document["x-flowchat-queues"]) == {q.name for q in topology.QUEUE_SPECS}
    assert document["x-flowchat-queues"][topology.QUEUE_OUTBOUND]["bindings"] == [
        {"exchange": topology.EXCHANGE_OUTBOUND, "routingKey": "*.*"}
    ]
