"""The relay's pure parts, no I/O: address safety, URL forms, signatures (checked with
the receivers' own libraries), backoff, Retry-After, the exported event schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from pywa.utils import webhook_updates_validator
from standardwebhooks.webhooks import Webhook

from flowchat_contracts import MessageStatus
from flowchat_contracts.schemas import DEFAULT_DIR
from flowchat_platform.crypto import SecretBox
from flowchat_platform.errors import ConfigurationError
from flowchat_relay.dispatcher import backoff_s
from flowchat_relay.errors import InvalidEndpoint
from flowchat_relay.events import StatusChanged, status_event
from flowchat_relay.http_client import retry_after_s
from flowchat_relay.safety import address_refusal, parse_url
from flowchat_relay.settings import Settings
from flowchat_relay.signing import meta_headers, new_secret, standard_headers


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fd00:ec2::254",
        "224.0.0.251",
        "ff02::1",
        "0.0.0.0",
        "::",
        "100.100.100.200",
        "240.0.0.1",
        "255.255.255.255",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "198.18.0.1",
        "192.0.2.1",
    ],
)
def test_unsafe_addresses_are_refused(address: str):
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str):
    assert address_refusal(address) is None


def test_url_forms():
    assert parse_url("https://hooks.example.com:8443/a?b=1", allow_http=False).port == 8443
    for url in ("http://hooks.example.com/", "https://a@b.example/", "https://b.example/#f"):
        with pytest.raises(InvalidEndpoint) as caught:
            parse_url(url, allow_http=False)
        assert caught.value.field == "url"
    assert parse_url("http://127.0.0.1:9/", allow_http=True).hostname == "127.0.0.1"


KEY = SecretBox.generate_key()


def _settings(**over: object) -> Settings:
    values: dict[str, object] = {"FLOWCHAT_SERVICE_TOKEN": "svc-token-0123456789abcdef"}
    values["encryption_keys"] = KEY
    return Settings(**{**values, **over})  # type: ignore[arg-type]


def test_the_secrets_key_is_required_and_checked():
    _settings().check_secrets()
    for bad in (None, "not-a-fernet-key"):
        with pytest.raises(ConfigurationError) as caught:
            _settings(encryption_keys=bad).check_secrets()
        assert caught.value.variable == "FLOWCHAT_RELAY_ENCRYPTION_KEYS"
        assert "not-a-fernet-key" not in str(caught.value)


def test_https_outside_development_and_no_private_targets_in_production():
    assert _settings(FLOWCHAT_ENV="development").allow_http
    assert not _settings(FLOWCHAT_ENV="test").allow_http
    assert not _settings(FLOWCHAT_ENV="production").allow_http
    assert _settings(FLOWCHAT_ENV="test", allow_private_targets=True).allow_http
    _settings(FLOWCHAT_ENV="test", allow_private_targets=True).check_secrets()
    with pytest.raises(ConfigurationError) as caught:
        _settings(FLOWCHAT_ENV="production", allow_private_targets=True).check_secrets()
    assert caught.value.variable == "FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS"


def test_standard_signatures_verify_with_standardwebhooks():
    old, new = new_secret(), new_secret()
    assert old.startswith("whsec_")
    assert old != new
    body = b'{"type":"message.status"}'
    now = int(datetime.now(UTC).timestamp())
    headers = standard_headers([new, old], "evt_1", now, body)
    assert Webhook(new).verify(body, headers) == {"type": "message.status"}
    assert Webhook(old).verify(body, headers) == {"type": "message.status"}
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)


def test_meta_signature_verifies_with_pywa():
    secret = new_secret()
    body = b'{"object":"whatsapp_business_account"}'
    header = meta_headers(secret, body)["X-Hub-Signature-256"]
    assert webhook_updates_validator(secret, body, header)
    assert not webhook_updates_validator(secret, body + b" ", header)


def test_backoff_grows_jittered_and_capped():
    low = [backoff_s(n, base_s=1, max_s=60, rand=lambda: 0.0) for n in range(1, 10)]
    high = [backoff_s(n, base_s=1, max_s=60, rand=lambda: 1.0) for n in range(1, 10)]
    assert low[:4] == [0.5, 1.0, 2.0, 4.0]
    assert high[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(high) == 60
    assert backoff_s(10_000, base_s=1, max_s=60, rand=lambda: 0.5) <= 60


def test_retry_after_forms():
    now = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120
    assert retry_after_s("Sun, 06 Dec 2026 12:00:30 GMT", now) == 30
    assert retry_after_s("Sun, 06 Dec 2026 11:00:00 GMT", now) == 0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None
    assert retry_after_s("99999999", now) == 24 * 3600


def test_events_match_their_exported_schema():
    event = status_event(
        StatusChanged(
            kind="message_status_changed",
            event_id="e1",
            message_id="m1",
            tenant_id="t",
            account_id="a",
            status="failed",
            error_code=131026,
            error_title="x",
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        )
    ).event
    schema = json.loads((DEFAULT_DIR / "webhook.message.status.v1.json").read_text())
    jsonschema.validate(json.loads(event.model_dump_json()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**json.loads(event.model_dump_json()), "type": "nope"}, schema)


def test_reads_what_the_state_manager_publishes():
    """The relay mirrors the state-manager's event model: a drift fails here."""
    from flowchat_state_manager.events import MessageStatusChanged

    published = MessageStatusChanged(
        message_id="m1",
        tenant_id="t",
        account_id="a",
        status="failed",
        previous_status="sent",
        provider="meta",
        provider_message_id="wamid.X",
        recipient="US.abc123",
        error_code=131049,
        error_title="Ecosystem",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )
    read = StatusChanged.model_validate_json(published.model_dump_json())
    event = status_event(read).event
    assert isinstance(event, MessageStatus)
    assert event.id == f"evt_{published.event_id}"
    assert event.data.recipient == "US.abc123"
    assert event.data.error is not None
    assert event.data.error.code == 131049
    assert status_event(read).conversation == "US.abc123"


def test_a_meta_status_names_a_cloud_api_message_by_the_id_it_was_given():
    """A message queued through the gateway's compatible endpoint: its ``meta`` statuses
    carry ``wamid_of(message_id)`` and echo the callback data; others the provider's id."""
    from flowchat_contracts.meta_ids import wamid_of
    from flowchat_platform.accounts import AccountCredentials
    from flowchat_platform.meta_echo import SentThroughCloudApi
    from flowchat_relay.events import meta_body

    read = StatusChanged(
        kind="message_status_changed",
        event_id="e1",
        message_id="m1",
        tenant_id="t",
        account_id="a",
        status="delivered",
        provider_message_id="wamid.PROVIDER",
        recipient="15551230001",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )
    event = status_event(read).event
    account = AccountCredentials.model_validate(
        {"account_id": "a", "tenant_id": "t", "provider": "meta", "phone_number_id": "pn"}
    )

    def status(body: Any) -> Any:
        return body["entry"][0]["changes"][0]["value"]["statuses"][0]

    plain = status(meta_body(event, account))
    assert plain["id"] == "wamid.PROVIDER"
    assert "biz_opaque_callback_data" not in plain
    tracked = status(meta_body(event, account, SentThroughCloudApi("order-42")))
    assert tracked["id"] == wamid_of("m1")
    assert tracked["biz_opaque_callback_data"] == "order-42"
    untracked = status(meta_body(event, account, SentThroughCloudApi(None)))
    assert untracked["id"] == wamid_of("m1")
    assert "biz_opaque_callback_data" not in untracked


def test_customer_ids_are_every_id_the_event_names() -> None:
    from flowchat_relay.events import customer_ids

    body = {
        "type": "message.received",
        "account_id": "acc_1",
        "data": {
            "customer": {"wa_id": "15551230001", "user_id": "US.1", "username": "ada"},
            "customer_name": "Ada",
            "contacts": [{"parent_user_id": "US.ENT.9"}],
            "recipient": "",
        },
    }
    assert customer_ids(body) == ["15551230001", "US.1", "US.ENT.9"]
    status = {"data": {"recipient": "+15551230001", "provider_message_id": "wamid.x"}}
    assert customer_ids(status) == ["+15551230001"]
    assert customer_ids({"data": {"waba_id": "1", "display_phone_number": "1555"}}) == []
