"""Media a customer sent, as bytes: the provider's media id (or Twilio's MediaUrl) resolved
with the tenant's own credentials (pure: the HTTP calls are :class:`MediaSource`'s).

::

    MediaResolver.resolve(tenant, account, media_id=… | url=…)
      ├── the account: the tenant's own, active (else MediaRefused "account": 404)
      ├── Meta:   GET /{media-id}?phone_number_id=  → url, mime_type, sha256, file_size
      │           (unknown or expired id: MediaNotFound, 404); file_size over the cap:
      │           MediaRefused "size" (413) before any download; GET url (bearer token)
      ├── Twilio: the MediaUrl must be the account's own (``{twilio}/2010-04-01/Accounts/
      │           {its sid}/…``: the auth token goes nowhere else), GET with basic auth
      └── checks: at most ``max_bytes`` read; the SHA-256 when the provider gave one
                  (hex or base64, as Meta writes it in answers and webhooks): a
                  mismatch is MediaDownloadFailed "corrupt" (502); the type is the
                  provider's, reduced to a plain ``type/subtype`` (else
                  ``application/octet-stream``)

The caller (the console) decides how a type is shown; the sender only says what it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from flowchat_contracts.whatsapp import normalize_mime
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import UpstreamError
from flowchat_sender.errors import MediaDownloadFailed, MediaNotFound, MediaRefused
from flowchat_sender.ports import AccountSource, MediaSource

__all__ = ["MediaFile", "MediaResolver", "content_type", "sha256_matches"]

#: ``type/subtype`` with no parameters, no spaces, nothing a header could be split on.
_PLAIN_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
OCTET_STREAM = "application/octet-stream"


def content_type(declared: str | None) -> str:
    """The provider's MIME type as a safe ``Content-Type`` (``application/octet-stream``
    when missing or odd)."""
    mime = normalize_mime(declared)
    return mime if _PLAIN_MIME.match(mime) else OCTET_STREAM


def sha256_matches(expected: str, data: bytes) -> bool:
    """Whether ``data`` has the SHA-256 ``expected``: hex (Meta's ``GET /{media-id}``) or
    base64 (Meta's webhooks write it so)."""
    digest = hashlib.sha256(data).digest()
    given = expected.strip()
    if len(given) == 64:
        try:
            return bytes.fromhex(given) == digest
        except ValueError:
            pass
    try:
        return base64.b64decode(given, validate=True) == digest
    except (binascii.Error, ValueError):
        return False


async def active_account(
    accounts: AccountSource, tenant_id: str, account_id: str
) -> AccountCredentials:
    """The tenant's own active account, else :class:`MediaRefused` (an
    :class:`UpstreamError` when the credentials cannot be read now)."""
    account = await accounts.account(account_id)
    if account is None or account.tenant_id != tenant_id:
        raise MediaRefused(f"no account {account_id} for this tenant", reason="account")
    if account.tenant_status != "active" or account.status != "active":
        raise MediaRefused("the tenant or the account is not active", reason="account")
    return account


@dataclass(frozen=True)
class MediaFile:
    """A media file's bytes and what the provider said about it."""

    data: bytes
    content_type: str
    sha256: str
    #: Whether the provider gave a SHA-256 that was checked (Meta: always; Twilio: never).
    verified: bool


@dataclass
class MediaResolver:
    """Resolve a message's media to bytes through its account's provider."""

    accounts: AccountSource
    source: MediaSource
    #: The largest file served (bigger ones: 413 before or while downloading).
    max_bytes: int
    #: Twilio's API base (``https://api.twilio.com``): MediaUrls must start with it.
    twilio_url: str

    async def account(self, tenant_id: str, account_id: str) -> AccountCredentials:
        try:
            return await active_account(self.accounts, tenant_id, account_id)
        except UpstreamError as exc:
            raise MediaDownloadFailed(
                f"credentials unavailable: {exc}", reason="unavailable"
            ) from exc

    async def resolve(
        self,
        tenant_id: str,
        account_id: str,
        *,
        media_id: str | None = None,
        url: str | None = None,
    ) -> MediaFile:
        """The bytes of ``media_id`` (Meta) or ``url`` (Twilio's MediaUrl)."""
        account = await self.account(tenant_id, account_id)
        if account.provider == "meta":
            if not media_id or not (account.access_token and account.phone_number_id):
                raise MediaRefused(
                    "a Cloud API account's media is named by its media id", reason="provider"
                )
            return await self._meta(account, media_id)
        if not url:
            raise MediaRefused(
                "a Twilio account's media is named by its MediaUrl", reason="provider"
            )
        return await self._twilio(account, url)

    async def _meta(self, account: AccountCredentials, media_id: str) -> MediaFile:
        info = await self.source.meta_info(account, media_id)
        self._fits(info.file_size)
        data = await self.source.meta_download(account, info.url, limit=self.max_bytes)
        if info.file_size is not None and len(data) != info.file_size:
            raise MediaDownloadFailed(
                f"the provider announced {info.file_size} bytes and sent {len(data)}",
                reason="corrupt",
            )
        verified = bool(info.sha256)
        if info.sha256 and not sha256_matches(info.sha256, data):
            raise MediaDownloadFailed(
                "the file's SHA-256 is not the one the provider announced", reason="corrupt"
            )
        return MediaFile(data, content_type(info.mime_type), _hex(data), verified)

    async def _twilio(self, account: AccountCredentials, url: str) -> MediaFile:
        sid = account.twilio_account_sid
        prefix = f"{self.twilio_url.rstrip('/')}/2010-04-01/Accounts/{sid}/"
        if not (sid and account.twilio_auth_token) or not url.startswith(prefix) or ".." in url:
            # never send the account's auth token to any other address
            raise MediaNotFound("this MediaUrl is not one of the account's media")
        data, mime = await self.source.twilio_download(account, url, limit=self.max_bytes)
        return MediaFile(data, content_type(mime), _hex(data), False)

    def _fits(self, size: int | None) -> None:
        if size is not None and size > self.max_bytes:
            raise MediaRefused(
                f"the file is {size} bytes; at most {self.max_bytes} are served", reason="size"
            )


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
