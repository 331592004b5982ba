"""Media uploads to the Cloud API, with WhatsApp's limits and a cache of media ids.

A command sends media by ``media_id`` or by ``link`` (``MediaContent``; Meta fetches
a link itself on every send). To send by id, upload first through the sender's
internal API (``POST /internal/v1/media``, raw bytes, or ``/internal/v1/media/link``,
which downloads a link once), then put the returned ``media_id`` in the command.

- Limits per kind (reference §5): the MIME type decides the kind; the size must fit it
  (image 5 MB, audio and video 16 MB, document 100 MB, sticker ``image/webp`` 100 KB
  static or 500 KB animated). Anything else is refused before any provider call.
- Ids live 30 days at Meta; the cache keeps them 29 days, keyed by the account and
  the content's SHA-256 and MIME type: the same bytes uploaded again (by any replica)
  reuse the id without a Graph call. Concurrent uploads of the same bytes in one
  process share one call.
- Only Cloud API accounts upload: Twilio sends media by URL (``MediaUrl``).

Downloads of what customers sent (``GET /internal/v1/media/content``) are decided in
:mod:`flowchat_sender.media_service`; :class:`GraphMedia` is its HTTP side: Meta's
``GET /{media-id}`` and the file behind its URL (bearer token), Twilio's MediaUrl
(basic auth on the first request only: Twilio answers with a redirect to its CDN, and
the credentials must not follow it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_contracts.whatsapp import (
    KB,
    MAX_MEDIA_BYTES,
    MEDIA_TYPES,
    STICKER_STATIC_MAX,
    MediaKind,
    normalize_mime,
)
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import UpstreamError
from flowchat_platform.logs import get_logger
from flowchat_sender import metrics, provider_http
from flowchat_sender.cloud_api import parse_error
from flowchat_sender.errors import (
    MediaDownloadFailed,
    MediaNotFound,
    MediaRefused,
    MediaUploadFailed,
)
from flowchat_sender.media_service import active_account
from flowchat_sender.ports import AccountSource, MediaInfo

log = get_logger(__name__)

PREFIX = "flowchat:sender:media:"
#: Media ids from the API live 30 days; the cache forgets them a day earlier.
CACHE_TTL_S = 29 * 24 * 3600
#: Redirects a download follows (Twilio: one, to its CDN).
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _label(kind: str | None) -> str:
    """A bounded metric label for a caller's ``kind``."""
    return kind if kind in ("image", "video", "audio", "document", "sticker") else "unknown"


def max_bytes(mime_type: str) -> int:
    """The largest file of that MIME type (unknown types: the largest of any)."""
    known = MEDIA_TYPES.get(normalize_mime(mime_type))
    return known[1] if known else MAX_MEDIA_BYTES


def is_animated_webp(data: bytes) -> bool:
    """A WebP file with the VP8X animation flag."""
    return (
        len(data) > 20
        and data[:4] == b"RIFF"
        and data[8:12] == b"WEBP"
        and data[12:16] == b"VP8X"
        and bool(data[20] & 0x02)
    )


def check_media(mime_type: str, data: bytes, *, kind: str | None = None) -> MediaKind:
    """The kind of an acceptable upload, else :class:`MediaRefused`."""
    mime = normalize_mime(mime_type)
    known = MEDIA_TYPES.get(mime)
    if known is None:
        raise MediaRefused(
            f"WhatsApp does not take {mime or 'untyped'} media; types: "
            + ", ".join(sorted(MEDIA_TYPES)),
            reason="type",
        )
    media_kind, limit = known
    if kind is not None and kind != media_kind:
        raise MediaRefused(f"{mime} is {media_kind} media, not {kind}", reason="kind")
    if media_kind == "sticker" and not is_animated_webp(data):
        limit = STICKER_STATIC_MAX
    if not data:
        raise MediaRefused("the file is empty", reason="empty")
    if len(data) > limit:
        raise MediaRefused(
            f"the {media_kind} is {len(data)} bytes; {mime} files may be at most {limit} bytes",
            reason="size",
        )
    return media_kind


@dataclass(frozen=True)
class StoredMedia:
    """An uploaded file: send it with ``MediaContent(media_id=...)`` until ``expires_at``."""

    media_id: str
    sha256: str
    mime_type: str
    kind: MediaKind
    file_size: int
    uploaded_at: float
    #: When the cache forgets the id (a day before Meta does).
    expires_at: float
    cached: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "media_id": self.media_id,
            "sha256": self.sha256,
            "mime_type": self.mime_type,
            "kind": self.kind,
            "file_size": self.file_size,
            "cached": self.cached,
            "uploaded_at": self.uploaded_at,
            "expires_at": self.expires_at,
        }


class GraphMedia:
    """``POST /{version}/{phone_number_id}/media`` (multipart), link downloads, and the
    :class:`~flowchat_sender.ports.MediaSource` of downloads: Meta's ``GET /{media-id}``
    and its URL (bearer token), Twilio's MediaUrl (basic auth)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        graph_url: str,
        version: str,
        timeout_s: float = 60.0,
    ) -> None:
        self._session = session
        self._base = f"{graph_url.rstrip('/')}/{version}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10.0)

    async def upload(
        self, account: AccountCredentials, data: bytes, mime_type: str, filename: str | None
    ) -> str:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, filename=filename or "file", content_type=mime_type)
        url = f"{self._base}/{account.phone_number_id}/media"
        headers = {"Authorization": f"Bearer {account.access_token}"}
        try:
            status, raw = await provider_http.request(
                self._session, "POST", url, data=form, headers=headers, timeout=self._timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaUploadFailed(f"upload: {exc!r}", retryable=True) from exc
        if status == 200:
            try:
                return str(orjson.loads(raw)["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise MediaUploadFailed("upload: unreadable answer", retryable=True) from exc
        error = parse_error(status, raw)
        raise MediaUploadFailed(
            f"upload refused: code {error.code}: {error.message or error.title}",
            error=error,
            retryable=status >= 500 or status == 429,
        )

    async def download(self, link: str, *, limit: int) -> tuple[bytes, str]:
        """The bytes at ``link`` (at most ``limit``) and their Content-Type."""
        try:
            async with self._session.get(link, timeout=self._timeout) as response:
                if response.status != 200:
                    raise MediaUploadFailed(
                        f"the link answered HTTP {response.status}",
                        retryable=response.status >= 500 or response.status == 429,
                    )
                return await _read(response, limit), response.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaUploadFailed(f"the link: {exc!r}", retryable=True) from exc

    async def meta_info(self, account: AccountCredentials, media_id: str) -> MediaInfo:
        url = f"{self._base}/{media_id}"
        params = {"phone_number_id": account.phone_number_id or ""}
        headers = {"Authorization": f"Bearer {account.access_token}"}
        try:
            status, raw = await provider_http.request(
                self._session, "GET", url, params=params, headers=headers, timeout=self._timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaDownloadFailed(f"GET /{{media-id}}: {exc!r}", reason="unavailable") from exc
        if status != 200:
            error = parse_error(status, raw)
            if status in (400, 404) and error.code == 100:  # no such object (or not ours)
                raise MediaNotFound(f"the provider knows no media {media_id}")
            raise MediaDownloadFailed(
                f"GET /{{media-id}} refused: code {error.code}: {error.message or error.title}",
                reason="provider",
                error=error,
            )
        try:
            data = orjson.loads(raw)
            size = data.get("file_size")
            return MediaInfo(
                url=str(data["url"]),
                mime_type=data.get("mime_type"),
                sha256=data.get("sha256") or None,
                file_size=int(size) if size not in (None, "") else None,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MediaDownloadFailed(
                "GET /{media-id}: unreadable answer", reason="provider"
            ) from exc

    async def meta_download(self, account: AccountCredentials, url: str, *, limit: int) -> bytes:
        headers = {"Authorization": f"Bearer {account.access_token}"}
        data, _ = await self._download(url, headers, limit)
        return data

    async def twilio_download(
        self, account: AccountCredentials, url: str, *, limit: int
    ) -> tuple[bytes, str | None]:
        pair = f"{account.twilio_account_sid or ''}:{account.twilio_auth_token or ''}"
        basic = base64.b64encode(pair.encode()).decode()
        return await self._download(url, {"Authorization": f"Basic {basic}"}, limit)

    async def _download(
        self, url: str, headers: dict[str, str], limit: int
    ) -> tuple[bytes, str | None]:
        """GET ``url`` (credentials on the first hop only), at most ``limit`` bytes."""
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with self._session.get(
                    url, headers=headers, allow_redirects=False, timeout=self._timeout
                ) as response:
                    if response.status in _REDIRECTS and "Location" in response.headers:
                        url = urljoin(str(response.url), response.headers["Location"])
                        headers = {}
                        continue
                    if response.status in (404, 410):
                        raise MediaNotFound("the provider has no such file (deleted or expired)")
                    if response.status != 200:
                        raise MediaDownloadFailed(
                            f"the download answered HTTP {response.status}", reason="provider"
                        )
                    return await _read(response, limit), response.headers.get("Content-Type")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaDownloadFailed(f"the download: {exc!r}", reason="unavailable") from exc
        raise MediaDownloadFailed("the download: too many redirects", reason="provider")


@dataclass
class MediaStore:
    """Upload once per (account, content): ids cached in Redis below their 30-day life."""

    redis: aioredis.Redis
    graph: GraphMedia
    accounts: AccountSource
    ttl_s: int = CACHE_TTL_S
    clock: Callable[[], float] = time.time
    _flights: dict[str, asyncio.Task[StoredMedia]] = field(default_factory=dict)

    @staticmethod
    def key(account: AccountCredentials, sha256: str, mime_type: str) -> str:
        return f"{PREFIX}{account.tenant_id}:{account.account_id}:{mime_type}:{sha256}"

    async def account(self, tenant_id: str, account_id: str) -> AccountCredentials:
        """The account media is uploaded for, or :class:`MediaRefused`."""
        try:
            account = await active_account(self.accounts, tenant_id, account_id)
        except UpstreamError as exc:
            raise MediaUploadFailed(f"credentials unavailable: {exc}", retryable=True) from exc
        if account.provider != "meta":
            raise MediaRefused(
                "Twilio sends media by URL: send the link in the command instead",
                reason="provider",
            )
        if not (account.phone_number_id and account.access_token):
            raise MediaRefused("the account has no phone number id or token", reason="account")
        return account

    async def put(
        self,
        tenant_id: str,
        account_id: str,
        data: bytes,
        mime_type: str,
        *,
        filename: str | None = None,
        kind: str | None = None,
    ) -> StoredMedia:
        """Upload ``data`` (or reuse the cached id of the same bytes)."""
        mime = normalize_mime(mime_type)
        try:
            media_kind = check_media(mime, data, kind=kind)
        except MediaRefused:
            metrics.MEDIA_UPLOADS.labels(_label(kind), "refused").inc()
            raise
        account = await self.account(tenant_id, account_id)
        sha = hashlib.sha256(data).hexdigest()
        key = self.key(account, sha, mime)
        cached = await self._cached(key, sha, mime, media_kind, len(data))
        if cached is not None:
            metrics.MEDIA_UPLOADS.labels(media_kind, "cached").inc()
            return cached
        task = self._flights.get(key)
        if task is None:
            task = asyncio.create_task(
                self._upload(key, account, data, mime, media_kind, sha, filename)
            )
            self._flights[key] = task
            task.add_done_callback(partial(self._landed, key))
        return await asyncio.shield(task)

    def _landed(self, key: str, _task: asyncio.Task[StoredMedia]) -> None:
        self._flights.pop(key, None)

    async def put_link(
        self,
        tenant_id: str,
        account_id: str,
        link: str,
        *,
        mime_type: str | None = None,
        filename: str | None = None,
        kind: str | None = None,
    ) -> StoredMedia:
        """Download ``link`` once (bounded by the kind's limit), then :meth:`put` it."""
        await self.account(tenant_id, account_id)
        limit = max_bytes(mime_type) if mime_type else MAX_MEDIA_BYTES
        try:
            data, served = await self.graph.download(link, limit=limit)
        except MediaRefused:
            metrics.MEDIA_UPLOADS.labels(_label(kind), "refused").inc()
            raise
        except MediaUploadFailed:
            metrics.MEDIA_UPLOADS.labels(_label(kind), "failed").inc()
            raise
        return await self.put(
            tenant_id, account_id, data, mime_type or served, filename=filename, kind=kind
        )

    async def _cached(
        self, key: str, sha: str, mime: str, kind: MediaKind, size: int
    ) -> StoredMedia | None:
        try:
            raw = await self.redis.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("media cache unreadable; uploading", error=repr(exc))
            return None
        if raw is None:
            return None
        data = orjson.loads(raw)
        at = float(data["at"])
        return StoredMedia(str(data["id"]), sha, mime, kind, size, at, at + self.ttl_s, True)

    async def _upload(
        self,
        key: str,
        account: AccountCredentials,
        data: bytes,
        mime: str,
        kind: MediaKind,
        sha: str,
        filename: str | None,
    ) -> StoredMedia:
        uploaded_at = self.clock()
        try:
            media_id = await self.graph.upload(account, data, mime, filename)
        except MediaUploadFailed:
            metrics.MEDIA_UPLOADS.labels(kind, "failed").inc()
            raise
        try:
            await self.redis.set(
                key, orjson.dumps({"id": media_id, "at": uploaded_at}), ex=self.ttl_s
            )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("media id not cached", error=repr(exc))
        metrics.MEDIA_UPLOADS.labels(kind, "uploaded").inc()
        log.info("media uploaded", account_id=account.account_id, kind=kind, size=len(data))
        return StoredMedia(
            media_id, sha, mime, kind, len(data), uploaded_at, uploaded_at + self.ttl_s
        )


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise MediaRefused(f"the file is {declared} bytes; at most {limit} bytes", reason="size")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(256 * KB):
        size += len(chunk)
        if size > limit:
            raise MediaRefused(f"the file is larger than {limit} bytes", reason="size")
        chunks.append(chunk)
    return b"".join(chunks)
