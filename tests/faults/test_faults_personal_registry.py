"""The run's personal-data registry (``faults_kit.PersonalData``) reads what the suite's
requests carry: no server needed. The scan itself is the security package's last test
(``test_personal_data_never_in_logs_or_metrics``), run last in the whole fault run."""

from __future__ import annotations

import json

import httpx
from faults_kit import PersonalData, Tenant, inbound_webhook, observe_request, status_webhook

TENANT = Tenant(
    "tnt_1", "acc_1", "109900000001", "209900000", "+15550000010", "t", "s", "v", "fc_key_x"
)


def test_meta_webhooks_give_phone_bsuid_name_and_text() -> None:
    run = PersonalData()
    body = json.loads(inbound_webhook(TENANT, "2348011112222", "Where is my order?"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["profile"]["name"] = "Adaeze Obi"
    value["contacts"][0]["user_id"] = "NG.8903456789012345"
    run.observe("POST", "/webhooks/meta", json.dumps(body).encode())
    run.observe(
        "POST", "/webhooks/meta", status_webhook(TENANT, "wamid.X", "read", "15550009999", 1)
    )
    assert set(run.phones) == {"2348011112222", "15550009999"}
    assert set(run.bsuids) == {"NG.8903456789012345"}
    assert set(run.texts) == {"Where is my order?", "Adaeze Obi"}
    # the business's own number (metadata) is not a customer's
    assert "15550000010" not in run.phones


def test_sends_twilio_and_sandbox_customers() -> None:
    run = PersonalData()
    send = {"account_id": "acc_1", "to": "+14155550123", "content": {"type": "text", "body": "Hi"}}
    run.observe("POST", "/v1/messages", json.dumps(send).encode())
    run.observe(
        "POST",
        "/webhooks/twilio/acc_1",
        b"From=whatsapp%3A%2B14155550777&To=whatsapp%3A%2B14155550000&Body=Your+parcel+please",
    )
    run.observe("POST", "/sandbox/customers/2348000001111/messages", b'{"text": "(window)"}')
    run.observe("GET", "/v1/messages", b"")  # reads carry nothing of a customer
    assert set(run.phones) == {"14155550123", "14155550777", "2348000001111"}
    # texts shorter than MIN_TEXT ("Hi") are words any log has
    assert set(run.texts) == {"Your parcel please", "(window)"}
    run.business.add("14155550777")
    assert "14155550777" not in run.customer_phones()


def test_requests_are_read_through_httpx() -> None:
    from faults_kit import RUN

    phone = "2348099990001"
    request = httpx.Request(
        "POST",
        "http://127.0.0.1:1/v1/messages",
        json={"to": phone, "content": {"type": "text", "body": "registry probe text"}},
    )
    observe_request(request)
    assert phone in RUN.phones
    assert "registry probe text" in RUN.texts
