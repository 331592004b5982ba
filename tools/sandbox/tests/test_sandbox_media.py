"""Media over HTTP as Meta serves it: upload (multipart), retrieve URL, download with the
bearer token, delete, expiring ids (30 days API, 7 days inbound), ids checked in sends."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

WA = "2348010000077"
JPEG = b"\xff\xd8\xff\xe0" + b"sandbox-test-image" * 50 + b"\xff\xd9"


async def upload(client, number, data=JPEG, mime="image/jpeg", **fields):
    form = {"messaging_product": "whatsapp", "type": mime, **fields}
    return await client.post(
        f"/v23.0/{number.phone_number_id}/media",
        headers=number.auth,
        data={k: v for k, v in form.items() if v is not None},
        files={"file": ("photo.jpg", data, mime)},
    )


def assert_error(r, status, code):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert error["fbtrace_id"]
    return error


async def test_upload_retrieve_download_delete(client, number):
    r = await upload(client, number)
    assert r.status_code == 200, r.text
    media_id = r.json()["id"]
    assert set(r.json()) == {"id"}
    assert media_id.isdigit()

    r = await client.get(f"/v23.0/{media_id}", headers=number.auth)
    assert r.status_code == 200, r.text
    info = r.json()
    assert info == {
        "messaging_product": "whatsapp",
        "url": info["url"],
        "mime_type": "image/jpeg",
        "sha256": hashlib.sha256(JPEG).hexdigest(),
        "file_size": str(len(JPEG)),
        "id": media_id,
    }
    url = info["url"]
    assert url.startswith(str(client.base_url))

    got = await client.get(url, headers=number.auth)
    assert got.status_code == 200
    assert got.content == JPEG
    assert got.headers["content-type"] == "image/jpeg"
    # the URL alone is not enough: the bearer token is needed too
    assert (await client.get(url)).status_code == 401
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert (await client.get(forged, headers=number.auth)).status_code == 404

    # the phone_number_id guard
    r = await client.get(f"/v23.0/{media_id}?phone_number_id=999", headers=number.auth)
    assert_error(r, 400, 100)

    r = await client.delete(f"/v23.0/{media_id}", headers=number.auth)
    assert r.status_code == 200
    assert r.json() == {"success": True}
    assert_error(await client.get(f"/v23.0/{media_id}", headers=number.auth), 400, 100)
    assert (await client.get(url, headers=number.auth)).status_code == 404
    assert_error(await client.delete(f"/v23.0/{media_id}", headers=number.auth), 400, 100)


async def test_urls_live_5_minutes_ids_30_days(client, number):
    media_id = (await upload(client, number)).json()["id"]
    url = (await client.get(f"/v23.0/{media_id}", headers=number.auth)).json()["url"]
    await client.post("/sandbox/clock", json={"advance_s": 301})
    assert (await client.get(url, headers=number.auth)).status_code == 404
    fresh = (await client.get(f"/v23.0/{media_id}", headers=number.auth)).json()["url"]
    assert (await client.get(fresh, headers=number.auth)).status_code == 200

    await client.post("/sandbox/clock", json={"advance_s": 30 * 24 * 3600})
    assert_error(await client.get(f"/v23.0/{media_id}", headers=number.auth), 400, 100)


async def test_uploads_meta_refuses(client, number, receiver, h):
    assert_error(await upload(client, number, mime="image/gif"), 400, 100)
    big = b"\xff\xd8" + b"0" * (5 * 1024 * 1024)
    error = assert_error(await upload(client, number, data=big), 400, 131053)
    assert "5242880" in error["error_data"]["details"]
    sticker = b"RIFF" + b"0" * (500 * 1024)
    assert_error(await upload(client, number, data=sticker, mime="image/webp"), 400, 131053)
    assert (await upload(client, number, data=b"RIFFwebp", mime="image/webp")).status_code == 200
    r = await client.post(
        f"/v23.0/{number.phone_number_id}/media",
        headers=number.auth,
        data={"type": "image/jpeg"},
        files={"file": ("a.jpg", JPEG, "image/jpeg")},
    )
    assert_error(r, 400, 131008)
    r = await client.post(
        f"/v23.0/{number.phone_number_id}/media",
        headers=number.auth,
        data={"messaging_product": "whatsapp", "type": "image/jpeg"},
    )
    assert_error(r, 400, 131008)
    bad_token = await client.post(
        f"/v23.0/{number.phone_number_id}/media",
        headers={"Authorization": "Bearer nope"},
        files={"file": ("a.jpg", JPEG, "image/jpeg")},
    )
    assert_error(bad_token, 401, 190)
    # a document: the type comes from the file part when no 'type' field is given
    r = await client.post(
        f"/v23.0/{number.phone_number_id}/media",
        headers=number.auth,
        data={"messaging_product": "whatsapp"},
        files={"file": ("invoice.pdf", b"%PDF-1.4 sandbox", "application/pdf")},
    )
    assert r.status_code == 200, r.text
    # another WABA's token cannot see this number's media
    other = await h.register(client, receiver)
    media_id = (await upload(client, number)).json()["id"]
    assert_error(await client.get(f"/v23.0/{media_id}", headers=other.auth), 400, 100)


async def test_sends_need_live_media_ids(client, number, receiver, h):
    await h.open_window(client, number, WA)
    media_id = (await upload(client, number)).json()["id"]

    def image(ref: str) -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "to": WA,
            "type": "image",
            "image": {"id": ref, "caption": "look"},
        }

    r = await client.post(number.messages_path, headers=number.auth, json=image(media_id))
    assert r.status_code == 200, r.text
    error = assert_error(
        await client.post(number.messages_path, headers=number.auth, json=image("1234567")),
        400,
        100,
    )
    assert "image['id']" in error["error_data"]["details"]
    header: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "to": WA,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "image", "image": {"id": "7654321"}},
            "body": {"text": "Pick"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]},
        },
    }
    assert_error(
        await client.post(number.messages_path, headers=number.auth, json=header), 400, 100
    )
    header["interactive"]["header"]["image"]["id"] = media_id
    r = await client.post(number.messages_path, headers=number.auth, json=header)
    assert r.status_code == 200, r.text
    # a link needs no upload
    by_link = {**image("x"), "image": {"link": "https://example.com/a.jpg"}}
    assert (
        await client.post(number.messages_path, headers=number.auth, json=by_link)
    ).status_code == 200

    # deleted, or uploaded under another WABA: refused
    other = await h.register(client, receiver)
    foreign = (await upload(client, other)).json()["id"]
    r = await client.post(number.messages_path, headers=number.auth, json=image(foreign))
    assert_error(r, 400, 100)
    await client.delete(f"/v23.0/{media_id}", headers=number.auth)
    r = await client.post(number.messages_path, headers=number.auth, json=image(media_id))
    assert_error(r, 400, 100)


async def test_customer_image_is_media_the_business_can_fetch_for_7_days(client, number, receiver):
    picture = b"\x89PNG\r\n\x1a\n" + b"customer-photo" * 20
    r = await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={
            "phone_number_id": number.phone_number_id,
            "image": {
                "mime_type": "image/png",
                "caption": "this one?",
                "data_base64": base64.b64encode(picture).decode(),
            },
        },
    )
    assert r.status_code == 200, r.text
    (message,) = receiver.messages()
    image = message["image"]
    assert set(image) == {"mime_type", "sha256", "id", "caption"}
    assert image["mime_type"] == "image/png"
    # webhooks write the SHA-256 in base64 (the spec's MediaMessageProperties example),
    # GET /{media-id} in hex
    assert image["sha256"] == base64.b64encode(hashlib.sha256(picture).digest()).decode()
    info = (await client.get(f"/v23.0/{image['id']}", headers=number.auth)).json()
    assert info["sha256"] == hashlib.sha256(picture).hexdigest()
    assert info["file_size"] == str(len(picture))
    # the URL needs the bearer token, and only the number's own
    assert (await client.get(info["url"])).status_code == 401
    assert (
        await client.get(info["url"], headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    assert (await client.get(info["url"], headers=number.auth)).content == picture

    uploaded = (await upload(client, number)).json()["id"]
    await client.post("/sandbox/clock", json={"advance_s": 7 * 24 * 3600 + 1})
    assert_error(await client.get(f"/v23.0/{image['id']}", headers=number.auth), 400, 100)
    assert (await client.get(f"/v23.0/{uploaded}", headers=number.auth)).status_code == 200

    # without bytes the customer sends a small JPEG; it is listed with the uploads
    r = await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "image": {}},
    )
    assert r.status_code == 200
    listed = {m["id"]: m for m in (await client.get("/sandbox/media")).json()}
    newest = receiver.messages()[-1]["image"]["id"]
    assert listed[newest]["source"] == "inbound"
    assert listed[newest]["mime_type"] == "image/jpeg"
    assert listed[uploaded]["source"] == "api"
    bad = await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "image": {"data_base64": "%%%"}},
    )
    assert bad.status_code == 422
