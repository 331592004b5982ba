"""Graph reads over HTTP: the phone number, its business profile, templates with paging."""

from __future__ import annotations

from flowchat_platform.testing import eventually


async def test_get_phone_number_with_fields(client, receiver, h):
    number = await h.register(client, receiver, verified_name="Acme Hardware", throughput_mps=1000)
    r = await client.get(
        f"/v23.0/{number.phone_number_id}",
        headers=number.auth,
        params={
            "fields": "display_phone_number,verified_name,quality_rating,throughput,"
            "messaging_limit_tier"
        },
    )
    assert r.status_code == 200
    assert r.json() == {
        "display_phone_number": number.display_phone_number,
        "verified_name": "Acme Hardware",
        "quality_rating": "GREEN",
        "throughput": {"level": "HIGH"},
        "messaging_limit_tier": "TIER_1K",
        "id": number.phone_number_id,
    }
    full = (await client.get(f"/v23.0/{number.phone_number_id}", headers=number.auth)).json()
    assert full["throughput"] == {"level": "HIGH"}
    assert full["id"] == number.phone_number_id


async def test_get_phone_number_auth_and_errors(client, number):
    r = await client.get(f"/v23.0/{number.phone_number_id}")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == 190
    r = await client.get(
        f"/v23.0/{number.phone_number_id}", params={"access_token": number.access_token}
    )
    assert r.status_code == 200
    r = await client.get(
        f"/v23.0/{number.phone_number_id}", headers=number.auth, params={"fields": "bogus"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 100
    r = await client.get(f"/latest/{number.phone_number_id}", headers=number.auth)
    assert r.status_code == 400


async def test_business_profile_read_and_update(client, number):
    path = f"/v23.0/{number.phone_number_id}/whatsapp_business_profile"
    update = {
        "messaging_product": "whatsapp",
        "about": "Tools for everyone",
        "email": "hi@acme.test",
        "websites": ["https://acme.test"],
    }
    r = await client.post(path, headers=number.auth, json=update)
    assert r.status_code == 200
    assert r.json() == {"success": True}
    r = await client.get(path, headers=number.auth, params={"fields": "about,email,websites"})
    assert r.json() == {
        "data": [
            {
                "about": "Tools for everyone",
                "email": "hi@acme.test",
                "websites": ["https://acme.test"],
                "messaging_product": "whatsapp",
            }
        ]
    }
    for bad in (
        {"messaging_product": "whatsapp", "about": "a" * 140},
        {"messaging_product": "whatsapp", "websites": ["a", "b", "c"]},
        {"messaging_product": "whatsapp", "colour": "red"},
        {"about": "no product"},
    ):
        r = await client.post(path, headers=number.auth, json=bad)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == 100


async def test_templates_listed_with_cursor_paging(client, number):
    for i in range(5):
        r = await client.post(
            "/sandbox/templates",
            json={
                "waba_id": number.waba_id,
                "name": f"t{i}",
                "language": "en_US",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Hi {{1}}"}],
            },
        )
        assert r.status_code == 201, r.text
    path = f"/v23.0/{number.waba_id}/message_templates"
    first = (await client.get(path, headers=number.auth, params={"limit": 2})).json()
    assert [t["name"] for t in first["data"]] == ["t0", "t1"]
    assert first["data"][0]["status"] == "APPROVED"
    assert first["data"][0]["components"] == [{"type": "BODY", "text": "Hi {{1}}"}]
    assert "next" in first["paging"]
    after = first["paging"]["cursors"]["after"]
    second = (
        await client.get(path, headers=number.auth, params={"limit": 2, "after": after})
    ).json()
    assert [t["name"] for t in second["data"]] == ["t2", "t3"]
    last = (
        await client.get(
            path,
            headers=number.auth,
            params={"limit": 2, "after": second["paging"]["cursors"]["after"]},
        )
    ).json()
    assert [t["name"] for t in last["data"]] == ["t4"]
    assert "next" not in last["paging"]
    named = (await client.get(path, headers=number.auth, params={"name": "t3"})).json()
    assert [t["name"] for t in named["data"]] == ["t3"]
    r = await client.get(path, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_template_created_through_graph_is_approved_with_a_webhook(client, number, receiver):
    path = f"/v23.0/{number.waba_id}/message_templates"
    r = await client.post(
        path,
        headers=number.auth,
        json={
            "name": "welcome",
            "language": "en_US",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Welcome!"}],
        },
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "PENDING"

    def approved_event():
        for received in receiver.requests:
            change = received.json()["entry"][0]["changes"][0]
            if change["field"] == "message_template_status_update":
                return change["value"]
        return None

    event = await eventually(approved_event, timeout_s=5)
    assert event["event"] == "APPROVED"
    assert event["message_template_name"] == "welcome"
    one = (await client.get(f"/v23.0/{created['id']}", headers=number.auth)).json()
    assert one["status"] == "APPROVED"
    r = await client.post(path, headers=number.auth, json={"name": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 131008


async def test_control_template_status_change(client, number, h):
    r = await client.post(
        "/sandbox/templates",
        json={"waba_id": number.waba_id, "name": "promo", "language": "en_US"},
    )
    template_id = r.json()["id"]
    r = await client.patch(f"/sandbox/templates/{template_id}", json={"status": "DISABLED"})
    assert r.json()["status"] == "DISABLED"
    send = {
        "messaging_product": "whatsapp",
        "to": "2348010000004",
        "type": "template",
        "template": {"name": "promo", "language": {"code": "en_US"}},
    }
    r = await client.post(number.messages_path, headers=number.auth, json=send)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 132016
    r = await client.patch("/sandbox/templates/unknown", json={"status": "APPROVED"})
    assert r.status_code == 404


async def test_every_graph_route_refuses_an_unknown_version(client, number):
    pnid, waba = number.phone_number_id, number.waba_id
    calls = [
        ("GET", f"/latest/{pnid}"),
        ("DELETE", f"/latest/{pnid}"),
        ("GET", f"/latest/{pnid}/whatsapp_business_profile"),
        ("POST", f"/latest/{pnid}/whatsapp_business_profile"),
        ("GET", f"/latest/{waba}/message_templates"),
        ("POST", f"/latest/{waba}/message_templates"),
        ("POST", f"/latest/{pnid}/media"),
        ("POST", f"/latest/{pnid}/messages"),
    ]
    for method, path in calls:
        r = await client.request(method, path, headers=number.auth, json={})
        assert r.status_code == 400, (method, path)
        assert r.json()["error"]["code"] == 100, (method, path)
        assert r.json()["error"]["error_subcode"] == 2500, (method, path)
