"""Forged and replayed webhook signatures, against the running gateway.

Meta ``X-Hub-Signature-256`` and Twilio ``X-Twilio-Signature``: a wrong secret (another
tenant's included), a missing header, malformed values, an altered body, URL or
parameter: 401 each, and nothing recorded — the same message id signed correctly
afterwards is still *new* (published, not a duplicate). A valid webhook replayed (as is,
re-signed with other hex case, or with its body changed and re-signed) is answered 200
and never processed twice: the gateway counts it as a duplicate and the conversation
service handles the message exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from urllib.parse import urlencode

import httpx
import pytest
from faults_kit import inbound_webhook, open_windows, sign
from security_kit import SecurityEnv, metric, metrics_of, wait_handled
from twilio.request_validator import RequestValidator

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _meta_forgeries(secret: str, other_secret: str, body: bytes) -> dict[str, dict[str, str]]:
    good = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    altered = body.replace(b'"body": "', b'"body": "PWNED ')
    assert altered != body
    ct = {"Content-Type": "application/json"}
    return {
        "other_tenant_secret": sign(other_secret, body),
        "random_secret": sign(uuid.uuid4().hex, body),
        "missing": ct,
        "empty": {**ct, "X-Hub-Signature-256": ""},
        "prefix_only": {**ct, "X-Hub-Signature-256": "sha256="},
        "no_prefix": {**ct, "X-Hub-Signature-256": good},
        "sha1_prefix": {**ct, "X-Hub-Signature-256": "sha1=" + good},
        "truncated": {**ct, "X-Hub-Signature-256": "sha256=" + good[:-2]},
        "extended": {**ct, "X-Hub-Signature-256": "sha256=" + good + "00"},
        "not_hex": {**ct, "X-Hub-Signature-256": "sha256=" + "z" * 64},
        "sha1_of_body": {
            **ct,
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        },
        "non_ascii": {**ct, "X-Hub-Signature-256": "sha256=" + "é" * 64},
        # a valid signature, but of another body
        "signature_of_other_body": sign(secret, altered),
    }


async def test_meta_forged_signatures_rejected_and_replay_processed_once(
    security: SecurityEnv, figures
) -> None:
    env, a, b = security, security.a, security.b
    gateway = env.url("gateway") + "/webhooks/meta"
    wa_id = "2348031" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "123456"))
    async with httpx.AsyncClient(timeout=30) as client:
        await open_windows(client, env.stack, a, [wa_id])
        wamid = f"wamid.SEC{uuid.uuid4().hex}"
        body = inbound_webhook(a, wa_id, "hi", wamid=wamid)
        refused: dict[str, int] = {}
        forgeries = _meta_forgeries(a.app_secret, b.app_secret, body)
        for name, headers in forgeries.items():
            raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
            r = await client.post(gateway, content=body, headers=raw_headers)
            refused[name] = r.status_code
            figures.sent += 1
        # the altered body sent with the original body's signature
        altered = body.replace(b'"body": "hi"', b'"body": "PWNED"')
        r = await client.post(gateway, content=altered, headers=sign(a.app_secret, body))
        refused["body_altered_sent"] = r.status_code
        figures.sent += 1
        # a signature over the body plus trailing bytes
        r = await client.post(gateway, content=body + b" ", headers=sign(a.app_secret, body))
        refused["trailing_byte"] = r.status_code
        figures.sent += 1
        wrong = {k: v for k, v in refused.items() if v != 401}
        assert not wrong, f"forged Meta webhooks not refused with 401: {wrong}"

        # nothing of the forgeries was recorded: the same message id is still new
        r = await client.post(gateway, content=body, headers=sign(a.app_secret, body))
        assert r.status_code == 200, r.text
        assert (r.json()["published"], r.json()["duplicates"]) == (1, 0), r.text
        figures.processed += 1

        # replays: as is, upper-case hex, and the same message id in a re-signed new body
        replays = [
            (body, sign(a.app_secret, body)),
            (
                body,
                {
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(a.app_secret, body)["X-Hub-Signature-256"]
                    .upper()
                    .replace("SHA256=", "sha256="),
                },
            ),
        ]
        doc = json.loads(body)
        doc["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "hi again"
        rebody = json.dumps(doc).encode()
        replays.append((rebody, sign(a.app_secret, rebody)))
        dup_answers = []
        for raw, headers in replays:
            r = await client.post(gateway, content=raw, headers=headers)
            assert r.status_code == 200, r.text
            dup_answers.append(r.json())
            figures.sent += 1
        assert all(d["published"] == 0 and d["duplicates"] == 1 for d in dup_answers), dup_answers

        # a fresh message of the same conversation, handled after any replay would have
        # been: the original was handled once, no replay reached the conversation service
        follow_id = f"wamid.SEC{uuid.uuid4().hex}"
        follow = inbound_webhook(a, wa_id, "menu", wamid=follow_id)
        r = await client.post(gateway, content=follow, headers=sign(a.app_secret, follow))
        assert r.status_code == 200, r.text
        counts = await wait_handled(env, [wamid, follow_id])
        figures.processed += 1
        figures.duplicated = counts[wamid] - 1
        assert counts[wamid] == 1, f"the message was handled {counts[wamid]} times"
    figures.notes = (
        f"meta: forged={len(refused)} refused401={sum(v == 401 for v in refused.values())} "
        f"replays={len(replays)} replays_processed=0"
    )


def _twilio_form(env: SecurityEnv, sid: str, text: str, customer: str) -> dict[str, str]:
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Sec",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": customer.lstrip("+"),
        "SmsStatus": "received",
        "Body": text,
        "To": f"whatsapp:{env.twilio.number}",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": env.twilio.sid,
        "From": f"whatsapp:{customer}",
        "ApiVersion": "2010-04-01",
    }


async def test_twilio_forged_signatures_rejected_and_replay_processed_once(
    security: SecurityEnv, figures
) -> None:
    env = security
    public = env.stack.env["FLOWCHAT_GATEWAY_PUBLIC_URL"].rstrip("/")
    path = f"/webhooks/twilio/{env.twilio.account_id}"
    other_path = f"/webhooks/twilio/{env.b.account_id}"
    sid = "SM" + uuid.uuid4().hex
    customer = "+14155552" + f"{uuid.uuid4().int % 1000:03d}"
    form = _twilio_form(env, sid, "hello", customer)
    good = RequestValidator(env.twilio.token).compute_signature(public + path, form)
    assert good == RequestValidator(env.twilio.token).compute_signature(public + path, form)
    form_ct = {"Content-Type": "application/x-www-form-urlencoded"}
    raw = urlencode(form).encode()

    def signed(sig: str) -> dict[str, str]:
        return {**form_ct, "X-Twilio-Signature": sig}

    mac = hmac.new(env.twilio.token.encode(), (public + path).encode(), hashlib.sha1)
    cases: dict[str, tuple[str, bytes, dict[str, str]]] = {
        "other_token": (
            path,
            raw,
            signed(RequestValidator(env.b.app_secret).compute_signature(public + path, form)),
        ),
        "missing": (path, raw, form_ct),
        "empty": (path, raw, signed("")),
        "not_base64": (path, raw, signed("!!not-base64!!")),
        "truncated": (path, raw, signed(good[:-4])),
        "url_only": (path, raw, signed(base64.b64encode(mac.digest()).decode())),
        "body_altered": (path, urlencode({**form, "Body": "PWNED"}).encode(), signed(good)),
        "param_added": (path, urlencode({**form, "Extra": "1"}).encode(), signed(good)),
        "query_added": (path + "?x=1", raw, signed(good)),
        "other_account_path": (other_path, raw, signed(good)),
    }
    async with httpx.AsyncClient(timeout=30) as client:
        gw = env.url("gateway")
        before_gw = await metrics_of(client, env, "gateway")
        refused: dict[str, int] = {}
        for name, (p, content, headers) in cases.items():
            r = await client.post(gw + p, content=content, headers=headers)
            refused[name] = r.status_code
            figures.sent += 1
        # another tenant's account path may be a Meta number: 401 or 404, never 200
        wrong = {
            k: v
            for k, v in refused.items()
            if not (v == 401 or (k == "other_account_path" and v in (401, 404)))
        }
        assert not wrong, f"forged Twilio webhooks not refused: {wrong}"

        r = await client.post(gw + path, content=raw, headers=signed(good))
        assert r.status_code == 200, r.text
        figures.processed += 1
        for _ in range(3):
            r = await client.post(gw + path, content=raw, headers=signed(good))
            assert r.status_code == 200, r.text
            figures.sent += 1
        after_gw = await metrics_of(client, env, "gateway")
        follow_sid = "SM" + uuid.uuid4().hex
        follow = _twilio_form(env, follow_sid, "menu", customer)
        signature = RequestValidator(env.twilio.token).compute_signature(public + path, follow)
        r = await client.post(
            gw + path, content=urlencode(follow).encode(), headers=signed(signature)
        )
        assert r.status_code == 200, r.text
        counts = await wait_handled(env, [sid, follow_sid])

    def count(text: str, outcome: str) -> float:
        return metric(text, "flowchat_gateway_events_total", provider="twilio", outcome=outcome)

    published = count(after_gw, "published") - count(before_gw, "published")
    duplicates = count(after_gw, "duplicate") - count(before_gw, "duplicate")
    figures.duplicated = int(published - 1) + counts[sid] - 1
    assert published == 1, f"the Twilio message was published {published} times"
    assert counts[sid] == 1, f"the Twilio message was handled {counts[sid]} times"
    assert duplicates == 3, f"{duplicates} replays counted as duplicates (3 sent)"
    figures.notes = f"twilio: forged={len(cases)} refused={len(refused)} replays=3 published=1"
