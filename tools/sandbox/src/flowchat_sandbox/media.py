"""Media as the Cloud API keeps it: uploads, ids that expire, short-lived download URLs.

- ``POST /{phone_number_id}/media`` (multipart ``file``, ``type``,
  ``messaging_product=whatsapp``) stores the bytes under a numeric id that lives
  30 days; media a customer sends (an inbound image) gets an id that lives 7 days.
- ``GET /{media_id}`` answers ``{messaging_product, url, mime_type, sha256,
  file_size, id}``; the URL is valid for 5 minutes and needs the bearer token too.
- MIME types and size limits per kind are Meta's (…/business-phone-numbers/media),
  kept once in :mod:`flowchat_contracts.whatsapp`.

The URL carries an HMAC of the media id and its expiry under a per-process key, so
a URL cannot be forged or extended.

Twilio (twilio.com/docs/usage/api/media, "HTTP Basic Auth for media access"): what a
customer sends is a Media resource of the message, ``MediaUrl0`` =
``{base}/2010-04-01/Accounts/{AC…}/Messages/{MM…}/Media/{ME…}``; a GET with the
account's basic auth answers 307 to a short-lived CDN URL (no credentials there);
without them, 401 (20003). :class:`TwilioMedia` keeps it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from flowchat_contracts.whatsapp import MAX_MEDIA_BYTES, MEDIA_TYPES
from flowchat_contracts.whatsapp import normalize_mime as mime_essence
from flowchat_sandbox.errors import ControlError

API_MEDIA_TTL_S = 30 * 24 * 3600
INBOUND_MEDIA_TTL_S = 7 * 24 * 3600
URL_TTL_S = 5 * 60
DOWNLOAD_PATH = "/whatsapp_business/attachments/"
#: Where Twilio's media redirect points (its CDN's presigned URLs, here signed alike).
TWILIO_CDN_PATH = "/sandbox/twilio-cdn/"

#: The largest upload of any kind (the route refuses bigger bodies before parsing).
MAX_UPLOAD_BYTES = MAX_MEDIA_BYTES

#: What a customer's phone "sends" when a test gives no bytes: a 1x1 JPEG.
PLACEHOLDER_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c14"
    "0d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d"
    "38323c2e333432ffc0000b080001000101011100ffc4001f00000105010101010101000000000000"
    "00000102030405060708090a0bffc400b5100002010303020403050504040000017d010203000411"
    "05122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a2526"
    "2728292a3435363738393a434445464748494a535455565758595a636465666768696a7374757677"
    "78797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
    "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008"
    "010100003f00fbd0ffd9"
)


def decode_base64(data_base64: str) -> bytes:
    """The bytes of a customer's ``data_base64`` (ControlError 422 when not base64)."""
    try:
        return base64.b64decode(data_base64, validate=True)
    except (ValueError, binascii.Error):
        raise ControlError(422, "invalid_request", "image.data_base64 is not base64") from None


class MediaRefused(ValueError):
    """An upload Meta would refuse: ``reason`` is ``type`` or ``size``."""

    def __init__(self, message: str, *, reason: Literal["type", "size"]) -> None:
        super().__init__(message)
        self.reason = reason


def normalize_mime(value: str) -> str:
    """``image/jpeg; charset=x`` → ``image/jpeg``; ``ogg`` → ``audio/ogg`` (as curl sends)."""
    mime = mime_essence(value)
    short = {"ogg": "audio/ogg", "jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png"}
    return short.get(mime, mime)


def check_upload(mime_type: str, size: int) -> str:
    """The kind of an acceptable upload, else :class:`MediaRefused`."""
    known = MEDIA_TYPES.get(mime_type)
    if known is None:
        raise MediaRefused(
            f"Param file must be a file with one of the following types: "
            f"{', '.join(sorted(MEDIA_TYPES))}. Received file of type '{mime_type}'.",
            reason="type",
        )
    kind, limit = known
    if size == 0:
        raise MediaRefused("Param file must not be empty.", reason="size")
    if size > limit:
        raise MediaRefused(
            f"The {kind} file is {size} bytes; {mime_type} files may be at most {limit} bytes.",
            reason="size",
        )
    return kind


@dataclass
class Media:
    id: str
    #: The phone number id it was uploaded to (or received on).
    phone_number_id: str
    waba_id: str
    mime_type: str
    data: bytes
    created_at: float
    expires_at: float
    source: Literal["api", "inbound"] = "api"
    filename: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sha256_base64(self) -> str:
        """The SHA-256 as Meta's webhooks write it (base64; ``GET /{id}`` answers hex)."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()

    @property
    def file_size(self) -> int:
        return len(self.data)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def public(self) -> dict[str, object]:
        """What the control API shows (no bytes)."""
        return {
            "id": self.id,
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "mime_type": self.mime_type,
            "sha256": self.sha256,
            "file_size": self.file_size,
            "source": self.source,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


class UrlSigner:
    """Short-lived download URLs: ``?mid=<id>&ext=<expiry>&hash=<hmac>``."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _mac(self, media_id: str, expires: int) -> str:
        message = f"{media_id}|{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:40]

    def query(self, media_id: str, now: float) -> str:
        expires = int(now + URL_TTL_S)
        return f"mid={media_id}&ext={expires}&hash={self._mac(media_id, expires)}"

    def valid(self, media_id: str, expires: str, mac: str, now: float) -> bool:
        if not expires.isdigit() or int(expires) <= now:
            return False
        return hmac.compare_digest(self._mac(media_id, int(expires)), mac)


@dataclass
class TwilioMedia:
    """A file a customer sent to a Twilio number (the message's Media resource)."""

    sid: str
    account_sid: str
    message_sid: str
    mime_type: str
    data: bytes
    created_at: float
