"""MediaResolver (``media_service``), no I/O: the account's tenant, Meta's announced size
and SHA-256 (hex or base64), Twilio's MediaUrl kept to the account's own, content types."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

import pytest

from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import UpstreamError
from flowchat_sender.errors import MediaDownloadFailed, MediaNotFound, MediaRefused
from flowchat_sender.media_service import MediaResolver, content_type, sha256_matches
from flowchat_sender.ports import MediaInfo

DATA = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50
HEX = hashlib.sha256(DATA).hexdigest()
B64 = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
SID = "AC" + "1" * 32
TWILIO = "https://api.twilio.test"

META = AccountCredentials(
    account_id="acc-m",
    tenant_id="t1",
    provider="meta",
    phone_number_id="pn1",
    access_token="tok",
)
TW = AccountCredentials(
    account_id="acc-t",
    tenant_id="t1",
    provider="twilio",
    twilio_account_sid=SID,
    twilio_auth_token="secret",
)


class Accounts:
    def __init__(self, *accounts: AccountCredentials, down: bool = False) -> None:
        self.by_id = {a.account_id: a for a in accounts}
        self.down = down

    async def account(self, account_id: str) -> AccountCredentials | None:
        if self.down:
            raise UpstreamError("down", service="tenant")
        return self.by_id.get(account_id)

    def invalidate(self, account: AccountCredentials | None = None) -> None:
        pass


@dataclass
class Source:
    info: MediaInfo | None = None
    data: bytes = DATA
    mime: str | None = "image/png"
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def meta_info(self, account: AccountCredentials, media_id: str) -> MediaInfo:
        self.calls.append(("info", media_id))
        if self.info is None:
            raise MediaNotFound("no such media")
        return self.info

    async def meta_download(self, account: AccountCredentials, url: str, *, limit: int) -> bytes:
        self.calls.append(("meta", url))
        return self.data

    async def twilio_download(
        self, account: AccountCredentials, url: str, *, limit: int
    ) -> tuple[bytes, str | None]:
        self.calls.append(("twilio", url))
        return self.data, self.mime


def resolver(
    source: Source, *accounts: AccountCredentials, max_bytes: int = 10_000
) -> MediaResolver:
    return MediaResolver(
        Accounts(*(accounts or (META, TW))), source, max_bytes=max_bytes, twilio_url=TWILIO
    )


def info(**kw: object) -> MediaInfo:
    base: dict[str, object] = {
        "url": "https://lookaside.test/a?mid=1",
        "mime_type": "image/png",
        "sha256": HEX,
        "file_size": len(DATA),
    }
    return MediaInfo(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("sha", [HEX, HEX.upper(), B64])
async def test_meta_media_checked_against_the_announced_sha256(sha: str) -> None:
    source = Source(info(sha256=sha))
    got = await resolver(source).resolve("t1", "acc-m", media_id="123")
    assert got.data == DATA
    assert got.content_type == "image/png"
    assert got.sha256 == HEX
    assert got.verified
    assert source.calls == [("info", "123"), ("meta", "https://lookaside.test/a?mid=1")]


async def test_a_file_that_is_not_the_announced_one_is_refused() -> None:
    bad = Source(info(sha256=hashlib.sha256(b"other").hexdigest()))
    with pytest.raises(MediaDownloadFailed) as caught:
        await resolver(bad).resolve("t1", "acc-m", media_id="1")
    assert caught.value.reason == "corrupt"
    short = Source(info(file_size=len(DATA) + 1))
    with pytest.raises(MediaDownloadFailed):
        await resolver(short).resolve("t1", "acc-m", media_id="1")
    # no SHA-256 given: served, but not marked verified
    got = await resolver(Source(info(sha256=None))).resolve("t1", "acc-m", media_id="1")
    assert not got.verified


async def test_too_large_is_refused_before_the_download() -> None:
    source = Source(info(file_size=10_001))
    with pytest.raises(MediaRefused) as caught:
        await resolver(source).resolve("t1", "acc-m", media_id="1")
    assert caught.value.reason == "size"
    assert source.calls == [("info", "1")]


async def test_another_tenants_account_is_unknown() -> None:
    source = Source(info())
    for tenant, account in (("t2", "acc-m"), ("t1", "acc-x")):
        with pytest.raises(MediaRefused) as caught:
            await resolver(source).resolve(tenant, account, media_id="1")
        assert caught.value.reason == "account"
    suspended = META.model_copy(update={"tenant_status": "suspended"})
    with pytest.raises(MediaRefused):
        await resolver(source, suspended).resolve("t1", "acc-m", media_id="1")
    assert source.calls == []


async def test_unknown_media_and_an_unreachable_tenant_service() -> None:
    with pytest.raises(MediaNotFound):
        await resolver(Source(None)).resolve("t1", "acc-m", media_id="404")
    down = MediaResolver(Accounts(down=True), Source(info()), max_bytes=10, twilio_url=TWILIO)
    with pytest.raises(MediaDownloadFailed) as caught:
        await down.resolve("t1", "acc-m", media_id="1")
    assert caught.value.reason == "unavailable"


async def test_each_provider_names_media_its_own_way() -> None:
    with pytest.raises(MediaRefused) as caught:
        await resolver(Source(info())).resolve("t1", "acc-m", url=f"{TWILIO}/x")
    assert caught.value.reason == "provider"
    with pytest.raises(MediaRefused):
        await resolver(Source(info())).resolve("t1", "acc-t", media_id="1")


async def test_twilio_credentials_go_only_to_the_accounts_own_media() -> None:
    source = Source(mime="image/jpeg; charset=binary")
    own = f"{TWILIO}/2010-04-01/Accounts/{SID}/Messages/MM1/Media/ME1"
    got = await resolver(source).resolve("t1", "acc-t", url=own)
    assert got.content_type == "image/jpeg"
    assert not got.verified
    for url in (
        "https://evil.test/2010-04-01/Accounts/" + SID + "/Messages/MM1/Media/ME1",
        f"{TWILIO}/2010-04-01/Accounts/AC{'2' * 32}/Messages/MM1/Media/ME1",
        f"{TWILIO}/2010-04-01/Accounts/{SID}/../AC2/Messages/MM1/Media/ME1",
        f"{TWILIO}.evil.test/2010-04-01/Accounts/{SID}/Messages/MM1/Media/ME1",
    ):
        with pytest.raises(MediaNotFound):
            await resolver(source).resolve("t1", "acc-t", url=url)
    assert source.calls == [("twilio", own)]


def test_content_types_are_plain() -> None:
    assert content_type("IMAGE/PNG") == "image/png"
    assert content_type("audio/ogg; codecs=opus") == "audio/ogg"
    assert content_type(None) == "application/octet-stream"
    assert content_type("text/html\r\nSet-Cookie: x") == "application/octet-stream"
    assert content_type("nonsense") == "application/octet-stream"


def test_sha256_forms() -> None:
    assert sha256_matches(HEX, DATA)
    assert sha256_matches(B64, DATA)
    assert not sha256_matches("zz" * 32, DATA)
    assert not sha256_matches("", DATA)
    assert not sha256_matches(B64, DATA + b"!")
