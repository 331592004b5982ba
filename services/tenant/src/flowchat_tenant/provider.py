"""The WhatsApp Cloud API seen from the tenant service: read a number, its business profile.

:class:`NumberProvider` is the seam: the service receives an object with these
methods (``GraphProvider`` over aiohttp in production, pointing at the sandbox
locally; any object with the same methods in unit tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from flowchat_contracts import meta_codes
from flowchat_tenant.errors import InvalidCredentials, InvalidInput, ProviderError

PHONE_FIELDS = "display_phone_number,verified_name,quality_rating,throughput,messaging_limit_tier"
#: Meta's throughput levels and the send rate they allow (…/cloud-api/overview/throughput).
THROUGHPUT_MPS = {"STANDARD": 80, "HIGH": 1000}
#: Graph error codes meaning the access token is invalid, expired or lacks permission.
TOKEN_ERROR_CODES = meta_codes.TOKEN


@dataclass(frozen=True)
class PhoneNumberInfo:
    phone_number_id: str
    display_phone_number: str | None
    verified_name: str | None
    quality_rating: str | None
    throughput_level: str | None
    messaging_limit_tier: str | None

    @property
    def throughput_mps(self) -> int | None:
        return THROUGHPUT_MPS.get(self.throughput_level or "")

    @classmethod
    def from_graph(cls, phone_number_id: str, body: dict[str, Any]) -> PhoneNumberInfo:
        throughput = body.get("throughput")
        level = throughput.get("level") if isinstance(throughput, dict) else None

        def text(name: str) -> str | None:
            value = body.get(name)
            return str(value) if value is not None else None

        return cls(
            phone_number_id=str(body.get("id") or phone_number_id),
            display_phone_number=text("display_phone_number"),
            verified_name=text("verified_name"),
            quality_rating=text("quality_rating"),
            throughput_level=str(level) if level is not None else None,
            messaging_limit_tier=text("messaging_limit_tier"),
        )


class NumberProvider(Protocol):
    async def phone_number(self, phone_number_id: str, access_token: str) -> PhoneNumberInfo: ...

    async def business_profile(self, phone_number_id: str, access_token: str) -> dict[str, Any]: ...

    async def update_business_profile(
        self, phone_number_id: str, access_token: str, profile: dict[str, Any]
    ) -> dict[str, Any]: ...


def raise_for_graph_error(status: int, body: Any) -> None:
    """Map a Graph error answer to the service's errors (never echoing the token)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    if status == 401 or code in TOKEN_ERROR_CODES:
        raise InvalidCredentials(
            f"the provider refused the access token (code {code}): {message}".strip()
        )
    if status == 404 or code in (100, 803):
        raise InvalidInput(
            f"the provider does not know this phone number id (code {code}): {message}",
            field="phone_number_id",
            code="unknown_phone_number",
        )
    raise ProviderError(
        f"the provider answered HTTP {status} (code {code}): {message}",
        status=status,
        provider_code=code if isinstance(code, int) else None,
    )


class GraphProvider:
    """Meta's Graph API (or the sandbox) over one shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        version: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._base = f"{base_url.rstrip('/')}/{version}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def phone_number(self, phone_number_id: str, access_token: str) -> PhoneNumberInfo:
        body = await self._call(
            "GET", f"/{phone_number_id}", access_token, params={"fields": PHONE_FIELDS}
        )
        return PhoneNumberInfo.from_graph(phone_number_id, body)

    async def business_profile(self, phone_number_id: str, access_token: str) -> dict[str, Any]:
        return await self._call(
            "GET", f"/{phone_number_id}/whatsapp_business_profile", access_token
        )

    async def update_business_profile(
        self, phone_number_id: str, access_token: str, profile: dict[str, Any]
    ) -> dict[str, Any]:
        payload = {"messaging_product": "whatsapp", **profile}
        return await self._call(
            "POST", f"/{phone_number_id}/whatsapp_business_profile", access_token, json=payload
        )

    async def _call(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self._timeout,
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                if response.status >= 400:
                    raise_for_graph_error(response.status, body)
                if not isinstance(body, dict):
                    raise ProviderError("the provider answered with no JSON object", status=200)
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"the provider is unreachable: {type(exc).__name__}") from exc


class NoProvider:
    """For commands that never reach the provider (``rotate-keys``): every call fails."""

    async def phone_number(self, phone_number_id: str, access_token: str) -> PhoneNumberInfo:
        raise ProviderError("no provider in this process")

    async def business_profile(self, phone_number_id: str, access_token: str) -> dict[str, Any]:
        raise ProviderError("no provider in this process")

    async def update_business_profile(
        self, phone_number_id: str, access_token: str, profile: dict[str, Any]
    ) -> dict[str, Any]:
        raise ProviderError("no provider in this process")
