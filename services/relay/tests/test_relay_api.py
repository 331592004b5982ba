"""The endpoints API: who may call it, what it refuses (422 naming the field), and
SSRF safety at registration and again at delivery (DNS rebinding)."""

from __future__ import annotations

from typing import Any

import pytest
from relay_testkit import ADMIN_B, READ_A, Harness, Receiver, StartRelay, wait_for

PUBLIC = "93.184.215.14"


def fake_dns(table: dict[str, list[list[str]]]) -> Any:
    """host → the answers it gives, one per lookup (the last one repeats)."""
    calls: dict[str, int] = {}

    async def resolve(host: str, port: int) -> list[str]:
        answers = table.get(host)
        if answers is None:
            raise OSError("unknown host")
        n = calls.get(host, 0)
        calls[host] = n + 1
        return answers[min(n, len(answers) - 1)]

    return resolve


async def test_crud_and_pagination(harness: Harness):
    created = [
        await harness.create_endpoint(f"https://hooks.example.com/{i}", ["message.status"])
        for i in range(3)
    ]
    assert all(c["secret"].startswith("whsec_") for c in created)
    r = await harness.http.get("/v1/endpoints", params={"limit": 2}, headers=harness.auth())
    page = r.json()
    assert len(page["items"]) == 2
    assert all("secret" not in item for item in page["items"])
    r = await harness.http.get(
        "/v1/endpoints",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=harness.auth(),
    )
    rest = r.json()
    assert rest["next_cursor"] is None
    ids = {i["id"] for i in page["items"] + rest["items"]}
    assert ids == {c["id"] for c in created}

    first = created[0]["id"]
    r = await harness.http.patch(
        f"/v1/endpoints/{first}",
        json={"enabled": False, "description": "paused", "event_types": ["message.received"]},
        headers=harness.auth(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False
    assert r.json()["event_types"] == ["message.received"]
    assert r.json()["description"] == "paused"

    r = await harness.http.delete(f"/v1/endpoints/{first}", headers=harness.auth())
    assert r.status_code == 204
    r = await harness.http.get(f"/v1/endpoints/{first}", headers=harness.auth())
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_tenants_and_scopes(harness: Harness):
    mine = await harness.create_endpoint("https://hooks.example.com/a", ["message.status"])
    r = await harness.http.get(f"/v1/endpoints/{mine['id']}", headers=harness.auth(ADMIN_B))
    assert r.status_code == 404  # another tenant's endpoint: as if absent
    r = await harness.http.delete(f"/v1/endpoints/{mine['id']}", headers=harness.auth(ADMIN_B))
    assert r.status_code == 404
    r = await harness.http.get("/v1/endpoints", headers=harness.auth(ADMIN_B))
    assert r.json()["items"] == []
    r = await harness.http.get("/v1/endpoints", headers=harness.auth(READ_A))
    assert r.status_code == 403
    r = await harness.http.get("/v1/endpoints", headers=harness.auth("fc_unknown"))
    assert r.status_code == 401
    r = await harness.http.get("/v1/endpoints")
    assert r.status_code == 401
    # FlowChat's own services: the service token and the tenant named
    svc = {"Authorization": "Bearer svc-token-0123456789abcdef", "X-Tenant-ID": "tnt_a"}
    r = await harness.http.get(f"/v1/endpoints/{mine['id']}", headers=svc)
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"url": "https://hooks.example.com/x", "event_types": ["order.teleported"]},
            "event_types",
        ),
        ({"url": "https://hooks.example.com/x", "event_types": []}, "event_types"),
        ({"url": "https://user:pw@hooks.example.com/x", "event_types": ["message.status"]}, "url"),
        ({"url": "https://token@hooks.example.com/x", "event_types": ["message.status"]}, "url"),
        ({"url": "ftp://hooks.example.com/x", "event_types": ["message.status"]}, "url"),
        ({"url": "not a url", "event_types": ["message.status"]}, "url"),
        ({"url": "https:///nohost", "event_types": ["message.status"]}, "url"),
        ({"url": "https://hooks.example.com:99999/x", "event_types": ["message.status"]}, "url"),
        (
            {
                "url": "https://hooks.example.com/x",
                "event_types": ["message.status"],
                "format": "x",
            },
            "format",
        ),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    harness: Harness, body: dict[str, Any], field: str
):
    r = await harness.http.post("/v1/endpoints", json=body, headers=harness.auth())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert any(d["loc"][-1] == field for d in error["details"]), error
    assert await harness.count("SELECT count(*) FROM endpoints") == 0


async def test_bad_patch_is_422(harness: Harness):
    mine = await harness.create_endpoint("https://hooks.example.com/a", ["message.status"])
    r = await harness.http.patch(
        f"/v1/endpoints/{mine['id']}",
        json={"event_types": ["message.status", "nope"]},
        headers=harness.auth(),
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["body", "event_types"]
    r = await harness.http.patch(
        f"/v1/endpoints/{mine['id']}", json={"url": "https://a:b@x.example"}, headers=harness.auth()
    )
    assert r.status_code == 422


UNSAFE_URLS = [
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://10.1.2.3/hook",
    "https://192.168.0.10/hook",
    "https://172.16.5.4/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/hook",
    "https://224.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://100.64.0.1/hook",
    "https://240.0.0.1/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[64:ff9b::a9fe:a9fe]/hook",
    "https://localhost/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://private.example/hook",
    "https://metadata.example/hook",
    "https://mixed.example/hook",
    "https://nowhere.example/hook",
    "http://public.example/hook",
]
DNS = {
    "public.example": [[PUBLIC]],
    "private.example": [["10.0.0.5"]],
    "metadata.example": [["169.254.169.254"]],
    "mixed.example": [[PUBLIC, "127.0.0.1"]],
}


async def test_ssrf_refused_at_registration(start_relay: StartRelay):
    async with start_relay(
        allow_private_targets=False, FLOWCHAT_ENV="test", resolve=fake_dns(DNS)
    ) as h:
        for url in UNSAFE_URLS:
            r = await h.http.post(
                "/v1/endpoints",
                json={"url": url, "event_types": ["message.status"]},
                headers=h.auth(),
            )
            assert r.status_code == 422, (url, r.text)
            assert r.json()["error"]["details"][0]["loc"] == ["body", "url"], url
        ok = await h.create_endpoint("https://public.example/hook", ["message.status"])
        assert ok["url"] == "https://public.example/hook"
        r = await h.http.patch(
            f"/v1/endpoints/{ok['id']}",
            json={"url": "https://private.example/x"},
            headers=h.auth(),
        )
        assert r.status_code == 422
        assert await h.count("SELECT count(*) FROM endpoints") == 1


async def test_plain_http_in_development_still_refuses_private_targets(start_relay: StartRelay):
    async with start_relay(
        allow_private_targets=False, FLOWCHAT_ENV="development", resolve=fake_dns(DNS)
    ) as h:
        await h.create_endpoint("http://public.example/hook", ["message.status"])
        for url in ("http://127.0.0.1:8080/hook", "http://private.example/hook"):
            r = await h.http.post(
                "/v1/endpoints",
                json={"url": url, "event_types": ["message.status"]},
                headers=h.auth(),
            )
            assert r.status_code == 422, url


async def test_dns_rebinding_refused_at_delivery(start_relay: StartRelay):
    """Public at registration, loopback at delivery: the relay never connects (the
    receiver, listening on that loopback port, gets nothing) and logs the attempt."""
    receiver = Receiver()
    dns = fake_dns({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    async with (
        receiver.running(),
        start_relay(allow_private_targets=False, FLOWCHAT_ENV="test", resolve=dns) as h,
    ):
        endpoint = await h.create_endpoint(
            f"https://rebind.example:{receiver.port}/hook", ["message.status"]
        )
        await h.publish_status()
        log = await wait_for(lambda: h.attempts(endpoint["id"]))
    assert log[0]["error"] == "unsafe target"
    assert log[0]["outcome"] == "unsafe"
    assert log[0]["status_code"] is None
    assert receiver.got == []


async def test_private_targets_allowed_when_the_operator_says(start_relay: StartRelay):
    """The same loopback receiver, with private targets allowed (development): delivered."""
    receiver = Receiver()
    async with receiver.running(), start_relay(allow_private_targets=True) as h:
        await h.create_endpoint(receiver.url, ["message.status"])
        await h.publish_status()
        await wait_for(lambda: receiver.accepted)
